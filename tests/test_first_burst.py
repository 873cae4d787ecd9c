"""``rate=`` with ``burst=None``: a host shows it takes a burst before it gets one, and each
request is counted from when it went on the wire (DESIGN.md section 3, ``rate``, ``burst``).

Against servers on 127.0.0.1 (tests/limiter_servers.py); the limiter's bookkeeping also on a
hand-driven clock.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from pandas_async._limiter import Limiter
from pandas_async._options import Rate
from pandas_async._requests import RequestSpec
from pandas_async._transport import AiohttpSender, HttpxSender, Sender
from tests.limiter_servers import serve
from tests.test_rate_limits import SLACK, fetch_rows, lost

# -- the first burst ----------------------------------------------------------------------------


def test_a_no_burst_leaky_bucket_refuses_one_request_not_a_window() -> None:
    # nginx limit_req 10r/s with no burst: one request per 100 ms. The first window's N at
    # once drew 9 refusals, and their arrivals filled the first second (1.0 s lost).
    with serve("leaky", 10, 1.0, latency=0.05) as server:
        out, wall = fetch_rows(server, 40, rate="10/s")
        assert lost(out) == 0
        assert server.seen.refused <= 1 + 2, server.describe()  # the trial's second; jitter
        assert server.most_in_any_window() <= 10, server.describe()
        assert wall <= 1.10 * 4.0 + 0.05 + SLACK


def test_a_window_server_still_gets_its_bursts_once_it_took_two_together() -> None:
    # 20 rows at 10/s: a window at once, the next a second later (about 1.1 s). Evenly paced
    # starts the whole way would take 2 s.
    with serve("sliding", 10, 1.0, latency=0.05) as server:
        out, wall = fetch_rows(server, 20, rate="10/s")
        assert lost(out) == 0 and server.seen.refused == 0
        assert server.most_in_any_window() <= 10
        arrivals = sorted(server.seen.arrivals)
        assert arrivals[9] - arrivals[0] < 0.5, server.describe()  # most of a window at once
        assert wall < 1.6 + SLACK / 2


def test_slow_answers_on_new_connections_do_not_delay_the_next_window() -> None:
    # Counted from their answers, the first window's requests (all on new connections) held
    # the next window back by one latency: its first request went at 1.9 s, not 1.0 s.
    with serve("sliding", 10, 1.0, latency=0.9) as server:
        out, wall = fetch_rows(server, 30, rate="10/s", concurrency=20)
        assert lost(out) == 0 and server.seen.refused == 0
        assert server.most_in_any_window() <= 10, server.describe()
        arrivals = sorted(server.seen.arrivals)
        assert arrivals[10] - arrivals[0] < 1.45, server.describe()
        assert wall < 1.10 * 3.0 + 0.9 + SLACK


# -- send times from the wire -------------------------------------------------------------------


def test_the_window_counts_a_request_from_when_it_went_on_the_wire() -> None:
    now = [0.0]
    limiter = Limiter(Rate(2, 1.0), None, 60.0, clock=lambda: now[0], wall=lambda: 0.0)

    async def two() -> list[object]:
        return [await limiter.before_send("h", asyncio.Semaphore(5)) for _ in range(2)]

    first, second = asyncio.run(two())  # the trial's two, at once
    assert first is not None and second is not None
    assert limiter.window is not None and limiter.window.delay(0.5) == pytest.approx(0.52)
    now[0] = 0.3  # both waited 0.3 s for their connections
    for ticket in (first, second):
        watch = limiter.wire_watch(ticket)
        assert watch is not None
        watch()
        watch()  # a redirect's next hop: counted once
    assert limiter.window.delay(0.5) == pytest.approx(0.82)
    # Their answers, 1 s later, no longer move the window (they did for new connections).
    now[0] = 1.3
    limiter.after_answer(first, 200, {})
    limiter.after_answer(second, 200, {})
    assert limiter.window.delay(1.3) == pytest.approx(0.02)


def test_without_a_wire_time_a_new_connection_is_counted_from_its_answer() -> None:
    now = [0.0]
    limiter = Limiter(Rate(2, 1.0), None, 60.0, clock=lambda: now[0], wall=lambda: 0.0)

    async def one() -> object:
        return await limiter.before_send("h", asyncio.Semaphore(5))

    ticket = asyncio.run(one())
    assert ticket is not None
    asyncio.run(one())
    now[0] = 0.7
    limiter.after_answer(ticket, 200, {})  # type: ignore[arg-type]
    assert limiter.window is not None and limiter.window.delay(0.7) == pytest.approx(0.32)


def test_nothing_is_watched_when_nothing_paces() -> None:
    limiter = Limiter(None, None, 60.0)
    ticket = limiter.admit_now("h")
    assert ticket is not None and limiter.wire_watch(ticket) is None


async def _wire_times(sender: Sender, url: str) -> list[float]:
    """Two requests at once through a sender with one connection: when each went out."""
    started = time.monotonic()
    times: list[float] = []

    async def one(i: int) -> None:
        answer = await sender.send(
            RequestSpec("GET", url.format(i=i)), lambda: times.append(time.monotonic() - started)
        )
        assert answer.status_code == 200

    try:
        await asyncio.gather(one(0), one(1))
    finally:
        await sender.aclose()
    return sorted(times)


def test_aiohttp_tells_when_a_request_waited_for_its_connection() -> None:
    with serve("sliding", 100, 1.0, latency=0.3) as server:

        async def main() -> list[float]:
            sender = AiohttpSender(concurrency=1, timeout=10.0, watch_wire=True)
            return await _wire_times(sender, server.url)

        times = asyncio.run(main())
    assert len(times) == 2  # once per request
    assert times[0] < 0.25 and times[1] >= 0.3  # the second went once the first was answered


def test_an_httpx_client_tells_when_a_request_waited_for_its_connection() -> None:
    with serve("sliding", 100, 1.0, latency=0.3) as server:

        async def main() -> list[float]:
            client = httpx.AsyncClient(limits=httpx.Limits(max_connections=1))
            async with client:
                return await _wire_times(HttpxSender(client, 10.0), server.url)

        times = asyncio.run(main())
    assert len(times) == 2
    assert times[0] < 0.25 and times[1] >= 0.3
