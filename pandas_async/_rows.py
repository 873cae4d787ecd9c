"""Rows to runners: one job per distinct request, handed out in order, a held host's rows parked.

The engine runs ``concurrency`` runners, not one task per row. ``group_rows`` makes one job per
distinct request (identical GET/HEAD requests share one, ``dedupe=``); a ``RowQueue`` hands the
jobs to runners in order and parks the rows of a host on hold; a runner whose row has to wait
hands its ``RunnerPlace`` to a new runner first, so a waiting row never holds up the others.
"""

from __future__ import annotations

import collections
import contextvars
from collections.abc import Awaitable, Callable, Hashable, Iterator, Sequence

from ._limiter import Limiter
from ._outcome import Outcome
from ._requests import RequestSpec

__all__ = [
    "Job",
    "RowQueue",
    "RunnerPlace",
    "group_rows",
    "hand_over_place",
    "not_sent",
    "take_place",
]

Job = tuple[RequestSpec, list[int]]  # a request and the rows that share its answer


def group_rows(specs: Sequence[RequestSpec], *, dedupe: bool) -> list[Job]:
    """One job per request, in order; with ``dedupe``, identical requests share one job."""
    jobs: list[Job] = []
    seen: dict[Hashable, list[int]] = {}
    for i, spec in enumerate(specs):
        key = spec.dedupe_key() if dedupe else None
        if key is None:
            jobs.append((spec, [i]))
        elif key in seen:
            seen[key].append(i)
        else:
            seen[key] = rows = [i]
            jobs.append((spec, rows))
    return jobs


class RunnerPlace:
    """A runner's place in the crew; handed to a new runner when its row has to wait."""

    __slots__ = ("_start_runner", "handed_over")

    def __init__(self, start_runner: Callable[[], None]) -> None:
        self._start_runner = start_runner
        self.handed_over = False

    def hand_over(self) -> None:
        if not self.handed_over:
            self.handed_over = True
            self._start_runner()


_PLACE: contextvars.ContextVar[RunnerPlace] = contextvars.ContextVar("pandas_async_place")


def hand_over_place() -> None:
    """The current row is about to wait: let a new runner take the next rows meanwhile."""
    place = _PLACE.get(None)
    if place is not None:
        place.hand_over()


def take_place(start_runner: Callable[[], None]) -> RunnerPlace:
    """The calling runner's place (``start_runner`` starts its replacement when handed over)."""
    place = RunnerPlace(start_runner)
    _PLACE.set(place)
    return place


class RowQueue:
    """Hands rows to runners in order; parks the rows of a host on hold until it is free.

    A parked row is a tuple in a deque, not a task: a cool-down of 100,000 rows costs what the
    rows already cost. A host on hold for longer than ``Retry(max_wait=)`` fails its rows.
    """

    def __init__(
        self,
        jobs: list[Job],
        limiter: Limiter,
        finish: Callable[[list[int], Outcome], Awaitable[None]],
    ) -> None:
        self._jobs: Iterator[Job] = iter(jobs)
        self._limiter = limiter
        self._finish = finish
        self._parked: dict[str, collections.deque[Job]] = {}

    def take(self) -> Job | None:
        """The next row at once, when no host has been held yet and none is parked (the
        common case); None: ask ``next``, which also says when the rows are done."""
        if self._limiter.calm and not self._parked:
            return next(self._jobs, None)
        return None

    async def next(self) -> Job | None:
        limiter = self._limiter
        while True:
            wait: float | None = None
            for host, queue in list(self._parked.items()):
                hold = limiter.hold(host)
                if hold.ready:
                    job = queue.popleft()
                    if not queue:
                        del self._parked[host]
                    return job
                if hold.failure is not None:
                    del self._parked[host]
                    for _, rows in queue:
                        await self._finish(rows, not_sent(hold.failure))
                elif hold.wait is not None:
                    wait = hold.wait if wait is None else min(wait, hold.wait)
            fresh = next(self._jobs, None)
            if fresh is None:
                if not self._parked:
                    return None
                await limiter.wait_change(wait)
                continue
            if fresh[0].problem is not None:
                return fresh  # fails without a request: nothing to wait for
            host = fresh[0].host
            hold = limiter.hold(host)
            if hold.ready:
                return fresh
            if hold.failure is not None:
                await self._finish(fresh[1], not_sent(hold.failure))
            else:
                self._parked.setdefault(host, collections.deque()).append(fresh)


def not_sent(cause: str) -> Outcome:
    """The outcome of a row that was never sent (its host on hold too long)."""
    return Outcome(None, None, f"not sent: {cause}", cause, 0.0, 0)
