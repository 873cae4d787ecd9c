"""Client-side limits: a sliding-window rate limiter and a per-host cool-down."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable

__all__ = ["HostCooldown", "RateSlot", "SlidingWindowLimiter"]


class SlidingWindowLimiter:
    """At most ``limit`` requests in any window of ``period`` seconds, as the server sees them.

    A request may start once the request ``limit`` places before it has been answered and a full
    ``period`` has passed since. Counting from the answer rather than from the send keeps the
    guarantee at the server too, whose arrival times lag the client's sends by the connection
    set-up: a server with a sliding window never sees more than ``limit`` arrivals in one. The
    cost is one round trip per window, negligible for per-minute and per-hour limits.
    Waiters are served first come, first served.
    """

    def __init__(
        self, limit: int, period: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.period = period
        self._clock = clock
        self._slots: collections.deque[RateSlot] = collections.deque(maxlen=limit)
        self._lock = asyncio.Lock()

    async def acquire(self) -> RateSlot:
        """Wait for a free place in the window; ``release`` the slot when the answer is in."""
        async with self._lock:  # FIFO: the next in line waits, the rest queue behind it
            if len(self._slots) == self.limit:
                oldest = self._slots[0]
                await oldest.done.wait()
                delay = oldest.finished_at + self.period - self._clock()
                if delay > 0:
                    await asyncio.sleep(delay)
            slot = RateSlot()
            self._slots.append(slot)  # maxlen drops the oldest
            return slot

    def release(self, slot: RateSlot) -> None:
        if not slot.done.is_set():
            slot.finished_at = self._clock()
            slot.done.set()

    def __repr__(self) -> str:
        return f"SlidingWindowLimiter(limit={self.limit}, period={self.period:g})"


class RateSlot:
    """One request's place in the window."""

    __slots__ = ("done", "finished_at")

    def __init__(self) -> None:
        self.done = asyncio.Event()
        self.finished_at = 0.0


class HostCooldown:
    """A pause per host: after a 429/503 with Retry-After, every request to that host waits."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
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
