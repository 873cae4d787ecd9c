"""What one call's limiter knows of each host, and what it hands the engine: a ``Hold`` (may a
request go now?) and a ``Ticket`` (one request on its way). ``Host.throttled`` is how a host that
refuses requests as too many gets paced: at the call's ``rate=``, or at a pace learned from what
it let through (``_limits.LearnedPace``; for a no-burst leaky bucket, from the gaps between sends it
took and refused, ``_limits.BucketGaps``). Time comes from the caller, as in ``_limits``.
"""

from __future__ import annotations

import asyncio
import collections
import math

from ._limits import (
    BURST_GAP,
    WINDOW_MARGIN,
    BucketGaps,
    Gcra,
    LearnedPace,
    QuotaBudget,
    SendWindow,
)
from ._options import Rate

__all__ = ["READY", "Hold", "Host", "Ticket"]


class Hold:
    """Why a host cannot take a request now: ``wait`` seconds (None: until an answer comes
    back), or ``failure``, the cause to fail rows with when the wait is beyond ``max_wait``."""

    __slots__ = ("failure", "wait")

    def __init__(self, wait: float | None = 0.0, failure: str | None = None) -> None:
        self.wait = wait
        self.failure = failure

    @property
    def ready(self) -> bool:
        return self.failure is None and self.wait is not None and self.wait <= 0

    def __repr__(self) -> str:
        return f"Hold(wait={self.wait}, failure={self.failure!r})"


READY = Hold()


class Ticket:
    """One request on its way: what the limiter needs to learn from its answer."""

    __slots__ = (
        "counted", "host", "new_connection", "probe", "sent_at", "seq", "trial", "waited", "wired",
    )  # fmt: skip

    def __init__(
        self, host: Host, sent_at: float, probe: bool, waited: float, new_connection: bool
    ) -> None:
        self.host = host
        self.sent_at = sent_at
        self.probe = probe
        self.waited = waited  # seconds spent pacing before the send
        self.new_connection = new_connection  # likely: more in flight than ever before
        self.seq = host.sent  # requests sent to the host so far, this one included
        self.trial = False  # one of the two sent together to see if the host takes bursts
        self.wired = False  # the sender said when it went on the wire (sent_at is that time)
        self.counted = host.policy is not None  # in the quota policy's window of sends
        if host.policy is not None:
            host.policy.record(sent_at)
        if new_connection:
            host.opened.append(sent_at)
        if host.pace is not None:  # a learned pace may change with each send (a search)
            host.pace.on_send()
            host.pace_gcra.interval = host.pace.interval


class Host:
    """What the limiter knows of one host."""

    __slots__ = (
        "connections", "in_flight", "lock", "name", "needs_probe", "oks", "opened", "pace",
        "pace_gcra", "pause_cause", "pause_until", "policy", "probe_out", "quota", "sent",
        "takes_bursts", "trial", "trial_passed",
    )  # fmt: skip

    def __init__(self, name: str) -> None:
        self.name = name
        self.in_flight = 0
        self.sent = 0  # requests sent so far
        self.connections = 0  # the most requests ever in flight: connections the pool keeps
        self.lock = asyncio.Lock()  # first come, first served through the host's pace
        self.pace: LearnedPace | None = None  # set once the host throttles
        self.pace_gcra = Gcra(0.0)
        self.pause_until = -math.inf
        self.pause_cause = ""
        self.needs_probe = False
        self.probe_out = False
        self.quota = QuotaBudget()
        # Under rate= with burst=None: whether the host takes a burst (None: not known yet).
        # Until its first two requests, sent together, are both answered without a refusal,
        # starts are paced evenly by ``trial`` (two at once, then one per interval).
        self.takes_bursts: bool | None = None
        self.trial: Gcra | None = None
        self.trial_passed = 0
        # Our latest sends, once the server said its quota's limit and window (the IETF
        # RateLimit-Policy): when the oldest of a full quota's worth is a window old, the
        # server's window has turned, if ours are the only requests it counts.
        self.policy: SendWindow | None = None
        # When the latest requests that were answered fine were sent, to measure its pace.
        self.oks: collections.deque[float] = collections.deque(maxlen=256)
        # When the latest requests that opened a connection were sent (they arrive later).
        self.opened: collections.deque[float] = collections.deque(maxlen=64)

    def throttled(self, ticket: Ticket, now: float, rate: Rate | None) -> None:
        """The host refused a request as too many: pace it evenly from now on."""
        if self.pace is None:
            if rate is not None:  # the call's own rate, evenly spaced
                ceiling = rate.limit / rate.period
                self.pace = LearnedPace(
                    ceiling, now, ceiling=ceiling, cut=0.97, slow_start=False, settle=True
                )
            else:  # found out from what went through
                gaps = BucketGaps(self.oks, [ticket.sent_at], late=self.opened)
                if gaps.interval is not None:
                    # No two requests taken at once (yet): maybe a no-burst leaky bucket, whose
                    # interval the gaps between sends show (BucketGaps).
                    self.pace = LearnedPace(1.0, now, cut=0.7, slow_start=False, gaps=gaps)
                else:
                    self.pace = self._counted_pace(ticket, now)
            self.pace_gcra = Gcra(self.pace.interval)
            # Whatever the server let through arrived before this refusal came back: pace on
            # from now (our latest send may have reached it later than we sent it).
            self.pace_gcra.record(now)
        else:
            self.pace.on_throttle(ticket.sent_at, now, self.let_through(ticket))
            if self.pace.gaps is not None:  # a longer interval: for the start already due too
                self.pace_gcra.retime(self.pace.interval)
            else:
                self.pace_gcra.interval = self.pace.interval
        if self.pace.measured:  # a window's worth went through: the next waits for it to turn
            sent = ticket.sent_at
            first = min((t for t in self.oks if sent - 1.0 <= t < sent), default=sent - 1.0)
            self.pace_gcra.not_before(first + 1.0 + WINDOW_MARGIN)

    def paced_ok(self, sent_at: float) -> None:
        """A request sent at ``sent_at`` to this paced host was answered fine."""
        assert self.pace is not None
        self.pace.on_success(sent_at)
        # The start already due moves too: after a search (BucketGaps) it was due one long
        # interval after the last send, or one too short once the bucket's interval is known.
        self.pace_gcra.retime(self.pace.interval)

    def _counted_pace(self, refused: Ticket, now: float) -> LearnedPace:
        """A pace from what went through in the second before ``refused`` was sent.

        Refused while others sent with it got through: a bucket that takes less at once than
        over time, so grow from there (slow start). Refused after a run of accepted ones: a
        window used up, whose count is the rate. (Nothing let through yet says nothing: slow
        start from one per second.)
        """
        taken = self.let_through(refused)
        burst = any(abs(t - refused.sent_at) < BURST_GAP for t in self.oks)
        pace = LearnedPace(max(1.0, taken), now, cut=0.7, slow_start=burst or not taken)
        if not pace.slow_start:
            pace.peak, pace.measured = pace.rate, True
        return pace

    def let_through(self, refused: Ticket) -> int:
        """Requests accepted that were sent in the second before ``refused`` was: what the
        host takes per second, as a window server (fixed, sliding) counts it."""
        sent = refused.sent_at
        return sum(1 for t in self.oks if sent - 1.0 <= t < sent)

    def quota_wait(self, now: float) -> float | None:
        """``QuotaBudget.wait``, with the quota's policy (q per w, when the server said it) as a
        window of our own sends: never more than q in any w (plus a margin), and once our latest
        q sends are that old, the server's window has turned (if it counts only this call), so
        an empty budget is waited out no longer than that."""
        wait = self.quota.wait(now, self.in_flight)
        policy = self.policy
        if policy is None or not policy.full:
            return wait
        turn = policy.delay(now)
        if wait is not None and wait <= 0:
            return turn
        if turn <= 0:
            self.quota.turned()
            return 0.0
        return turn if wait is None else min(wait, turn)
