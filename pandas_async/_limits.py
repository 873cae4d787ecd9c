"""Client-side limits: a sliding-window rate limiter and a per-host cool-down."""

from __future__ import annotations

import asyncio
import collections
import time

__all__ = ["HostCooldown", "SlidingWindowLimiter"]


class SlidingWindowLimiter:
    """At most ``limit`` acquisitions in any window of ``period`` seconds.

    Keeps the start times of the last ``limit`` acquisitions: a new one may start once the oldest
    of them is ``period`` seconds old. Waiters are served first come, first served.
    """

    def __init__(self, limit: int, period: float, *, clock=time.monotonic) -> None:  # type: ignore[no-untyped-def]
        self.limit = limit
        self.period = period
        self._clock = clock
        self._starts: collections.deque[float] = collections.deque(maxlen=limit)
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:  # FIFO: the next in line sleeps, the rest queue behind it
            starts = self._starts
            if len(starts) == self.limit:
                delay = starts[0] + self.period - self._clock()
                if delay > 0:
                    await asyncio.sleep(delay)
            starts.append(self._clock())  # maxlen drops the oldest

    def __repr__(self) -> str:
        return f"SlidingWindowLimiter(limit={self.limit}, period={self.period:g})"


class HostCooldown:
    """A pause per host: after a 429/503 with Retry-After, every request to that host waits."""

    def __init__(self, *, clock=time.monotonic) -> None:  # type: ignore[no-untyped-def]
        self._clock = clock
        self._until: dict[str, float] = {}

    def pause(self, host: str, seconds: float) -> None:
        until = self._clock() + seconds
        if until > self._until.get(host, 0.0):
            self._until[host] = until

    def remaining(self, host: str) -> float:
        until = self._until.get(host)
        return 0.0 if until is None else until - self._clock()

    async def wait(self, host: str) -> None:
        while (delay := self.remaining(host)) > 0:
            await asyncio.sleep(delay)
