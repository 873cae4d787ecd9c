"""last_report(): where the wall time went, requests/s against the rate asked, and the plot."""

from __future__ import annotations

from collections.abc import Iterator

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import pandas_async
from tests.helpers import unique
from tests.server import TestServer

matplotlib.use("Agg")

PHASES = ["cool-down", "rate limiter", "in flight", "backoff", "other"]


def _report() -> pandas_async.Report:
    report = pandas_async.last_report()
    assert report is not None
    return report


@pytest.fixture(scope="module")
def slow_run(_server_session: TestServer) -> Iterator[pandas_async.Report]:
    """Rate-limited, cooled down and retried (one run shared by the tests of this module): one
    row draws a 429 with Retry-After (the whole host pauses 0.5 s), 15 rows queue for a rate of
    10/s, and a row's 500 carries a Retry-After of 1.5 s, which outlasts all the other rows (a
    backoff with nothing else left to do)."""
    server = _server_session
    server.reset()
    urls = (
        [f"{server.url}/host-cooldown?retry_after=0.5"]
        + [f"{server.url}/users/{i}" for i in range(1, 16)]
        + [f"{server.url}/flaky/{unique()}?fail=1&status=500&retry_after=1.5"]
    )
    pd.Series(urls, name="url").aapi.fetch(rate="10/s", concurrency=5, progress=False)
    yield _report()
    server.reset()


def test_time_breakdown_of_a_limited_cooled_retried_run_adds_up_to_the_wall_time(
    slow_run: pandas_async.Report, _server_session: TestServer
) -> None:
    report = slow_run
    time = dict(report.time)
    assert list(time) == PHASES
    assert sum(time.values()) == pytest.approx(report.seconds, rel=1e-6)
    # Each moment of waiting was seen by a hook: what is left over (set-up, parsing) is small.
    explained = sum(time[p] for p in PHASES if p != "other")
    assert explained == pytest.approx(report.seconds, rel=0.10)
    assert time["cool-down"] >= 0.35  # the host's 0.5 s pause, rows waiting on it
    assert time["rate limiter"] >= 0.5  # 20 requests at 10/s: about a second of queueing
    assert time["backoff"] >= 0.2  # the 1.5 s Retry-After outlasts the other rows
    assert time["in flight"] > 0
    host = _server_session.url.split("://")[1]
    assert list(report.cooldown_by_host) == [host]
    assert 0.35 <= report.cooldown_by_host[host] <= time["cool-down"] + 0.01
    assert report.retries == 2 and report.requests == 19


def test_rate_asked_and_achieved_are_reported(
    slow_run: pandas_async.Report, _server_session: TestServer
) -> None:
    report = slow_run
    assert report.rate == pytest.approx(10.0)
    assert report.requests_per_second == pytest.approx(19 / report.seconds)
    text = str(report)
    assert f"{report.requests_per_second:.1f}/s of 10/s asked" in text
    time_line = next(line for line in text.splitlines() if line.strip().startswith("time"))
    for phase in ("cool-down", "rate limiter", "in flight", "backoff"):
        assert phase in time_line
    assert _server_session.url.split("://")[1] in time_line  # the cooling host is named
    data = report.to_dict()
    assert data["rate"] == pytest.approx(10.0)
    assert set(data["time"]) == set(PHASES)


def test_no_rate_no_waits_is_all_in_flight_or_other(server: TestServer) -> None:
    df = pd.DataFrame({"user_id": range(1, 11)})
    df.aapi.fetch(f"{server.url}/slow?delay=0.2&id={{user_id}}")
    report = _report()
    assert report.rate is None
    assert "asked" not in str(report)
    time = report.time
    assert time["rate limiter"] == time["cool-down"] == time["backoff"] == 0
    assert time["in flight"] >= 0.18  # every request took 0.2 s at the server
    assert report.cooldown_by_host == {}


def test_attempt_times_record_every_attempt(slow_run: pandas_async.Report) -> None:
    report = slow_run
    assert len(report.sent_at) == len(report.answered_at) == len(report.attempt_statuses) == 19
    assert np.all(report.sent_at >= 0)
    assert np.all(report.answered_at >= report.sent_at)
    assert np.all(report.answered_at <= report.seconds)
    assert sorted(report.attempt_statuses.tolist()).count(429) == 1
    assert sorted(report.attempt_statuses.tolist()).count(500) == 1
    # The 429 paused the host: nothing else was sent for the next ~0.5 s.
    throttled_at = float(report.answered_at[report.attempt_statuses == 429][0])
    sent_in_pause = (report.sent_at > throttled_at) & (report.sent_at < throttled_at + 0.45)
    assert not sent_in_pause.any()


def test_plot_shows_latency_histogram_and_requests_over_time(
    slow_run: pandas_async.Report,
) -> None:
    report = slow_run
    latency_ax, time_ax = report.plot(bins=5, interval=0.1)
    assert sum(p.get_height() for p in latency_ax.patches) == report.distinct
    assert latency_ax.get_xlabel() == "latency per request (ms)"
    lines = {line.get_label(): line for line in time_ax.get_lines()}
    assert {"started", "answered", "429"} <= set(lines)
    assert "rate asked 10/s" in lines
    # Step lines hold requests per second per 0.1 s bin: times the bin width, they count attempts.
    started = np.asarray(lines["started"].get_ydata()) * 0.1
    throttled = np.asarray(lines["429"].get_ydata()) * 0.1
    assert round(started.sum()) == report.requests == 19
    assert round(throttled.sum()) == 1
    assert time_ax.get_xlabel() == "seconds since the call started"
    plt.close(latency_ax.figure)


def test_plot_draws_into_given_axes_and_rejects_a_bad_interval(server: TestServer) -> None:
    pd.DataFrame({"user_id": [1, 2]}).aapi.fetch(f"{server.url}/users/{{user_id}}")
    report = _report()
    _, axes = plt.subplots(1, 2)
    assert tuple(report.plot(axes)) == tuple(axes)
    with pytest.raises(ValueError, match="interval="):
        report.plot(interval=0)
    plt.close("all")
