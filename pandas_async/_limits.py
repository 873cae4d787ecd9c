"""Client-side limits as small parts, each with one job and no clock of its own.

Every part takes ``now`` (seconds on a monotonic clock) from its caller, so tests drive time by
hand. ``_limiter.Limiter`` composes them behind one "before send / after answer" pair, the way
botocore's adaptive retry mode composes a token bucket, a rate calculator and a clock.

- ``SendWindow``: at most N sends in any window of one period, counted from send times.
- ``Gcra``: even spacing with a tolerance (the generic cell rate algorithm, a leaky bucket's twin).
- ``LearnedPace``: a host's start rate learned from its throttles (AIMD, as TCP does).
- ``BucketGaps``: a no-burst leaky bucket's interval, read from the gaps between our sends.
- ``QuotaBudget``: what a server's quota headers say is left, as a budget of sends.
"""

from __future__ import annotations

import bisect
import collections
import math
from collections.abc import Container, Iterable

__all__ = [
    "BURST_GAP",
    "PACE_MARGIN",
    "WINDOW_MARGIN",
    "BucketGaps",
    "Gcra",
    "LearnedPace",
    "QuotaBudget",
    "SendWindow",
    "pace_interval",
]

# Added to every window: a request reaches the server a little after we send it, and by a
# varying amount; 20 ms kept every 1 s window at the server within N in 36 measured runs.
WINDOW_MARGIN = 0.02
# Added to each evenly paced interval (as a fraction of it, within [1 ms, 20 ms]): a
# leaky-bucket server with no burst (nginx limit_req) refuses a request 1 ms early, and
# arrivals jitter by a few milliseconds on a busy machine.
PACE_MARGIN = 0.03
# Requests sent this close together went out as one burst.
BURST_GAP = 0.02
# While a bucket's interval is unknown, each send waits this much longer than the one before.
SEARCH_GROWTH = 1.25
# How much later than it was sent a request that opened a connection may reach the server.
CONNECT_SLACK = 0.02


def pace_interval(rate: float) -> float:
    """Seconds between evenly paced starts at ``rate`` per second, with a safety margin."""
    interval = 1.0 / rate
    return interval + min(0.02, max(0.001, PACE_MARGIN * interval), 0.1 * interval)


class SendWindow:
    """At most ``limit`` sends in any window of ``period`` seconds (plus a margin).

    Counting from send times, not answers, lets a job reach the allowed rate however slow the
    answers are, and a slow answer holds up nobody: only sends are remembered.
    """

    __slots__ = ("_sent", "limit", "margin", "period")

    def __init__(self, limit: int, period: float, *, margin: float = WINDOW_MARGIN) -> None:
        self.limit = limit
        self.period = period
        self.margin = margin
        self._sent: collections.deque[float] = collections.deque(maxlen=limit)

    def delay(self, now: float) -> float:
        """Seconds to wait before the next send may go."""
        if len(self._sent) < self.limit:
            return 0.0
        return max(0.0, self._sent[0] + self.period + self.margin - now)

    def record(self, now: float) -> None:
        self._sent.append(now)  # maxlen drops the oldest

    def record_late(self, sent_at: float) -> None:
        """A send not recorded when it went (its place in time kept)."""
        self._insert(sent_at)

    def _insert(self, when: float) -> None:
        """Record ``when`` in order: usually the latest, so appended; else the times re-sorted."""
        sent = self._sent
        if not sent or when >= sent[-1]:
            sent.append(when)  # maxlen drops the oldest
            return
        times = sorted([*sent, when])
        self._sent = collections.deque(times[-self.limit :], maxlen=self.limit)

    @property
    def full(self) -> bool:
        return len(self._sent) >= self.limit

    def restamp(self, sent_at: float, answered_at: float) -> None:
        """Count a send from a later moment: when it went on the wire, or its answer (it may
        have reached the server that late, after opening a connection).

        Keeps the times sorted, so the oldest is first and falls out first.
        """
        try:
            self._sent.remove(sent_at)
        except ValueError:
            return  # already out of the window
        self._insert(answered_at)

    def __repr__(self) -> str:
        return f"SendWindow(limit={self.limit}, period={self.period:g})"


class Gcra:
    """Starts spaced ``interval`` apart, with up to ``tolerance`` seconds of them early (a burst).

    The theoretical arrival time (TAT) is when the next start would be due at an even pace; a
    start may go once ``now >= TAT - tolerance``. ``burst=b`` is a tolerance of ``(b-1)``
    intervals: b starts at once, then one per interval.
    """

    __slots__ = ("_tat", "interval", "tolerance")

    def __init__(self, interval: float, tolerance: float = 0.0) -> None:
        self.interval = interval
        self.tolerance = tolerance
        self._tat = -math.inf

    def delay(self, now: float) -> float:
        return max(0.0, self._tat - self.tolerance - now)

    def record(self, now: float) -> None:
        self._tat = max(self._tat, now) + self.interval

    def sent_late(self, when: float) -> None:
        """The latest start went out at ``when``, later than recorded: space the next from it."""
        self._tat = max(self._tat, when + self.interval)

    def not_before(self, when: float) -> None:
        """No start before ``when`` (a window that has to turn first)."""
        self._tat = max(self._tat, when + self.tolerance)

    def retime(self, interval: float) -> None:
        """A new interval, for the start already due too (one interval after the last)."""
        self._tat += interval - self.interval
        self.interval = interval

    def __repr__(self) -> str:
        return f"Gcra(interval={self.interval:g}, tolerance={self.tolerance:g})"


class LearnedPace:
    """The start rate a host sustains, learned from its throttles: cut on one, grow otherwise.

    ``rate`` starts at ``start``. A throttle of a request sent after the last cut multiplies it
    by ``cut`` (requests sent before that cut belong to the same burst and teach nothing new)
    and remembers the rate refused (``peak``). Each fine answer grows it: by 1/s per answer
    until the first cut (slow start, doubling in well under a second); after a cut, a tenth of
    the way back to just below the peak per answer (as CUBIC returns quickly to where the
    trouble began), then by ``1/rate`` per answer (about 1/s per second) to probe above it.
    ``ceiling``
    (the call's ``rate=``) is never passed; with ``settle`` a cut lowers it too, for a host
    paced at the call's rate that still refuses now and then (its clock and ours disagree by a
    few milliseconds): the pace settles a little below the rate instead of refusing again.
    With ``gaps``, while they show a no-burst leaky bucket, the rate is theirs instead.
    """

    __slots__ = (
        "_cut_at", "ceiling", "cut", "floor", "gaps", "measured", "peak", "rate", "settle",
        "slow_start",
    )  # fmt: skip

    def __init__(
        self,
        start: float,
        now: float,
        *,
        ceiling: float | None = None,
        cut: float = 0.5,
        floor: float = 0.2,
        slow_start: bool = True,
        settle: bool = False,
        gaps: BucketGaps | None = None,
    ) -> None:
        self.ceiling = ceiling
        self.settle = settle
        self.cut = cut
        self.floor = floor
        self.rate = self._bounded(start)
        self.slow_start = slow_start
        self.peak = 0.0
        self.measured = False  # the latest cut went to what the host was seen to take
        self._cut_at = now
        self.gaps = gaps
        self._follow_gaps()

    def _follow_gaps(self) -> bool:
        """Take the bucket's interval as the pace, while the gaps show a no-burst bucket."""
        if self.gaps is None:
            return False
        interval = self.gaps.interval
        if interval is None:  # not such a bucket (that never changes back): count instead
            # Nothing has been counted yet, so grow as from a first refusal (slow start): a host
            # that took our evenly paced sends has said nothing of its limit.
            self.gaps = None
            self.slow_start = True
            return False
        self.rate = self._bounded(1.0 / interval)
        self.slow_start = self.measured = False
        return True

    def _bounded(self, rate: float) -> float:
        rate = max(self.floor, rate)
        return rate if self.ceiling is None else min(self.ceiling, rate)

    @property
    def interval(self) -> float:
        return pace_interval(self.rate)

    def on_throttle(self, sent_at: float, now: float, let_through: float = 0.0) -> None:
        """A request sent at ``sent_at`` was refused; ``let_through``: how many the host
        accepted in the second before it (what a window server takes per second)."""
        if self.gaps is not None:
            self.gaps.refused(sent_at)
            if self._follow_gaps():
                return
        if sent_at < self._cut_at:
            return
        if not self.settle and let_through >= self.rate * self.cut:
            # The host showed what it takes: go there (no cut when already there: the window
            # is full, wait for it to turn), and probe above it only slowly.
            self.peak = self.rate = self._bounded(min(self.rate, let_through))
            self.measured = True
        else:
            self.peak = self.rate
            self.rate = self._bounded(self.rate * self.cut)
            self.measured = False
        if self.settle:
            self.ceiling = self.rate
        self.slow_start = False
        self._cut_at = now

    def on_send(self) -> None:
        if self.gaps is not None:
            self.gaps.sent()
            self._follow_gaps()

    def on_success(self, sent_at: float | None = None) -> None:
        """A request (sent at ``sent_at``) was answered fine."""
        if self.gaps is not None and sent_at is not None:
            self.gaps.accepted(sent_at)
            if self._follow_gaps():
                return
        step = 1.0  # slow start: +1/s per fine answer (doubling in about 0.7 s)
        if not self.slow_start:
            above = (0.05 if self.measured else 1.0) / self.rate  # +0.05 or +1/s a second
            step = max(above, (0.95 * self.peak - self.rate) / 10)
        self.rate = self._bounded(self.rate + step)

    def __repr__(self) -> str:
        return f"LearnedPace(rate={self.rate:.3g}/s, slow_start={self.slow_start})"


class BucketGaps:
    """A no-burst leaky bucket's interval (nginx ``limit_req``'s default), from our send times.

    Such a bucket takes a request only when the last one it took is at least 1/r old, and a
    refused one does not count. So 1/r lies above ``lo``, the largest gap from an accepted send
    to a refused one after it, and at or below ``hi``, the smallest gap between accepted sends.
    A server that took two requests within ``BURST_GAP`` is not one (a window, a token bucket);
    nor is one that refused a send more than 1.5 ``hi`` after an accepted one (a window that
    counts): ``interval`` is None then, for good.

    Until an accepted gap is known, ``interval`` searches: each send waits ``SEARCH_GROWTH``
    times longer than the one before, so the refusals are few (about log(1/r / BURST_GAP))
    however late answers come. Then it is halfway between lo and hi (the pacer adds its
    margin): an accepted send at that pace lowers hi, a refused one raises lo, and the pace
    closes in on 1/r from above. Counting what went through in a second instead reads about
    half the rate: paced just above it, a bucket refuses every other request.
    """

    __slots__ = ("_accepted", "_late", "bursts", "hi", "lo", "search")

    def __init__(
        self,
        accepted: Iterable[float],
        refused: Iterable[float] = (),
        late: Container[float] = (),
    ) -> None:
        self._accepted: list[float] = []  # send times, sorted; the latest 64
        # Send times of requests that opened a connection: they may have reached the server up
        # to CONNECT_SLACK later, so a gap that begins or ends at one is stretched or shrunk.
        self._late = late
        self.bursts = False
        self.hi = math.inf
        self.lo = 0.0
        for sent_at in sorted(accepted):
            self.accepted(sent_at)
        for sent_at in refused:
            self.refused(sent_at)
        self.search = max(BURST_GAP, self.lo)

    def accepted(self, sent_at: float) -> None:
        times = self._accepted
        i = bisect.bisect(times, sent_at)
        for other in times[max(0, i - 1) : i + 1]:
            gap = abs(sent_at - other)
            if gap < BURST_GAP:
                self.bursts = True
            else:  # at the server it may have been longer, if the later one arrived late
                self.hi = min(self.hi, gap + CONNECT_SLACK * (max(sent_at, other) in self._late))
        times.insert(i, sent_at)
        if len(times) > 64:
            del times[0]

    def refused(self, sent_at: float) -> None:
        i = bisect.bisect(self._accepted, sent_at)
        if i:  # at the server it may have been shorter, if the accepted one arrived late
            previous = self._accepted[i - 1]
            gap = sent_at - previous - CONNECT_SLACK * (previous in self._late)
            self.lo = max(self.lo, gap)

    def sent(self) -> None:
        if self.hi == math.inf:
            self.search *= SEARCH_GROWTH

    @property
    def interval(self) -> float | None:
        """Seconds between sends the bucket takes (no margin); None: not such a bucket."""
        if self.bursts or self.lo > 1.5 * self.hi:
            return None
        if self.hi == math.inf:
            return self.search
        return max(self.lo, (self.lo + self.hi) / 2)

    def __repr__(self) -> str:
        return f"BucketGaps(lo={self.lo:.4g}, hi={self.hi:.4g}, bursts={self.bursts})"


class QuotaBudget:
    """Sends left in a server's quota window, from its headers (``X-RateLimit-Remaining``...).

    An answer's remaining count was taken when the server handled it; requests sent after it
    may not be counted in it yet, so they are taken off (never more in flight than the quota
    left). Within one window the budget only goes down; a new window (after ``reset_at``) starts
    unknown, so the next answer sets it afresh.
    """

    __slots__ = ("left", "reset_at")

    def __init__(self) -> None:
        self.left: int | None = None  # None: unknown, no limit known
        self.reset_at: float | None = None

    def observe(self, remaining: int, reset_at: float | None, sent_since: int, now: float) -> None:
        """An answer says ``remaining``; ``sent_since`` requests went out after its request did
        (the server may not have counted them yet when it answered)."""
        if reset_at is not None and reset_at <= now:
            return  # an answer from a window that is already over
        self._expire(now)
        budget = remaining - sent_since
        self.left = budget if self.left is None else min(self.left, budget)
        if reset_at is not None:
            # Resets in whole seconds are rounded up: the earliest one heard is the closest.
            self.reset_at = reset_at if self.reset_at is None else min(self.reset_at, reset_at)

    def take(self) -> None:
        if self.left is not None:
            self.left -= 1

    def turned(self) -> None:
        """The window is known to have turned (before the reset heard): the next answer says."""
        self.left = None
        self.reset_at = None

    def _expire(self, now: float) -> None:
        if self.reset_at is not None and now >= self.reset_at:
            self.left = None
            self.reset_at = None

    def wait(self, now: float, in_flight: int) -> float | None:
        """0: a send may go; seconds: wait until the reset; None: wait for an answer in flight."""
        self._expire(now)
        if self.left is None or self.left > 0:
            return 0.0
        if self.reset_at is not None:
            return self.reset_at - now
        # Nothing left and no reset known: an answer in flight will say more; with none in
        # flight, one request finds out.
        return None if in_flight else 0.0

    def __repr__(self) -> str:
        return f"QuotaBudget(left={self.left}, reset_at={self.reset_at})"
