"""One call's limiter: the parts of ``_limits`` behind a "before send / after answer" pair.

The engine asks three things and knows nothing of windows or buckets:

- ``hold(host)``: may a request to ``host`` go now (``READY``), must it wait (a cool-down, a
  probe in flight, an empty quota), or will the wait be longer than ``Retry(max_wait=)`` (a
  failure with the server's words)? Rows not started yet are parked on a hold, not awaited.
- ``before_send(host, slot)``: wait out the pacing (the host's learned pace, then the call's
  window and ``burst``), take a concurrency slot, and stamp the send. Returns a ``Ticket``.
- ``after_answer(ticket, status, headers)`` / ``after_failure(ticket)``: learn from the answer
  (Retry-After, quota headers, 429s) and adjust the host's limits.

The clocks are injected; the parts in ``_limits`` take ``now`` from their caller, so tests drive
time by hand. ``on_pause(host, seconds)`` (if set) is told of every pause a host asks for (a
Retry-After, a quota used up), for the call's timeline; ``paces(host)`` and ``pause_left(host)``
tell it which wait is which.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable, Mapping

from ._hosts import READY, Hold, Host, Ticket
from ._limits import Gcra, SendWindow, pace_interval
from ._options import Rate
from ._quota import parse_quota, parse_retry_after

__all__ = ["READY", "Hold", "Limiter", "Ticket"]

# Statuses whose Retry-After pauses the whole host; 503 and 418 only with one.
COOLDOWN_STATUSES = frozenset({429, 503, 418})
# A pause's end, and a quota's reset, are waited out this much longer: the server's clock and
# ours differ by the time an answer takes to arrive.
RESUME_MARGIN = 0.02
# A request that goes on the wire this much later than it was stamped is counted from then.
WIRE_SLACK = 0.001


class Limiter:
    def __init__(
        self,
        rate: Rate | None,
        burst: int | None,
        max_wait: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.rate = rate
        self.max_wait = max_wait
        self.clock = clock
        self.wall = wall
        self.on_pause: Callable[[str, float], None] | None = None  # host, seconds: a pause began
        self.window = SendWindow(rate.limit, rate.period) if rate is not None else None
        self.gcra: Gcra | None = None
        # burst=None: a host's first two requests go together, then starts are evenly paced
        # until both are answered without a refusal; only then may a window's N go at once. A
        # no-burst leaky bucket (nginx's default) refuses one request instead of N-1, and the
        # window is not filled by refused arrivals (each costs a whole period).
        self.trial_interval: float | None = None
        if rate is not None:
            interval = pace_interval(rate.limit / rate.period)
            if burst is not None:
                self.gcra = Gcra(interval, (burst - 1) * interval)
            else:
                self.trial_interval = interval
        self._lock = asyncio.Lock()  # first come, first served through the call's window
        self._hosts: dict[str, Host] = {}
        self._changed: asyncio.Event | None = None  # set when a host may have become free
        # No host has been paused or told of a quota yet: none can be on hold (``RowQueue``
        # hands rows out without asking ``hold``). Once False, it stays so for the call.
        self.calm = True

    # -- may a request go? ------------------------------------------------------------------

    def _host(self, name: str) -> Host:
        host = self._hosts.get(name)
        if host is None:
            host = self._hosts[name] = Host(name)
            if self.trial_interval is not None:
                host.trial = Gcra(self.trial_interval, self.trial_interval)
        return host

    def paces(self, name: str) -> bool:
        """Whether a request to ``name`` may wait for a pace (a rate, or a host's learned one)."""
        if self.window is not None or self.gcra is not None:
            return True
        host = self._hosts.get(name)
        return host is not None and host.pace is not None

    def pause_left(self, name: str) -> float:
        """Seconds left in ``name``'s pause (a Retry-After), or 0."""
        host = self._hosts.get(name)
        return 0.0 if host is None else max(0.0, host.pause_until - self.clock())

    def hold(self, name: str) -> Hold:
        host = self._hosts.get(name)
        return READY if host is None else self._hold(host, self.clock())

    def _hold(self, host: Host, now: float) -> Hold:
        left = host.pause_until - now
        if left > 0:
            if left > self.max_wait + RESUME_MARGIN:
                return Hold(left, host.pause_cause)
            return Hold(left)
        if host.probe_out:
            return Hold(None)
        wait = host.quota_wait(now)
        if wait is None:
            return Hold(None)
        if wait > 0:
            wait += RESUME_MARGIN
            if wait > self.max_wait + RESUME_MARGIN:
                reset = f"{wait:.0f} s" if wait >= 1 else f"{wait:.2f} s"
                return Hold(
                    wait,
                    f"the server's rate-limit quota is used up until its reset in {reset}, "
                    f"more than Retry(max_wait={self.max_wait:g})",
                )
            return Hold(wait)
        return READY

    async def wait_ready(self, name: str) -> Hold:
        """Wait until ``name`` may take a request; the hold that failed, or ``READY``."""
        while True:
            hold = self.hold(name)
            if hold.ready or hold.failure is not None:
                return hold
            await self.wait_change(hold.wait)

    async def wait_change(self, timeout: float | None) -> None:
        """Until a host may have become free (an answer came back), or ``timeout`` seconds."""
        if self._changed is None:
            self._changed = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    # -- before the send ----------------------------------------------------------------------

    async def before_send(self, name: str, slot: asyncio.Semaphore) -> Ticket | None:
        """Wait for the pace, then take ``slot`` (released by the caller after the answer).

        Returns None, holding no slot, when the host got a hold meanwhile: wait it out, then ask
        again.
        """
        host = self._host(name)
        if host.pace is None and self.window is None and self.gcra is None:
            await slot.acquire()  # nothing to pace: the common, fast path
            return self._admit(host, self.clock(), 0.0, slot)
        paced = 0.0
        async with host.lock:
            while host.pace is not None:
                if (delay := host.pace_gcra.delay(self.clock())) <= 0:
                    break
                paced += await self._nap(delay)
                if not self._hold(host, self.clock()).ready:
                    return None
            await slot.acquire()
            try:
                if self.window is not None or self.gcra is not None:
                    async with self._lock:
                        while (delay := self._call_delay(host, self.clock())) > 0:
                            paced += await self._nap(delay)
                        now = self.clock()
                        if self.window is not None:
                            self.window.record(now)
                        if self.gcra is not None:
                            self.gcra.record(now)
                        if host.trial is not None and host.takes_bursts is None:
                            host.trial.record(now)
                else:
                    now = self.clock()
                if host.pace is not None:
                    host.pace_gcra.record(now)
            except BaseException:
                slot.release()
                raise
            ticket = self._admit(host, now, paced, slot)
        return ticket

    def admit_now(self, name: str) -> Ticket | None:
        """The engine's fast path, for a caller already holding its concurrency slot: a ticket at
        once when nothing paces ``name`` (no rate, no burst, no learned pace) and nothing holds
        it (no pause, probe or empty quota); None: ``hold`` and ``before_send`` decide as usual."""
        if self.window is not None or self.gcra is not None:
            return None
        host = self._hosts.get(name) or self._host(name)
        if host.pace is not None or host.needs_probe:
            return None
        now = self.clock()
        quota = host.quota
        if (  # anything _hold would look at: ask it
            host.pause_until > now
            or host.probe_out
            or quota.reset_at is not None
            or (quota.left is not None and quota.left <= 0)
        ) and not self._hold(host, now).ready:
            return None
        quota.take()
        host.in_flight += 1
        host.sent += 1
        new_connection = host.in_flight > host.connections
        if new_connection:
            host.connections = host.in_flight
        return Ticket(host, now, False, 0.0, new_connection)

    async def _nap(self, delay: float) -> float:
        """Wait ``delay`` seconds, or less when an answer came back (it may free a place)."""
        started = self.clock()
        if delay < 0.005:
            await asyncio.sleep(delay)  # too short to be worth waking early
        else:
            await self.wait_change(delay)
        return self.clock() - started

    def _call_delay(self, host: Host, now: float) -> float:
        # The host's pace too: it may have been set (a 429) while this one waited.
        delay = host.pace_gcra.delay(now) if host.pace is not None else 0.0
        if self.window is not None:
            delay = max(delay, self.window.delay(now))
        if self.gcra is not None:
            delay = max(delay, self.gcra.delay(now))
        if host.trial is not None and host.takes_bursts is None:
            delay = max(delay, host.trial.delay(now))
        return delay

    def _admit(
        self, host: Host, now: float, waited: float, slot: asyncio.Semaphore
    ) -> Ticket | None:
        if not self._hold(host, now).ready:
            slot.release()
            return None
        probe = host.needs_probe
        if probe:
            host.needs_probe = False
            host.probe_out = True
        host.quota.take()
        host.in_flight += 1
        host.sent += 1
        new_connection = host.in_flight > host.connections
        if new_connection:
            host.connections = host.in_flight
        ticket = Ticket(host, now, probe, waited, new_connection)
        ticket.trial = host.trial is not None and host.takes_bursts is None and host.sent <= 2
        return ticket

    def wire_watch(self, ticket: Ticket) -> Callable[[], None] | None:
        """What the sender calls as ``ticket``'s request goes on the wire; None when no pace or
        window needs to know (nothing paces its host)."""
        if self.window is None and self.gcra is None and ticket.host.pace is None:
            return None
        return functools.partial(self.on_wire, ticket)

    def on_wire(self, ticket: Ticket) -> None:
        """``ticket``'s request went on the wire now, maybe later than stamped (it waited for a
        connection, or for the loop): count it from now, and space the next ones from it."""
        if ticket.wired:
            return  # a redirect's next hop
        ticket.wired = True
        now = self.clock()
        if now - ticket.sent_at < WIRE_SLACK:
            return
        host = ticket.host
        sent_at, ticket.sent_at = ticket.sent_at, now
        if self.window is not None:
            self.window.restamp(sent_at, now)
        if host.policy is not None and ticket.counted:
            host.policy.restamp(sent_at, now)
        for gcra in (self.gcra, host.trial, host.pace_gcra if host.pace is not None else None):
            if gcra is not None:
                gcra.sent_late(now)

    # -- after the answer ---------------------------------------------------------------------

    def after_failure(self, ticket: Ticket) -> None:
        """The request got no answer (connection error, timeout, cancel)."""
        host = ticket.host
        host.in_flight -= 1
        if ticket.probe:
            host.probe_out = False
            host.needs_probe = True  # the next request probes instead
        if ticket.new_connection and not ticket.wired and self.window is not None:
            self.window.restamp(ticket.sent_at, self.clock())
        self._notify()

    def after_answer(self, ticket: Ticket, status: int, headers: Mapping[str, str]) -> None:
        host = ticket.host
        host.in_flight -= 1
        if (
            status < 400
            and self.window is None
            and not ticket.probe
            and not _may_have_quota(headers)
        ):  # a plain answer, no rate: nothing to learn but that it went through
            host.oks.append(ticket.sent_at)
            if host.pace is not None:
                host.paced_ok(ticket.sent_at)
            if self._changed is not None:
                self._notify()
            return
        now = self.clock()
        if ticket.probe:
            host.probe_out = False
        retry_after = None
        if status in COOLDOWN_STATUSES:
            retry_after = parse_retry_after(headers.get("retry-after"), now=self.wall())
        # A 503 pauses the host but says nothing of its rate; a 418 with Retry-After is a ban.
        throttled = status == 429 or (status == 418 and retry_after is not None)
        if retry_after is not None:
            self._pause(host, now, retry_after, status)
        quota = parse_quota(headers, wall=self.wall()) if _may_have_quota(headers) else None
        if quota is not None:
            self.calm = False
            reset_at = None if quota.reset_in is None else now + quota.reset_in
            sent_since = host.sent - ticket.seq
            host.quota.observe(quota.remaining, reset_at, sent_since, now)
            if quota.limit is not None and quota.window is not None:
                if host.policy is None or host.policy.limit != quota.limit:
                    host.policy = SendWindow(quota.limit, quota.window)
                if not ticket.counted:  # sent before the policy was heard
                    ticket.counted = True
                    host.policy.record_late(ticket.sent_at)
            if quota.remaining <= 0 and reset_at is not None:
                throttled = throttled or status == 429
                if self.on_pause is not None:
                    self.on_pause(host.name, reset_at - now)
        if throttled:
            host.throttled(ticket, now, self.rate)
            if host.takes_bursts is None:
                host.takes_bursts = False  # and the host's pace spaces its starts from now on
        if self.window is not None:
            # A refused request stays counted: the server saw it arrive, and rate= promises
            # at most N arrivals in any window, refused or not.
            if ticket.new_connection and not ticket.wired:
                # Opening the connection may have delayed its arrival past the margin.
                self.window.restamp(ticket.sent_at, now)
            if ticket.trial and not throttled and retry_after is None:
                host.trial_passed += 1
                if host.trial_passed == 2 and host.takes_bursts is None:
                    host.takes_bursts = True
        elif status < 400:
            host.oks.append(ticket.sent_at)
            if host.pace is not None:
                host.paced_ok(ticket.sent_at)
        self._notify()

    def _pause(self, host: Host, now: float, seconds: float, status: int) -> None:
        until = now + seconds + RESUME_MARGIN
        self.calm = False
        if until > host.pause_until:
            host.pause_until = until
            host.needs_probe = True
            if self.on_pause is not None:
                self.on_pause(host.name, seconds)
            what = {418: "banned this client", 503: "was unavailable"}.get(status, "said too many")
            host.pause_cause = (
                f"the server {what} (HTTP {status}) and asked to wait {seconds:g} s "
                f"(Retry-After), more than Retry(max_wait={self.max_wait:g})"
            )


def _may_have_quota(headers: Mapping[str, str]) -> bool:
    return (
        "x-ratelimit-remaining" in headers
        or "ratelimit" in headers
        or "ratelimit-remaining" in headers
    )
