"""DESIGN.md section 3: concurrency, rate, timeout, retries, Retry-After, host cool-down and
dedupe, each observed at the real server."""

from __future__ import annotations

import socket
import time

import httpx
import pandas as pd
import pytest

import pandas_async
from tests.helpers import fast_retry, unique, users_frame
from tests.server import TestServer

# Server arrival times are stamped a little after the client starts a request: allow this much.
CLOCK_TOLERANCE = 0.05


def max_in_any_window(arrivals: list[float], period: float) -> int:
    """The largest number of arrivals inside any window of ``period`` seconds (less tolerance)."""
    arrivals = sorted(arrivals)
    best = 0
    start = 0
    for end, t in enumerate(arrivals):
        while t - arrivals[start] >= period - CLOCK_TOLERANCE:
            start += 1
        best = max(best, end - start + 1)
    return best


# -- concurrency ----------------------------------------------------------------------------


@pytest.mark.parametrize("cap", [1, 3])
def test_concurrency_cap_is_reached_and_never_exceeded(server: TestServer, cap: int) -> None:
    df = pd.DataFrame({"id": range(3 * cap + 1)})
    df.aapi.fetch(server.url + "/slow", params={"delay": "0.15", "id": "{id}"}, concurrency=cap)
    assert server.count("/slow") == len(df)
    assert server.max_in_flight == cap


def test_default_concurrency_is_ten(server: TestServer) -> None:
    df = pd.DataFrame({"id": range(25)})
    df.aapi.fetch(server.url + "/slow", params={"delay": "0.15", "id": "{id}"})
    assert server.max_in_flight == 10


def test_concurrency_counts_retries(server: TestServer) -> None:
    prefix = unique()
    df = pd.DataFrame({"key": [f"{prefix}-{i}" for i in range(8)]})
    out = df.aapi.fetch(
        server.url + "/flaky/{key}",
        params={"fail": "1", "status": "500", "delay": "0.1"},
        concurrency=3,
        retries=fast_retry(2),
    )
    assert out["failed"].tolist() == [False] * 8
    assert server.count("/flaky/") == 16
    assert server.max_in_flight == 3


# -- rate -----------------------------------------------------------------------------------


def test_rate_holds_in_every_sliding_window(server: TestServer) -> None:
    df = pd.DataFrame({"i": range(20)})
    started = time.monotonic()
    df.aapi.fetch(
        server.url + "/ratelimited",
        params={"limit": "10", "period": "1", "i": "{i}"},
        rate="10/s",
        concurrency=20,
    )
    elapsed = time.monotonic() - started
    arrivals = server.arrivals("/ratelimited")
    assert len(arrivals) == 20
    assert max_in_any_window(arrivals, 1.0) <= 10
    assert server.ratelimit_violations == 0
    # 20 starts at 10 per second need at least one full period between the 1st and 11th.
    assert arrivals[10] - arrivals[0] >= 1.0 - CLOCK_TOLERANCE
    assert elapsed < 5


def test_rate_counts_retries(server: TestServer) -> None:
    # 4 rows x 2 attempts = 8 requests at "5/s": the retries must wait for the window too.
    prefix = unique()
    df = pd.DataFrame({"key": [f"{prefix}-{i}" for i in range(4)]})
    out = df.aapi.fetch(
        server.url + "/flaky/{key}",
        params={"fail": "1", "status": "500"},
        rate="5/s",
        retries=fast_retry(2),
    )
    assert out["call"].tolist() == [2, 2, 2, 2]
    arrivals = server.arrivals("/flaky/")
    assert len(arrivals) == 8
    assert max_in_any_window(arrivals, 1.0) <= 5


def test_rate_as_a_number_per_second(server: TestServer) -> None:
    df = pd.DataFrame({"i": range(12)})
    df.aapi.fetch(
        server.url + "/ratelimited",
        params={"limit": "8", "period": "1", "i": "{i}"},
        rate=8,
        concurrency=12,
    )
    arrivals = server.arrivals("/ratelimited")
    assert len(arrivals) == 12
    assert max_in_any_window(arrivals, 1.0) <= 8
    assert server.ratelimit_violations == 0


def test_rate_as_a_float(server: TestServer) -> None:
    df = pd.DataFrame({"i": range(2)})
    df.aapi.fetch(server.url + "/echo", params={"i": "{i}"}, rate=2.5)
    assert server.count("/echo") == 2  # fractional rates are accepted


@pytest.mark.parametrize(
    "rate", ["10/s", "10/sec", "10/second", "120/min", "120/minute", "5000/h", "5000/hour"]
)
def test_rate_spellings_are_accepted(server: TestServer, rate: str) -> None:
    out = users_frame([1]).aapi.fetch(server.url + "/users/{user_id}", rate=rate)
    assert out["name"].tolist() == ["User 1"]


def test_a_slow_rate_is_not_a_burst(server: TestServer) -> None:
    # "2/s": the third request must wait a full second after the first, not be sent at once.
    df = pd.DataFrame({"i": range(3)})
    df.aapi.fetch(server.url + "/echo", params={"i": "{i}"}, rate="2/s")
    arrivals = server.arrivals("/echo")
    assert arrivals[2] - arrivals[0] >= 1.0 - CLOCK_TOLERANCE


# -- timeout --------------------------------------------------------------------------------


def test_timeout_per_attempt_fails_the_row_and_retries(server: TestServer) -> None:
    df = pd.DataFrame({"delay": [1.0, 0.0]}, index=["slow", "fast"])
    started = time.monotonic()
    out = df.aapi.fetch(
        server.url + "/slow",
        params={"delay": "{delay}"},
        timeout=0.1,
        retries=fast_retry(2),
        errors="collect",
    )
    assert time.monotonic() - started < 0.9
    assert out.loc["slow", "_error"] == "ReadTimeout"
    assert pd.isna(out.loc["slow", "_status"])
    assert out.loc["slow", "_attempts"] == 3
    assert out.loc["slow", "_elapsed"] >= 0.25
    assert out.loc["fast", "_status"] == 200
    assert out.loc["fast", "_attempts"] == 1
    assert server.count("/slow") == 4


def test_timeout_accepts_httpx_timeout(server: TestServer) -> None:
    df = pd.DataFrame({"delay": [1.0]})
    out = df.aapi.fetch(
        server.url + "/slow",
        params={"delay": "{delay}"},
        timeout=httpx.Timeout(0.1),
        retries=0,
        errors="collect",
    )
    assert out["_error"].tolist() == ["ReadTimeout"]
    assert out["_attempts"].tolist() == [1]


def test_user_client_timeout_applies_when_timeout_not_given(server: TestServer) -> None:
    client = httpx.AsyncClient(timeout=0.1)
    df = pd.DataFrame({"delay": [1.0]})
    started = time.monotonic()
    out = df.aapi.fetch(
        server.url + "/slow",
        params={"delay": "{delay}"},
        client=client,
        retries=0,
        errors="collect",
    )
    assert time.monotonic() - started < 0.8
    assert out["_error"].tolist() == ["ReadTimeout"]


# -- retries --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504])
def test_retried_statuses(server: TestServer, status: int) -> None:
    key = unique()
    df = pd.DataFrame({"key": [key]})
    out = df.aapi.fetch(
        server.url + "/flaky/{key}",
        params={"fail": "2", "status": str(status)},
        retries=fast_retry(2),
        errors="collect",
    )
    assert out["_status"].tolist() == [200]
    assert out["_attempts"].tolist() == [3]
    assert out["call"].tolist() == [3]
    assert server.count("/flaky/") == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_not_retried(server: TestServer, status: int) -> None:
    key = unique()
    df = pd.DataFrame({"key": [key]})
    out = df.aapi.fetch(
        server.url + "/flaky/{key}",
        params={"fail": "5", "status": str(status)},
        retries=fast_retry(3),
        errors="collect",
    )
    assert out["_status"].tolist() == [status]
    assert out["_attempts"].tolist() == [1]
    assert server.count("/flaky/") == 1


def test_retries_give_up_after_the_last_attempt(server: TestServer) -> None:
    key = unique()
    out = pd.DataFrame({"key": [key]}).aapi.fetch(
        server.url + "/flaky/{key}",
        params={"fail": "10", "status": "503"},
        retries=fast_retry(2),
        errors="collect",
    )
    assert out["_status"].tolist() == [503]
    assert out["_error"].tolist() == ["HTTP 503 Service Unavailable"]
    assert out["_attempts"].tolist() == [3]
    assert server.count("/flaky/") == 3


def test_retries_int_means_extra_attempts(server: TestServer) -> None:
    key = unique()
    out = pd.DataFrame({"key": [key]}).aapi.fetch(
        server.url + "/flaky/{key}",
        params={"fail": "10", "status": "500"},
        retries=1,
        errors="collect",
    )
    assert out["_attempts"].tolist() == [2]
    assert server.count("/flaky/") == 2


def test_retries_zero_sends_once(server: TestServer) -> None:
    key = unique()
    out = pd.DataFrame({"key": [key]}).aapi.fetch(
        server.url + "/flaky/{key}", params={"fail": "1"}, retries=0, errors="collect"
    )
    assert out["_status"].tolist() == [503]
    assert server.count("/flaky/") == 1


def test_retry_custom_statuses(server: TestServer) -> None:
    key = unique()
    policy = pandas_async.Retry(attempts=2, backoff=0.01, statuses=(418,))
    out = pd.DataFrame({"key": [key, unique()]}).aapi.fetch(
        server.url + "/flaky/{key}",
        params={"fail": "1", "status": "418"},
        retries=policy,
        errors="collect",
    )
    assert out["_status"].tolist() == [200, 200]
    assert out["_attempts"].tolist() == [2, 2]


def test_retry_on_connection_drop(server: TestServer) -> None:
    # aiohttp itself resends an idempotent request once when the server disconnects, so a
    # row needs more drops than that to show our own retries at work.
    df = pd.DataFrame({"key": [unique()]})
    out = df.aapi.fetch(
        server.url + "/drop/{key}", params={"fail": "3"}, retries=fast_retry(4), errors="collect"
    )
    assert out["_status"].tolist() == [200]
    assert out["_attempts"].iloc[0] >= 2
    assert server.count("/drop/") == 4


def test_connection_drop_without_retries_fails_the_row(server: TestServer) -> None:
    df = pd.DataFrame({"key": [unique()]})
    out = df.aapi.fetch(
        server.url + "/drop/{key}", params={"fail": "3"}, retries=0, errors="collect"
    )
    assert pd.isna(out["_status"].iloc[0])
    assert isinstance(out["_error"].iloc[0], str) and out["_error"].iloc[0]
    assert out["_attempts"].tolist() == [1]


def test_retry_on_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port any more.
    out = pd.DataFrame({"i": [1]}).aapi.fetch(
        f"http://127.0.0.1:{port}/x/{{i}}", retries=fast_retry(2), errors="collect"
    )
    assert out["_error"].tolist() == ["ConnectError"]
    assert out["_attempts"].tolist() == [3]
    assert pd.isna(out["_status"].iloc[0])


def test_retry_after_seconds_is_honoured(server: TestServer) -> None:
    key = unique()
    out = pd.DataFrame({"key": [key]}).aapi.fetch(
        server.url + "/flaky/{key}",
        params={"fail": "1", "status": "503", "retry_after": "1"},
        retries=fast_retry(2),
    )
    assert out["call"].tolist() == [2]
    first, second = server.arrivals("/flaky/")
    assert second - first >= 1.0 - CLOCK_TOLERANCE
    assert second - first < 2.0


def test_retry_after_http_date_is_honoured(server: TestServer) -> None:
    key = unique()
    out = pd.DataFrame({"key": [key]}).aapi.fetch(
        server.url + "/flaky/{key}",
        params={"fail": "1", "status": "429", "retry_after_date": "1"},
        retries=fast_retry(2),
    )
    assert out["call"].tolist() == [2]
    first, second = server.arrivals("/flaky/")
    wanted = server.retry_after_wait(key)  # 1-2 s: until the whole second in the header
    assert wanted > 0.9
    assert second - first >= wanted - CLOCK_TOLERANCE
    assert second - first < wanted + 1.0


def test_retry_after_is_capped_by_max_wait(server: TestServer) -> None:
    # A 500 pauses only its own row: its Retry-After is capped and the row retried.
    key = unique()
    policy = pandas_async.Retry(attempts=2, backoff=0.01, max_wait=0.2)
    started = time.monotonic()
    out = pd.DataFrame({"key": [key]}).aapi.fetch(
        server.url + "/flaky/{key}",
        params={"fail": "1", "status": "500", "retry_after": "30"},
        retries=policy,
    )
    assert out["call"].tolist() == [2]
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize("status", [429, 503])
def test_a_host_pause_beyond_max_wait_fails_its_rows_with_the_servers_words(
    server: TestServer, status: int
) -> None:
    # The whole host is paused for 30 s, more than max_wait: every row to it fails at once,
    # saying what the server asked, instead of waiting (or retrying into the pause) for hours.
    urls = [f"{server.url}/host-cooldown?status={status}&retry_after=30"]
    urls += [f"{server.url}/users/{i}" for i in range(1, 6)]
    policy = pandas_async.Retry(attempts=3, backoff=0.01, max_wait=0.2)
    started = time.monotonic()
    out = pd.DataFrame({"url": urls}).aapi.fetch(
        "url", concurrency=1, retries=policy, errors="collect"
    )
    assert time.monotonic() - started < 1.5
    assert server.count("/") == 1  # nothing was sent into the pause
    assert out["_status"].tolist()[0] == status
    assert out["_status"].isna().tolist()[1:] == [True] * 5
    for error in out["_error"]:
        assert "asked to wait 30 s (Retry-After), more than Retry(max_wait=0.2)" in error


def test_retry_after_on_a_500_is_honoured_and_holds_no_slot(server: TestServer) -> None:
    # Row "a" waits 1 s for its Retry-After; with concurrency=1 row "b" must not wait for it.
    # (A 500 triggers no host cool-down, only 429/503 do.)
    df = pd.DataFrame({"key": [unique(), unique()]}, index=["a", "b"])
    df["url"] = [
        f"{server.url}/flaky/{df.loc['a', 'key']}?fail=1&status=500&retry_after=1",
        f"{server.url}/users/1",
    ]
    df.aapi.fetch("url", concurrency=1, retries=fast_retry(2))
    flaky = server.arrivals("/flaky/")
    users = server.arrivals("/users/")
    assert len(flaky) == 2 and len(users) == 1
    assert flaky[1] - flaky[0] >= 1.0 - CLOCK_TOLERANCE
    assert users[0] - flaky[0] < 0.5


@pytest.mark.parametrize("status", [429, 503])
def test_host_cooldown_pauses_other_rows_to_the_same_host(server: TestServer, status: int) -> None:
    urls = [f"{server.url}/host-cooldown?status={status}&retry_after=1"]
    urls += [f"{server.url}/users/{i}" for i in range(1, 6)]
    df = pd.DataFrame({"url": urls})
    out = df.aapi.fetch("url", concurrency=1, retries=fast_retry(2))
    assert out["name"].tolist()[1:] == [f"User {i}" for i in range(1, 6)]
    first_429 = server.arrivals("/host-cooldown")[0]
    later = [t for t in server.arrivals("/") if t > first_429]
    assert len(later) == 6  # five users and the retried trigger
    assert min(later) >= first_429 + 1.0 - CLOCK_TOLERANCE
    assert server.cooldown_violations == 0


def test_host_cooldown_applies_to_concurrent_rows(server: TestServer) -> None:
    # Slow rows are already in flight when the 429 arrives; the rows after them must wait.
    urls = [f"{server.url}/host-cooldown?retry_after=1"]
    urls += [f"{server.url}/slow?delay=0.1&id={i}" for i in range(6)]
    df = pd.DataFrame({"url": urls})
    df.aapi.fetch("url", concurrency=2, retries=fast_retry(2))
    assert server.count("/slow") == 6
    assert server.cooldown_violations == 0
    first_429 = server.arrivals("/host-cooldown")[0]
    paused = [t for t in server.arrivals("/slow") if t >= first_429 + 1.0 - CLOCK_TOLERANCE]
    assert len(paused) >= 4


# -- dedupe ---------------------------------------------------------------------------------


def test_dedupe_sends_identical_gets_once(server: TestServer) -> None:
    df = users_frame([1, 2, 1, 3, 2, 1])
    out = df.aapi.fetch(server.url + "/users/{user_id}")
    assert server.count("/users/") == 3
    assert out["name"].tolist() == ["User 1", "User 2", "User 1", "User 3", "User 2", "User 1"]


def test_dedupe_false_sends_every_row(server: TestServer) -> None:
    df = users_frame([1, 2, 1, 3, 2, 1])
    out = df.aapi.fetch(server.url + "/users/{user_id}", dedupe=False)
    assert server.count("/users/") == 6
    assert out["name"].tolist() == ["User 1", "User 2", "User 1", "User 3", "User 2", "User 1"]


def test_dedupe_key_includes_params_and_headers(server: TestServer) -> None:
    df = pd.DataFrame({"p": [1, 1, 2, 1], "h": ["a", "b", "a", "a"]})
    df.aapi.fetch(server.url + "/echo", params={"p": "{p}"}, headers={"X-H": "{h}"})
    seen = sorted((r.query["p"], r.headers["x-h"]) for r in server.requests)
    assert seen == [("1", "a"), ("1", "b"), ("2", "a")]


def test_dedupe_never_merges_posts(server: TestServer) -> None:
    df = pd.DataFrame({"v": [1, 1, 1]})
    df.aapi.fetch(server.url + "/echo", method="POST", json={"v": "{v}"})
    assert server.count("/echo") == 3


def test_dedupe_shares_failures_too(server: TestServer) -> None:
    df = users_frame([5000, 5000, 1])
    out = df.aapi.fetch(server.url + "/users/{user_id}", errors="collect")
    assert server.count("/users/") == 2
    assert out["_status"].tolist() == [404, 404, 200]


# -- rows waiting never hold up other rows ----------------------------------------------------


def _start_times(server: TestServer, prefix: str) -> list[float]:
    return server.arrivals(prefix)


def test_rows_waiting_to_retry_do_not_hold_up_new_rows(server: TestServer) -> None:
    # Twelve rows answer 500 + Retry-After: 1 (no cool-down for a 500) and wait a second to
    # retry; the thirteenth row must not wait for them.
    urls = [f"{server.url}/flaky/{unique()}?fail=1&status=500&retry_after=1" for _ in range(12)]
    urls.append(f"{server.url}/users/1")
    started = time.monotonic()
    out = pd.DataFrame({"url": urls}).aapi.fetch(
        "url", concurrency=1, retries=pandas_async.Retry(attempts=1, backoff=0.01, max_wait=5)
    )
    assert out["name"].iloc[-1] == "User 1"
    (arrival,) = _start_times(server, "/users/")
    assert arrival - started < 0.6


def test_a_cooling_host_does_not_hold_up_rows_for_another_host(server: TestServer) -> None:
    # 127.0.0.1 answers 429 + Retry-After: 1, which pauses every row to it; a row for
    # localhost (another host, same test server) goes ahead meanwhile.
    port = server.url.rsplit(":", 1)[1]
    urls = [f"{server.url}/flaky/{unique()}?fail=1&status=429&retry_after=1"]
    urls += [f"{server.url}/flaky/{unique()}?fail=0" for _ in range(11)]
    urls.append(f"http://localhost:{port}/users/2")
    started = time.monotonic()
    out = pd.DataFrame({"url": urls}).aapi.fetch(
        "url", concurrency=1, retries=pandas_async.Retry(attempts=1, backoff=0.01, max_wait=5)
    )
    assert out["name"].iloc[-1] == "User 2"
    (arrival,) = _start_times(server, "/users/")
    assert arrival - started < 0.6
    assert min(_start_times(server, "/flaky/")[1:]) >= started + 1.0 - CLOCK_TOLERANCE


def test_a_number_timeout_bounds_the_whole_attempt(server: TestServer) -> None:
    # Six pieces 0.1 s apart: no gap reaches 0.3 s, but the whole answer takes 0.6 s.
    df = pd.DataFrame({"k": [1]})
    out = df.aapi.fetch(
        server.url + "/trickle?chunks=6&interval=0.1&k={k}", timeout=0.3, retries=0,
        errors="collect",
    )  # fmt: skip
    assert out["_error"].tolist() == ["ReadTimeout"]


def test_an_httpx_timeout_bounds_each_phase_as_httpx_does(server: TestServer) -> None:
    df = pd.DataFrame({"k": [1]})
    out = df.aapi.fetch(
        server.url + "/trickle?chunks=6&interval=0.1&k={k}", timeout=httpx.Timeout(0.3),
        retries=0,
    )  # fmt: skip
    assert out["i"].tolist() == [0, 1, 2, 3, 4, 5]
