"""Where one call's time went: the engine's few timing hooks and what they add up to.

The engine calls a :class:`Timeline` at a handful of points (an attempt sent and answered, a wait
for the rate limiter, for a host's cool-down, a backoff before a retry). The timeline keeps:

- the wall time split by what the call was doing, each moment counted once, under the first of
  these that applies: ``cool-down`` (a row waits because its host asked for a pause), ``rate
  limiter`` (a row holds a slot but waits for the rate), ``in flight`` (a request is on the wire),
  ``backoff`` (a row waits before retrying), else ``other`` (setting up, parsing);
- the seconds each host spent cooling down while rows waited on it;
- when each attempt started and was answered, and with which status (for the report's plot).

Each hook is a few integer and float operations: no object per call but the two floats the
clock returns. ``pandas_async._tracing`` extends it with spans; the engine knows only this class.
No pandas, no numpy: the engine imports it.
"""

from __future__ import annotations

import time
from array import array
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._requests import RequestSpec

__all__ = ["PHASES", "Timeline"]

# Index order is the priority order: the first phase with someone in it owns the moment.
COOLDOWN, LIMITER, IN_FLIGHT, BACKOFF, OTHER = range(5)
PHASES = ("cool-down", "rate limiter", "in flight", "backoff", "other")
NO_STATUS = 0  # stored for an attempt that got no answer


class Timeline:
    """The timing of one call. Made before the engine starts; read once it is done."""

    __slots__ = (
        "_cooling",
        "_count",
        "_last",
        "_spent",
        "answered_at",
        "cooldown_by_host",
        "cooldowns",
        "ended",
        "started",
        "started_at",
        "statuses",
    )

    def __init__(self, *, clock_start: float | None = None) -> None:
        self.started = time.perf_counter() if clock_start is None else clock_start
        self.ended: float | None = None
        self._last = self.started
        self._count = [0, 0, 0, 0]  # rows in each phase but OTHER
        self._spent = [0.0, 0.0, 0.0, 0.0, 0.0]
        self._cooling: dict[str, list[float]] = {}  # host -> [rows waiting, since]
        self.cooldown_by_host: dict[str, float] = {}
        self.cooldowns = 0  # pauses asked for by hosts
        self.started_at = array("d")  # seconds after `started`, one per attempt
        self.answered_at = array("d")
        self.statuses = array("H")  # HTTP status per attempt, NO_STATUS when none came

    # -- the phase clock ----------------------------------------------------------------------

    def _move(self, phase: int, delta: int) -> float:
        now = time.perf_counter()
        count = self._count
        owner = (
            COOLDOWN if count[0] else LIMITER if count[1] else IN_FLIGHT if count[2]
            else BACKOFF if count[3] else OTHER
        )  # fmt: skip
        self._spent[owner] += now - self._last
        self._last = now
        count[phase] += delta
        return now

    # -- hooks the engine calls ---------------------------------------------------------------

    def attempt_begins(self, spec: RequestSpec, attempt: int) -> Any:
        """One attempt (a first try, a retry or a page) goes on the wire; returns a token for
        :meth:`attempt_ends`. ``attempt`` counts from 1 per request."""
        # _move(IN_FLIGHT, 1), written out: this and attempt_ends run for every request.
        now = time.perf_counter()
        count = self._count
        owner = (
            COOLDOWN if count[0] else LIMITER if count[1] else IN_FLIGHT if count[2]
            else BACKOFF if count[3] else OTHER
        )  # fmt: skip
        self._spent[owner] += now - self._last
        self._last = now
        count[IN_FLIGHT] += 1
        return now

    def attempt_ends(self, token: Any, status: int | None, error: BaseException | None) -> None:
        """The attempt ``token`` came back with ``status``, or failed with ``error``."""
        now = time.perf_counter()  # _move(IN_FLIGHT, -1), written out
        count = self._count
        owner = (
            COOLDOWN if count[0] else LIMITER if count[1] else IN_FLIGHT if count[2]
            else BACKOFF if count[3] else OTHER
        )  # fmt: skip
        self._spent[owner] += now - self._last
        self._last = now
        count[IN_FLIGHT] -= 1
        started = self.started
        self.started_at.append(token - started)
        self.answered_at.append(now - started)
        self.statuses.append(status or NO_STATUS)

    def limiter_wait_begins(self) -> None:
        self._move(LIMITER, 1)

    def limiter_wait_ends(self) -> None:
        self._move(LIMITER, -1)

    def backoff_begins(self) -> None:
        self._move(BACKOFF, 1)

    def backoff_ends(self) -> None:
        self._move(BACKOFF, -1)

    def cooldown_wait_begins(self, host: str) -> None:
        """A row waits for ``host``'s cool-down (also: its own Retry-After pause for one)."""
        now = self._move(COOLDOWN, 1)
        state = self._cooling.setdefault(host, [0, now])
        if state[0] == 0:
            state[1] = now
        state[0] += 1

    def cooldown_wait_ends(self, host: str) -> None:
        now = self._move(COOLDOWN, -1)
        state = self._cooling[host]
        state[0] -= 1
        if state[0] == 0:
            name = host.rpartition("@")[2]  # never a user:password@ in a report
            self.cooldown_by_host[name] = self.cooldown_by_host.get(name, 0.0) + now - state[1]

    def cooldown_started(self, host: str, seconds: float) -> None:
        """``host`` asked for a pause of ``seconds`` (a 429/503 with Retry-After, a quota)."""
        self.cooldowns += 1

    def cache_hit(self, spec: RequestSpec) -> None:
        """An answer came from the cache: nothing was sent."""

    def finish(self, failed_rows: int | None = None) -> None:
        """The engine is done: close the books (hooks are not called after this). ``failed_rows``
        is None when the call did not finish (cancelled, or a bug)."""
        if self.ended is None:
            self._move(IN_FLIGHT, 0)
            self.ended = self._last

    # -- results ------------------------------------------------------------------------------

    @property
    def seconds(self) -> float:
        end = time.perf_counter() if self.ended is None else self.ended
        return end - self.started

    def breakdown(self) -> dict[str, float]:
        """Wall seconds by phase (see the module docstring); they add up to :attr:`seconds`."""
        return dict(zip(PHASES, self._spent, strict=True))
