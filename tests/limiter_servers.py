"""Servers with the rate limiters real APIs use, on 127.0.0.1 in a thread, counting what they saw.

``LimiterServer(kind, limit, period, ...)`` answers ``GET /item/{i}`` with ``{"i": i}`` when its
limiter lets the request through, and with HTTP 429 when not. It decides at arrival, as the real
ones do, then waits ``latency`` seconds before answering (the API's own time).

Kinds (N = ``limit`` requests per ``period`` seconds):

``leaky``          nginx ``limit_req``: rate N/period at millisecond granularity, ``burst`` extra
                   requests queued (served late) or, with ``nodelay``, served at once
``token``          a token bucket of ``burst`` tokens refilled at N/period (Coinbase, Stripe)
``fixed``          N per window, windows aligned to the wall clock (Binance's minute)
``sliding``        a sliding log: at most N accepted in any window of one period
``github``         a fixed window with ``X-RateLimit-Limit/Remaining/Reset`` (epoch seconds) on
                   every answer; past the quota a bare 429
``ietf``           a fixed window with ``RateLimit-Policy: "default";q=N;w=period`` and
                   ``RateLimit: "default";r=left;t=seconds``; past the quota a 429 with them
``ban``            a fixed window whose 429 carries ``Retry-After``; a request that comes
                   before that time is up (and was not already on its way) earns a 418 ban
                   with ``Retry-After: ban`` seconds (Binance), and every request during a ban
                   gets a 418 too; ``banned_for=s`` starts the server with a ban of s seconds
``open``           no limit

``first_retry_after=s``: the first request is answered 429 with ``Retry-After: s`` (any kind).

``retry_after=True`` adds ``Retry-After`` (seconds to the next free moment, rounded up to whole
seconds) to every 429, as nginx does when told to.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from aiohttp import web

KINDS = ("leaky", "token", "fixed", "sliding", "github", "ietf", "ban", "open")
# A request arriving this soon after a 429 was sent was already on its way: no ban for it.
BAN_GRACE = 0.1


@dataclass
class Seen:
    """What the server saw, guarded by the server's lock."""

    arrivals: list[float] = field(default_factory=list)  # every request, time.monotonic()
    accepted: list[float] = field(default_factory=list)
    refused: int = 0  # 429s
    banned: int = 0  # 418s
    early: int = 0  # arrivals during a pause the server asked for (Retry-After), after a grace
    pauses: list[tuple[float, float]] = field(default_factory=list)  # (asked at, until)


class LimiterServer:
    """One rate-limited API; start it with ``with serve(...) as server:``."""

    def __init__(
        self,
        kind: str,
        limit: int,
        period: float = 1.0,
        *,
        burst: int = 0,
        nodelay: bool = False,
        latency: float = 0.0,
        retry_after: bool = False,
        ban: float = 2.0,
        banned_for: float = 0.0,
        first_retry_after: float | None = None,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self.kind = kind
        self.limit = limit
        self.period = period
        self.burst = burst
        self.nodelay = nodelay
        self.latency = latency
        self.retry_after = retry_after
        self.ban = ban
        self.first_retry_after = first_retry_after
        self.seen = Seen()
        self._lock = threading.Lock()
        # leaky bucket (nginx): excess in milli-requests, last accepted arrival in ms
        self._excess = 0
        self._last_ms: int | None = None
        # token bucket
        self._tokens = float(max(burst, 1))
        self._refilled = time.monotonic()
        # fixed windows, quota and ban
        self._window = -1
        self._used = 0
        self._told_at = 0.0  # ban: when a 429 said "come back at _told_until"
        self._told_until = 0.0
        self._banned_until = time.monotonic() + banned_for
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- limiters: (accepted?, extra headers, server-side delay) ----------------------------------

    def _decide(self, now: float, wall: float) -> tuple[int, dict[str, str], float]:
        if self.first_retry_after is not None and len(self.seen.arrivals) == 1:
            return 429, {"Retry-After": f"{self.first_retry_after:g}"}, 0.0
        if self.kind == "open":
            return 200, {}, 0.0
        if self.kind == "leaky":
            return self._leaky(now)
        if self.kind == "token":
            return self._token(now)
        if self.kind == "sliding":
            recent = [t for t in self.seen.accepted if t > now - self.period]
            if len(recent) >= self.limit:
                return 429, self._retry_after(recent[0] + self.period - now), 0.0
            return 200, {}, 0.0
        return self._windowed(now, wall)

    def _retry_after(self, seconds: float) -> dict[str, str]:
        if not self.retry_after:
            return {}
        return {"Retry-After": str(max(1, math.ceil(seconds)))}

    def _leaky(self, now: float) -> tuple[int, dict[str, str], float]:
        # ngx_http_limit_req_lookup: excess = excess - rate * ms / 1000 + 1000, refused above
        # burst * 1000; the state moves only for accepted requests.
        now_ms = int(now * 1000)
        rate = self.limit * 1000 / self.period  # requests per 1000 s, as nginx keeps it
        if self._last_ms is None:
            self._last_ms, self._excess = now_ms, 0
            return 200, {}, 0.0
        ms = now_ms - self._last_ms
        excess = max(0, int(self._excess - rate * ms / 1000 + 1000))
        if excess > self.burst * 1000:
            return 429, self._retry_after(1.0), 0.0
        self._excess, self._last_ms = excess, now_ms
        delay = 0.0 if self.nodelay else excess / rate  # queued: served late, not refused
        return 200, {}, delay

    def _token(self, now: float) -> tuple[int, dict[str, str], float]:
        rate = self.limit / self.period
        capacity = max(self.burst, 1)
        self._tokens = min(capacity, self._tokens + (now - self._refilled) * rate)
        self._refilled = now
        if self._tokens < 1:
            return 429, self._retry_after((1 - self._tokens) / rate), 0.0
        self._tokens -= 1
        return 200, {}, 0.0

    def _windowed(self, now: float, wall: float) -> tuple[int, dict[str, str], float]:
        if self.kind == "ban":
            if now < self._banned_until:
                self.seen.banned += 1
                return 418, {"Retry-After": str(math.ceil(self._banned_until - now))}, 0.0
            # A request sent before the 429 could reach the client was already on its way.
            if self._told_at + BAN_GRACE + self.latency < now < self._told_until:
                self._banned_until = now + self.ban
                self.seen.banned += 1
                return 418, {"Retry-After": str(math.ceil(self.ban))}, 0.0
        window = math.floor(wall / self.period)
        if window != self._window:
            self._window, self._used = window, 0
        end = (window + 1) * self.period
        headers: dict[str, str] = {}
        accepted = self._used < self.limit
        if accepted:
            self._used += 1
        left = self.limit - self._used
        if self.kind == "github" and accepted:
            headers = {
                "X-RateLimit-Limit": str(self.limit),
                "X-RateLimit-Remaining": str(left),
                "X-RateLimit-Reset": str(math.ceil(end)),
            }
        elif self.kind == "ietf":
            headers = {
                "RateLimit-Policy": f'"default";q={self.limit};w={self.period:g}',
                "RateLimit": f'"default";r={left};t={max(0, math.ceil(end - wall))}',
            }
        if accepted:
            return 200, headers, 0.0
        if self.kind == "ban":
            wait = max(1, math.ceil(end - wall))
            self._told_at = now
            self._told_until = now + wait - 0.05  # a little slack for the client's clock
            headers["Retry-After"] = str(wait)
        else:
            headers.update(self._retry_after(end - wall))
        return 429, headers, 0.0

    # -- the HTTP side ---------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        now, wall = time.monotonic(), time.time()
        with self._lock:
            seen = self.seen
            grace = BAN_GRACE + self.latency  # the client hears of the pause only then
            if any(at + grace < now < until - 0.02 for at, until in seen.pauses[-3:]):
                seen.early += 1
            seen.arrivals.append(now)
            status, headers, delay = self._decide(now, wall)
            if status == 200:
                seen.accepted.append(now)
            elif status == 429:
                seen.refused += 1
            if "Retry-After" in headers:
                seen.pauses.append((now, now + float(headers["Retry-After"])))
        if delay + self.latency > 0:
            await asyncio.sleep(delay + self.latency)
        if status != 200:
            return web.json_response({"error": "slow down"}, status=status, headers=headers)
        return web.json_response({"i": request.match_info["i"]}, headers=headers)

    async def _seen(self, request: web.Request) -> web.Response:
        with self._lock:
            seen = self.seen
            return web.json_response(
                {
                    "arrivals": seen.arrivals,
                    "accepted": seen.accepted,
                    "refused": seen.refused,
                    "banned": seen.banned,
                    "early": seen.early,
                }
            )

    def start(self) -> None:
        started = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            app = web.Application()
            app.router.add_get("/item/{i}", self._handle)
            app.router.add_get("/_seen", self._seen)
            runner = web.AppRunner(app, access_log=None)
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
            loop.run_until_complete(site.start())
            self.port = runner.addresses[0][1]
            started.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name=f"limiter-{self.kind}", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("limiter server did not start")

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/item/{{i}}"

    def describe(self) -> str:
        """Each arrival: seconds after the first, gap to the previous, accepted or not."""
        with self._lock:
            arrivals, accepted = list(self.seen.arrivals), set(self.seen.accepted)
        if not arrivals:
            return "no arrivals"
        return " ".join(
            f"{a - arrivals[0]:.3f}(+{(a - p) * 1000:.0f}ms{'' if a in accepted else ' REFUSED'})"
            for p, a in zip([arrivals[0], *arrivals], arrivals, strict=False)
        )

    def most_in_any_window(self, period: float | None = None, *, accepted: bool = False) -> int:
        """The most requests that arrived (or were let through) in any window of ``period``."""
        with self._lock:
            times = sorted(self.seen.accepted if accepted else self.seen.arrivals)
        return most_in_any_window(times, self.period if period is None else period)


def most_in_any_window(times: list[float], period: float) -> int:
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= period:
            start += 1
        best = max(best, end - start + 1)
    return best


@contextmanager
def serve(kind: str, limit: int, period: float = 1.0, **options: object) -> Iterator[LimiterServer]:
    server = LimiterServer(kind, limit, period, **options)  # type: ignore[arg-type]
    server.start()
    try:
        yield server
    finally:
        server.stop()


def main() -> None:
    """``python -m tests.limiter_servers KIND LIMIT [options]``: serve in the foreground.

    Prints ``READY <port>`` once listening; ``GET /_seen`` returns what it saw as JSON. For
    benchmarks/bench_limits.py, which gives every server a process of its own.
    """
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("limit", type=int)
    parser.add_argument("--period", type=float, default=1.0)
    parser.add_argument("--burst", type=int, default=0)
    parser.add_argument("--nodelay", action="store_true")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--retry-after", action="store_true")
    parser.add_argument("--first-retry-after", type=float, default=None)
    args = parser.parse_args()
    server = LimiterServer(
        args.kind, args.limit, args.period, burst=args.burst, nodelay=args.nodelay,
        latency=args.latency, retry_after=args.retry_after,
        first_retry_after=args.first_retry_after,
    )  # fmt: skip
    server.start()
    print(f"READY {server.port}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
