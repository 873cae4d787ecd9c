"""Async fan-out: concurrency gate, rate limiter, retries, cool-down, dedupe. No pandas here.

``Engine.run(specs)`` sends one request per spec (identical GETs once) and returns one
``Outcome`` per spec, in order. A failure is an outcome, never an exception: the caller decides
what to do with failed rows. Only cancellation (and bugs) propagate. ``_calls`` chooses the
sender and runs the engine over a whole call or a sink's chunks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from ._attempts import Attempts, HostPaused, RetryableStatus, http_cause
from ._failures import describe_exception
from ._limiter import Limiter
from ._options import DEFAULT_MAX_BYTES, Rate, Retry
from ._outcome import AnswerError, Outcome
from ._paginate import Paginator, fetch_pages
from ._quota import parse_retry_after
from ._requests import RequestSpec
from ._retrying import Retries
from ._rows import RowQueue, group_rows, hand_over_place, take_place
from ._secrets import mask_url, redact, secret_values
from ._timeline import Timeline
from ._transport import Answer, Sender

__all__ = ["AnswerStore", "Engine", "EnginePolicy", "OnRows"]

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


def _first(started: float, status: int | None) -> Attempts:
    """The bookkeeping of a first attempt made by the fast path, for the ordinary one."""
    state = Attempts()
    state.count, state.started, state.status = 1, started, status
    return state


class _Done:
    """One run's finished rows: their outcomes in place, and the hooks told of each."""

    __slots__ = ("on_done", "on_rows", "outcomes")

    def __init__(
        self, n: int, on_done: Callable[[int, Outcome], None] | None, on_rows: OnRows | None
    ):
        self.outcomes: list[Outcome | None] = [None] * n
        self.on_done = on_done
        self.on_rows = on_rows

    def record(self, rows: list[int], outcome: Outcome) -> None:
        outcomes = self.outcomes
        for i in rows:
            outcomes[i] = outcome
        if self.on_done is not None:
            self.on_done(len(rows), outcome)

    async def finish(self, rows: list[int], outcome: Outcome) -> None:
        self.record(rows, outcome)
        if self.on_rows is not None:
            wait = self.on_rows(rows, outcome)  # a sink's back-pressure, if any
            if wait is not None:
                await wait

    def take(self) -> list[Outcome]:
        """The outcomes, handed over: nothing here keeps them alive once the caller is done."""
        outcomes, self.outcomes = self.outcomes, []
        return outcomes  # type: ignore[return-value]


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
        self.retries = Retries(policy.retry, self.limiter, self.timeline, sleep)
        self._retry_statuses = policy.retry.statuses

    async def run(
        self, specs: Sequence[RequestSpec], on_rows: OnRows | None = None
    ) -> list[Outcome]:
        on_rows = self.on_rows if on_rows is None else on_rows  # one hook per run (chunks)
        jobs = group_rows(specs, dedupe=self.policy.dedupe)
        done = _Done(len(specs), self.on_done, on_rows)
        paginate = self.policy.paginate
        looked_up = self.store is not None and paginate is None
        if looked_up:
            jobs = await self._answer_kept(jobs, done.finish)
        quick = paginate is None  # one request per row (a store was asked above, if any)

        # `concurrency` runners take rows in order, instead of one task per row: 20,000 waiting
        # tasks cost memory and scheduling. A row for a host on hold (a cool-down, a probe, an
        # empty quota) is parked, not awaited, so waiting rows are never tasks. A runner whose
        # row must wait mid-way (a retry's backoff, a hold that began after it started) first
        # starts a replacement, so a waiting row never holds up the others; it ends after it.
        queue = RowQueue(jobs, self.limiter, done.finish)

        async def runner(start_runner: Callable[[], None]) -> None:
            place = take_place(start_runner)
            outcomes, on_done = done.outcomes, self.on_done  # locals: gone when the runner ends
            while (job := queue.take() or await queue.next()) is not None:
                spec, indices = job
                if spec.problem is not None:  # the row's request could not be built: not sent
                    outcome = spec.problem
                elif quick:
                    outcome = await self._fetch_quick(spec)
                elif paginate is None:
                    outcome, _ = await self.fetch(spec, look_up=not looked_up)
                else:
                    outcome = await fetch_pages(self.fetch, spec, paginate, self.policy.record_path)
                if done.on_rows is None:  # no hook that may wait: no coroutine per row
                    if len(indices) == 1:
                        outcomes[indices[0]] = outcome
                        if on_done is not None:
                            on_done(1, outcome)
                    else:
                        done.record(indices, outcome)
                else:
                    await done.finish(indices, outcome)
                if place.handed_over:
                    return

        async with asyncio.TaskGroup() as group:

            def start_runner() -> None:
                group.create_task(runner(start_runner))

            for _ in range(min(len(jobs), self.policy.concurrency)):
                start_runner()
        return done.take()

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

    async def _fetch_quick(self, spec: RequestSpec) -> Outcome:
        """``fetch`` for the common case, in one coroutine: a host nothing paces or holds
        (``Limiter.admit_now``), a first attempt that gets an answer. Anything else (a rate, a
        pause, a failure to retry) goes on through the ordinary path, so nothing is skipped."""
        gate = self.gate
        await gate.acquire()
        limiter = self.limiter
        ticket = limiter.admit_now(spec.host)
        if ticket is None:  # paced or held: the full path decides
            gate.release()
            return (await self.fetch(spec, look_up=False))[0]
        timeline = self.timeline
        started = time.monotonic()
        token = timeline.attempt_begins(spec, 1)
        try:
            answer = await self.sender.send(spec)
        except BaseException as exc:
            timeline.attempt_ends(token, None, exc)
            limiter.after_failure(ticket)
            gate.release()
            if not isinstance(exc, Exception):
                raise
            return (await self.fetch(spec, state=_first(started, None), failed=exc))[0]
        status = answer.status_code
        timeline.attempt_ends(token, status, None)
        limiter.after_answer(ticket, status, answer.headers)
        gate.release()
        if status in self._retry_statuses or status == 418:
            try:
                self._check_status(answer, spec.host)
            except Exception as exc:
                return (await self.fetch(spec, state=_first(started, status), failed=exc))[0]
        if status >= 400:
            cause = http_cause(answer)
            return Outcome(None, status, cause, cause, time.monotonic() - started, 1)
        try:
            value = self.parse(answer)
        except Exception as exc:
            return self._parse_failed(spec, _first(started, status), status, exc)
        if self.store is not None:
            self.store.put(spec, answer)
        return Outcome(value, status, None, None, time.monotonic() - started, 1)

    async def fetch(
        self,
        spec: RequestSpec,
        *,
        kept: Answer | None = None,
        look_up: bool = True,
        state: Attempts | None = None,
        failed: Exception | None = None,
    ) -> tuple[Outcome, Answer | None]:
        """Send one request under every policy; read its answer. Never raises but on cancel.

        ``kept``: an answer from the store, used instead of sending; ``look_up=False``: the
        store was already asked. ``failed``: the first attempt (counted in ``state``) was made
        and failed so; retry it if the policy says so.
        """
        state = Attempts() if state is None else state
        if kept is None and look_up and self.store is not None:
            kept = self.store.get(spec)
        if kept is not None:
            self.timeline.cache_hit(spec)
        try:
            answer = kept if kept is not None else await self._attempt_all(spec, state, failed)
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
        return self._read_answer(spec, state, answer, kept=kept is not None), answer

    def _read_answer(
        self, spec: RequestSpec, state: Attempts, answer: Answer, *, kept: bool
    ) -> Outcome:
        """The outcome of an answer that came (or was kept): parsed, or why it is not."""
        elapsed = time.monotonic() - (state.started or time.monotonic())
        status = answer.status_code
        if status >= 400:
            cause = http_cause(answer)
            return Outcome(None, status, cause, cause, elapsed, state.count)
        try:
            value = self.parse(answer)
        except Exception as exc:
            return self._parse_failed(spec, state, status, exc)
        if not kept and self.store is not None:
            self.store.put(spec, answer)
        return Outcome(value, status, None, None, elapsed, state.count)

    async def _attempt_all(
        self, spec: RequestSpec, state: Attempts, failed: Exception | None = None
    ) -> Answer:
        """The first attempt (unless it ``failed`` already), then (only if it failed in a
        retryable way) the retries: the success path never builds a retrier."""
        host = spec.host
        if failed is None:
            try:
                return await self._send(spec, host, state)
            except Exception as exc:
                failed = exc
        if not self.retries.wanted(failed):
            raise failed
        hand_over_place()  # waiting to retry: let another row start meanwhile
        return await self.retries.after(spec, failed, lambda: self._send(spec, host, state))

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
                    answer = await self.sender.send(spec, limiter.wire_watch(ticket))
                except BaseException as exc:
                    timeline.attempt_ends(token, None, exc)
                    limiter.after_failure(ticket)
                    raise
                timeline.attempt_ends(token, answer.status_code, None)
                limiter.after_answer(ticket, answer.status_code, answer.headers)
            finally:
                gate.release()
            break
        state.status = answer.status_code
        self._check_status(answer, host)
        return answer

    def _check_status(self, answer: Answer, host: str) -> None:
        """Raise when the answer's status is one to retry (or the host's pause is too long)."""
        status = answer.status_code
        if status in self.policy.retry.statuses or (
            status == 418 and "retry-after" in answer.headers  # a ban: wait, like a 429
        ):
            hold = self.limiter.hold(host)
            if hold.failure is not None:  # the server asked for more than max_wait
                raise HostPaused(hold.failure)
            retry_after = parse_retry_after(answer.headers.get("retry-after"))
            raise RetryableStatus(answer, retry_after)

    def _parse_failed(
        self, spec: RequestSpec, state: Attempts, status: int, exc: Exception
    ) -> Outcome:
        if isinstance(exc, AnswerError):
            text = redact(str(exc), secret_values(spec.headers, spec.params, spec.url))
            elapsed = time.monotonic() - (state.started or time.monotonic())
            return Outcome(None, status, text, exc.cause, elapsed, state.count)
        return self._failed(spec, state, "parse error", status, exc)

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
