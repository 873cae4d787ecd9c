"""Async fan-out: concurrency gate, rate limiter, retries, cool-down, dedupe. No pandas here.

``fetch_all(specs, ...)`` sends one request per spec (identical GETs once) and returns one
``Outcome`` per spec, in order. A failure is an outcome, never an exception: the caller decides
what to do with failed rows. Only cancellation (and bugs) propagate.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from ._attempts import Attempts, HostPaused, RetryableStatus, http_cause
from ._failures import describe_exception, is_transient
from ._limiter import Limiter
from ._options import DEFAULT_MAX_BYTES, Rate, Retry
from ._outcome import AnswerError, Outcome
from ._paginate import Paginator, fetch_pages
from ._quota import parse_retry_after
from ._requests import RequestSpec
from ._rows import RowQueue, group_rows, hand_over_place, take_place
from ._secrets import mask_url, redact, secret_values
from ._timeline import Timeline
from ._transport import AiohttpSender, Answer, Http2Sender, HttpxSender, Sender

__all__ = ["AnswerStore", "EnginePolicy", "OnRows", "fetch_all", "fetch_chunks"]

logger = logging.getLogger("pandas_async")
_KEPT_CHUNK = 256  # rows looked up in the answer store at once
OnRows = Callable[[list[int], Outcome], Awaitable[None] | None]


@dataclass(frozen=True, kw_only=True)
class EnginePolicy:
    concurrency: int
    rate: Rate | None
    timeout: float | httpx.Timeout | None  # None: the client's own
    retry: Retry
    dedupe: bool
    burst: int | None = None  # GCRA tolerance on top of rate's window; None: the window only
    max_bytes: int | None = DEFAULT_MAX_BYTES  # per answer, after decompression
    paginate: Paginator | None = None
    record_path: str | list[str] | None = None  # where a page's records are, to see it is empty
    http2: bool = False  # without a client: send through our own httpx.AsyncClient(http2=True)


class AnswerStore(Protocol):
    """Where answers are kept between calls (``cache=``; the accessor hands one in).

    ``get`` is asked before a request waits for anything (gate, rate, cool-down): a kept answer
    is used as is and nothing is sent. ``put`` is given every answer that succeeded and parsed.
    """

    def get(self, spec: RequestSpec) -> Answer | None: ...

    def get_many(self, specs: Sequence[RequestSpec]) -> list[Answer | None]: ...

    def put(self, spec: RequestSpec, answer: Answer) -> None: ...


class Engine:
    def __init__(
        self,
        sender: Sender,
        policy: EnginePolicy,
        parse: Callable[[Answer], Any],
        *,
        on_done: Callable[[int, Outcome], None] | None = None,
        on_rows: OnRows | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
        timeline: Timeline | None = None,
        store: AnswerStore | None = None,
    ) -> None:
        self.sender = sender
        self.store = store
        self.timeline = Timeline() if timeline is None else timeline
        self.policy = policy
        self.parse = parse
        self.on_done = on_done
        self.on_rows = on_rows
        self.sleep = sleep
        self.gate = asyncio.Semaphore(policy.concurrency)
        # Every pace, pause and quota lives here; the engine only asks before and after a send.
        self.limiter = Limiter(policy.rate, policy.burst, policy.retry.max_wait)
        self.limiter.on_pause = self.timeline.cooldown_started
        retry = policy.retry
        self._backoff = wait_random_exponential(multiplier=retry.backoff, max=retry.max_wait)

    async def run(
        self, specs: Sequence[RequestSpec], on_rows: OnRows | None = None
    ) -> list[Outcome]:
        on_rows = self.on_rows if on_rows is None else on_rows  # one hook per run (chunks)
        jobs = group_rows(specs, dedupe=self.policy.dedupe)

        outcomes: list[Outcome | None] = [None] * len(specs)
        paginate = self.policy.paginate

        async def finish(rows: list[int], outcome: Outcome) -> None:
            for i in rows:
                outcomes[i] = outcome
            if self.on_done is not None:
                self.on_done(len(rows), outcome)
            if on_rows is not None:
                wait = on_rows(rows, outcome)  # a sink's back-pressure, if any
                if wait is not None:
                    await wait

        looked_up = self.store is not None and paginate is None
        if looked_up:
            jobs = await self._answer_kept(jobs, finish)

        # `concurrency` runners take rows in order, instead of one task per row: 20,000 waiting
        # tasks cost memory and scheduling. A row for a host on hold (a cool-down, a probe, an
        # empty quota) is parked, not awaited, so waiting rows are never tasks. A runner whose
        # row must wait mid-way (a retry's backoff, a hold that began after it started) first
        # starts a replacement, so a waiting row never holds up the others; it ends after it.
        queue = RowQueue(jobs, self.limiter, finish)

        async def runner(start_runner: Callable[[], None]) -> None:
            place = take_place(start_runner)
            while (job := await queue.next()) is not None:
                spec, indices = job
                if spec.problem is not None:  # the row's request could not be built: not sent
                    outcome = spec.problem
                elif paginate is None:
                    outcome, _ = await self.fetch(spec, look_up=not looked_up)
                else:
                    outcome = await fetch_pages(self.fetch, spec, paginate, self.policy.record_path)
                await finish(indices, outcome)
                if place.handed_over:
                    return

        async with asyncio.TaskGroup() as group:

            def start_runner() -> None:
                group.create_task(runner(start_runner))

            for _ in range(min(len(jobs), self.policy.concurrency)):
                start_runner()
        return outcomes  # type: ignore[return-value]

    async def _answer_kept(
        self,
        jobs: list[tuple[RequestSpec, list[int]]],
        finish: Callable[[list[int], Outcome], Awaitable[None]],
    ) -> list[tuple[RequestSpec, list[int]]]:
        """Answer the rows whose answer is kept (``cache=``), a chunk of look-ups at a time;
        return the others, to be sent. Nothing here waits for the gate or the rate."""
        assert self.store is not None
        left: list[tuple[RequestSpec, list[int]]] = []
        for start in range(0, len(jobs), _KEPT_CHUNK):
            chunk = jobs[start : start + _KEPT_CHUNK]
            kept = self.store.get_many([spec for spec, _ in chunk if spec.problem is None])
            found = iter(kept)
            for spec, rows in chunk:
                answer = next(found) if spec.problem is None else None
                if answer is None:
                    left.append((spec, rows))
                    continue
                outcome, _ = await self.fetch(spec, kept=answer)
                await finish(rows, outcome)
            await asyncio.sleep(0)  # let the loop breathe between chunks
        return left

    async def fetch(
        self, spec: RequestSpec, *, kept: Answer | None = None, look_up: bool = True
    ) -> tuple[Outcome, Answer | None]:
        """Send one request under every policy; read its answer. Never raises but on cancel.

        ``kept``: an answer from the store, used instead of sending; ``look_up=False``: the
        store was already asked.
        """
        state = Attempts()
        if kept is None and look_up and self.store is not None:
            kept = self.store.get(spec)
        if kept is not None:
            self.timeline.cache_hit(spec)
        try:
            answer = kept if kept is not None else await self._attempt_all(spec, state)
        except asyncio.CancelledError:
            raise
        except RetryableStatus as exc:
            answer = exc.answer
            return self._failed(spec, state, http_cause(answer), answer.status_code), answer
        except HostPaused as exc:
            return self._failed(spec, state, exc.cause, state.status), None
        except Exception as exc:
            status = getattr(exc, "status", None)  # an answer too large still had a status
            return self._failed(spec, state, describe_exception(exc), status, exc), None

        elapsed = time.monotonic() - (state.started or time.monotonic())
        status = answer.status_code
        if answer.is_error:
            cause = http_cause(answer)
            return Outcome(None, status, cause, cause, elapsed, state.count), answer
        try:
            value = self.parse(answer)
        except AnswerError as exc:
            text = redact(str(exc), secret_values(spec.headers, spec.params, spec.url))
            return Outcome(None, status, text, exc.cause, elapsed, state.count), answer
        except Exception as exc:
            return self._failed(spec, state, "parse error", status, exc), answer
        if kept is None and self.store is not None:
            self.store.put(spec, answer)
        return Outcome(value, status, None, None, elapsed, state.count), answer

    async def _attempt_all(self, spec: RequestSpec, state: Attempts) -> Answer:
        """The first attempt, then (only if it failed in a retryable way) tenacity's retry loop.

        The success path never builds a retrier: that costs more CPU than aiohttp's whole send.
        """
        host = spec.host
        try:
            return await self._send(spec, host, state)
        except Exception as exc:
            if self.policy.retry.attempts == 0 or not self._retryable(exc):
                raise
            first_failure = exc
        hand_over_place()  # waiting to retry: let another row start meanwhile

        async def sleep(seconds: float) -> None:
            await self._sleep_before_retry(host, seconds)

        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(self.policy.retry.attempts + 1),
            wait=self._wait,
            retry=retry_if_exception(self._retryable),
            sleep=sleep,
            before_sleep=lambda rs: self._log_retry(spec, rs),
            reraise=True,
        ):
            with attempt:
                if attempt.retry_state.attempt_number == 1:
                    raise first_failure  # tenacity waits and counts from the first try's failure
                return await self._send(spec, host, state)
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

    async def _send(self, spec: RequestSpec, host: str, state: Attempts) -> Answer:
        limiter = self.limiter
        gate = self.gate
        timeline = self.timeline
        while True:
            hold = limiter.hold(host)
            if not hold.ready:
                if hold.failure is None:
                    hand_over_place()  # a host on hold must not hold up rows for other hosts
                    timeline.cooldown_wait_begins(host)
                    try:
                        hold = await limiter.wait_ready(host)
                    finally:
                        timeline.cooldown_wait_ends(host)
                if hold.failure is not None:
                    raise HostPaused(hold.failure)
            if limiter.paces(host):
                timeline.limiter_wait_begins()
                try:
                    ticket = await limiter.before_send(host, gate)  # holds a slot when given
                finally:
                    timeline.limiter_wait_ends()
            else:
                ticket = await limiter.before_send(host, gate)
            if ticket is None:
                continue  # a hold began while this one waited for its turn
            try:
                state.count += 1
                if state.started is None:
                    state.started = time.monotonic()
                token = timeline.attempt_begins(spec, state.count)
                try:
                    answer = await self.sender.send(spec)
                except BaseException as exc:
                    timeline.attempt_ends(token, None, exc)
                    limiter.after_failure(ticket)
                    raise
                timeline.attempt_ends(token, answer.status_code, None)
                limiter.after_answer(ticket, answer.status_code, answer.headers)
            finally:
                gate.release()
            break
        status = answer.status_code
        state.status = status
        if status in self.policy.retry.statuses or (
            status == 418 and "retry-after" in answer.headers  # a ban: wait, like a 429
        ):
            hold = limiter.hold(host)
            if hold.failure is not None:  # the server asked for more than max_wait
                raise HostPaused(hold.failure)
            retry_after = parse_retry_after(answer.headers.get("retry-after"))
            raise RetryableStatus(answer, retry_after)
        return answer

    def _retryable(self, exc: BaseException) -> bool:
        return isinstance(exc, RetryableStatus) or is_transient(exc)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RetryableStatus) and exc.retry_after is not None:
            return min(exc.retry_after, self.policy.retry.max_wait)
        return float(self._backoff(state))

    def _log_retry(self, spec: RequestSpec, state: RetryCallState) -> None:
        if not logger.isEnabledFor(logging.DEBUG):
            return
        exc = state.outcome.exception() if state.outcome else None
        cause = (
            str(exc)
            if isinstance(exc, RetryableStatus)
            else describe_exception(exc or Exception())
        )
        logger.debug(
            "retrying %s %s after %s (attempt %d), waiting %.2fs",
            spec.method,
            mask_url(spec.url),
            cause,
            state.attempt_number,
            state.upcoming_sleep,
        )

    def _failed(
        self,
        spec: RequestSpec,
        state: Attempts,
        cause: str,
        status: int | None,
        exc: BaseException | None = None,
    ) -> Outcome:
        elapsed = time.monotonic() - state.started if state.started is not None else 0.0
        text = cause
        detail = redact(str(exc or "").strip(), secret_values(spec.headers, spec.params, spec.url))
        if detail and not isinstance(exc, httpx.TransportError):  # ReadTimeout says it all
            text = f"{cause}: {detail[:200]}"
        logger.debug("%s %s failed: %s (%s)", spec.method, mask_url(spec.url), cause, detail)
        return Outcome(None, status, text, cause, elapsed, state.count)


async def fetch_all(
    specs: Sequence[RequestSpec],
    *,
    client: httpx.AsyncClient | None,
    policy: EnginePolicy,
    parse: Callable[[Answer], Any],
    on_done: Callable[[int, Outcome], None] | None = None,
    timeline: Timeline | None = None,
    on_rows: OnRows | None = None,
    store: AnswerStore | None = None,
) -> list[Outcome]:
    """One ``Outcome`` per spec, in order, through ``client`` as given or the default sender.

    ``timeline`` (made by the caller, read after) records where the time went.
    ``on_rows(rows, outcome)`` is called as each request completes, with the positions of the
    specs it answered (several when deduped); it may return an awaitable to slow the runners
    down (a sink whose writer is behind). With a ``store``, kept answers are used instead of
    sending, and good answers are kept.
    """
    if not specs:
        return []
    sender = _sender(client, policy)
    try:
        engine = Engine(
            sender, policy, parse, on_done=on_done, timeline=timeline, on_rows=on_rows, store=store
        )
        return await engine.run(specs)
    finally:
        await sender.aclose()


def _sender(client: httpx.AsyncClient | None, policy: EnginePolicy) -> Sender:
    if client is not None:
        return HttpxSender(client, policy.timeout, policy.max_bytes)
    if policy.http2:
        return Http2Sender(
            concurrency=policy.concurrency, timeout=policy.timeout, max_bytes=policy.max_bytes
        )
    return AiohttpSender(
        concurrency=policy.concurrency, timeout=policy.timeout, max_bytes=policy.max_bytes
    )


async def fetch_chunks(
    chunks: Iterable[Sequence[RequestSpec]],
    *,
    client: httpx.AsyncClient | None,
    policy: EnginePolicy,
    parse: Callable[[Answer], Any],
    on_done: Callable[[int, Outcome], None] | None = None,
    timeline: Timeline | None = None,
    on_rows: OnRows | None = None,
    store: AnswerStore | None = None,
) -> list[Outcome]:
    """``fetch_all`` over consecutive chunks of specs, made only when needed (a sink's batches).

    One engine serves every chunk, so one gate, rate limiter and cool-down hold across them;
    two chunks are under way at a time, so concurrency stays full at a chunk's end while only
    two chunks' specs are in memory. Identical requests are deduped within a chunk.
    ``on_rows`` gets positions counted across the chunks; the outcomes are returned in order.
    """
    sender = _sender(client, policy)
    engine = Engine(sender, policy, parse, on_done=on_done, timeline=timeline, store=store)
    results: list[asyncio.Task[list[Outcome]]] = []

    def shifted(offset: int) -> OnRows | None:
        if on_rows is None:
            return None
        hook = on_rows
        return lambda rows, outcome: hook([offset + i for i in rows], outcome)

    try:
        async with asyncio.TaskGroup() as group:
            offset = 0
            for chunk in chunks:
                if not chunk:
                    continue
                if len(results) >= 2:
                    await asyncio.wait({results[-2]})  # at most two chunks under way
                results.append(group.create_task(engine.run(chunk, on_rows=shifted(offset))))
                offset += len(chunk)
    finally:
        await sender.aclose()
    return [outcome for task in results for outcome in task.result()]
