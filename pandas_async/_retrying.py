"""Retrying one request: tenacity's loop, entered only after a first attempt failed in a
retryable way (building a retrier costs more CPU than aiohttp's whole send, so the success path
never builds one). The waits are the server's Retry-After (capped by ``max_wait``) or a random
exponential backoff; a wait for a host that asked for a pause counts as its cool-down. No pandas.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from ._attempts import RetryableStatus
from ._failures import describe_exception, is_transient
from ._limiter import Limiter
from ._options import Retry
from ._outcome import Answer
from ._requests import RequestSpec
from ._secrets import mask_url
from ._timeline import Timeline

__all__ = ["Retries"]

logger = logging.getLogger("pandas_async")


class Retries:
    """One call's retry policy, as the engine applies it to a request whose first try failed."""

    def __init__(
        self, retry: Retry, limiter: Limiter, timeline: Timeline, sleep: Callable[[float], Any]
    ) -> None:
        self.retry = retry
        self.limiter = limiter
        self.timeline = timeline
        self.sleep = sleep
        self._backoff = wait_random_exponential(multiplier=retry.backoff, max=retry.max_wait)

    def wanted(self, exc: BaseException) -> bool:
        """Whether a first attempt that failed with ``exc`` is tried again."""
        return self.retry.attempts > 0 and self.retryable(exc)

    def retryable(self, exc: BaseException) -> bool:
        return isinstance(exc, RetryableStatus) or is_transient(exc)

    async def after(
        self, spec: RequestSpec, first_failure: Exception, send: Callable[[], Awaitable[Answer]]
    ) -> Answer:
        """Retry ``send`` after the first attempt failed with ``first_failure``; the answer of
        the first attempt that succeeds, or the last failure, raised."""
        host = spec.host

        async def sleep(seconds: float) -> None:
            await self._sleep_before_retry(host, seconds)

        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(self.retry.attempts + 1),
            wait=self._wait,
            retry=retry_if_exception(self.retryable),
            sleep=sleep,
            before_sleep=lambda rs: self._log_retry(spec, rs),
            reraise=True,
        ):
            with attempt:
                if attempt.retry_state.attempt_number == 1:
                    raise first_failure  # tenacity waits and counts from the first try's failure
                return await send()
        raise AssertionError("unreachable: tenacity re-raises the last failure")  # pragma: no cover

    async def _sleep_before_retry(self, host: str, seconds: float) -> None:
        """Backoff before a retry; a wait for a host that asked for a pause is its cool-down."""
        timeline = self.timeline
        if self.limiter.pause_left(host) > 0:
            timeline.cooldown_wait_begins(host)
            try:
                await self.sleep(seconds)
            finally:
                timeline.cooldown_wait_ends(host)
        else:
            timeline.backoff_begins()
            try:
                await self.sleep(seconds)
            finally:
                timeline.backoff_ends()

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RetryableStatus) and exc.retry_after is not None:
            return min(exc.retry_after, self.retry.max_wait)
        return float(self._backoff(state))

    def _log_retry(self, spec: RequestSpec, state: RetryCallState) -> None:
        if not logger.isEnabledFor(logging.DEBUG):
            return
        exc = state.outcome.exception() if state.outcome else None
        cause = (
            str(exc) if isinstance(exc, RetryableStatus) else describe_exception(exc or Exception())
        )
        logger.debug(
            "retrying %s %s after %s (attempt %d), waiting %.2fs",
            spec.method,
            mask_url(spec.url),
            cause,
            state.attempt_number,
            state.upcoming_sleep,
        )
