"""Retrying one request: tenacity's loop, entered only after a first attempt failed in a
retryable way (building a retrier costs more CPU than aiohttp's whole send, so the success path
never builds one). The waits are the server's Retry-After (capped by ``max_wait``) or a random
exponential backoff; a wait for a host that asked for a pause counts as its cool-down. No pandas.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    wait_random_exponential,
)

from ._attempts import FREE_REFUSALS, RetryableStatus
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
        free = _FreeRefusals(self.retry.max_wait)

        async def sleep(seconds: float) -> None:
            await self._sleep_before_retry(host, seconds)

        async for attempt in AsyncRetrying(
            stop=lambda rs: rs.attempt_number - free.count > self.retry.attempts,
            wait=self._wait,
            retry=retry_if_exception(self.retryable),
            sleep=sleep,
            before_sleep=lambda rs: self._log_retry(spec, rs),
            reraise=True,
        ):
            with attempt:
                try:
                    if attempt.retry_state.attempt_number == 1:
                        raise first_failure  # tenacity waits and counts from the first failure
                    return await send()
                except RetryableStatus as exc:
                    free.judge(exc)
                    raise
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
        if isinstance(exc, RetryableStatus) and (exc.retry_after is not None or exc.free):
            # A free refusal has no backoff of its own: the host's pause or pace is the wait.
            return min(exc.retry_after or 0.0, self.retry.max_wait)
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


class _FreeRefusals:
    """One row's refusals for going too fast (429, or 418 with Retry-After) that do not use up a
    retry: the limiter answers them by pausing or pacing the host, the row goes on through that.
    At most ``FREE_REFUSALS``, and only within ``patience`` seconds of the first failure."""

    __slots__ = ("count", "until")

    def __init__(self, patience: float) -> None:
        self.count = 0
        self.until = time.monotonic() + patience

    def judge(self, exc: RetryableStatus) -> None:
        status = exc.answer.status_code
        if status in (429, 418) and self.count < FREE_REFUSALS and time.monotonic() < self.until:
            self.count += 1
            exc.free = True
