"""pandas_async.last_report(): what happened in the last fetch, against the real test server."""

from __future__ import annotations

import asyncio
import math
import threading

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd
import pytest

import pandas_async
from pandas_async._report import report_from_outcomes
from tests.helpers import fast_retry, unique, users_frame
from tests.server import TestServer

matplotlib.use("Agg")


def _report() -> pandas_async.Report:
    report = pandas_async.last_report()
    assert report is not None
    return report


def test_counts_rows_by_status_and_cause_and_requests_once_per_dedupe(server: TestServer) -> None:
    df = users_frame([1, 2, 2, 2, 5000, 6000], index=list("abcdef"))
    df.aapi.fetch(f"{server.url}/users/{{user_id}}", errors="collect", retries=0)
    report = _report()
    assert report.rows == 6
    assert report.ok_rows == 4
    assert report.failed_rows == 2
    assert dict(report.statuses) == {200: 4, 404: 2}  # rows, like the _status column
    assert dict(report.causes) == {"HTTP 404 Not Found": 2}  # rows, like FetchError.counts
    assert report.shared_rows == 2  # user 2 asked three times, sent once
    assert report.distinct == 4
    assert report.requests == server.count("/users/") == 4
    assert report.retries == 0
    assert report.pages is None
    assert len(report.latencies) == 4


def test_no_answer_is_counted_under_none(server: TestServer) -> None:
    pd.DataFrame({"key": [unique()]}).aapi.fetch(
        f"{server.url}/drop/{{key}}?fail=9", errors="collect", retries=fast_retry(1)
    )
    report = _report()
    assert dict(report.statuses) == {None: 1}
    assert report.failed_rows == 1
    assert "no answer: 1" in str(report)


def test_retries_are_attempts_beyond_the_first_counted_once_per_shared_request(
    server: TestServer,
) -> None:
    key = unique()
    df = pd.DataFrame({"key": [key, key, unique()]})  # rows 0 and 1 share one request
    df.aapi.fetch(f"{server.url}/flaky/{{key}}?fail=2", retries=fast_retry(3))
    report = _report()
    assert report.retries == 4  # two requests, each failed twice before its answer
    assert report.requests == 6 == server.count("/flaky/")
    assert report.distinct == 2
    assert report.failed_rows == 0
    assert dict(report.statuses) == {200: 3}


def test_pages_are_counted_when_paginating(server: TestServer) -> None:
    df = pd.DataFrame({"key": [unique(), unique()]})
    df.aapi.fetch(
        f"{server.url}/pages/{{key}}?n=5",
        paginate=pandas_async.PageNumber("page", size_param="size", size=2),
    )
    report = _report()
    assert report.pages == 6  # 2 + 2 + 1 records per row: three pages each
    assert report.requests == 6 == server.count("/pages/")
    assert report.retries == 0
    assert "6 pages" in str(report)


def test_retried_pages_count_as_retries_not_pages(server: TestServer) -> None:
    df = pd.DataFrame({"key": [unique()]})
    df.aapi.fetch(
        f"{server.url}/pages/{{key}}?n=5&fail_page=2&fail_times=1",
        paginate=pandas_async.PageNumber("page", size_param="size", size=2),
        retries=fast_retry(2),
    )
    report = _report()
    assert report.pages == 3
    assert report.retries == 1
    assert report.requests == 4 == server.count("/pages/")


def test_latency_percentiles_come_from_each_request(server: TestServer) -> None:
    delays = [0.02] * 8 + [0.3, 0.4]
    df = pd.DataFrame({"delay": delays})
    df.aapi.fetch(f"{server.url}/slow", params={"delay": "{delay}"}, dedupe=False)
    report = _report()
    assert len(report.latencies) == 10
    assert report.p50 < 0.15  # most requests were quick...
    assert report.p90 > 0.25  # ...and the slow tail shows in the high percentiles
    assert report.p50 <= report.p90 <= report.p99 <= max(report.latencies)
    assert report.p99 >= 0.3


def test_percentiles_of_no_request_are_nan() -> None:
    report = report_from_outcomes([], call="fetch GET x", seconds=0.0, paginated=False)
    assert math.isnan(report.p50)
    assert math.isnan(report.percentile(99))


def test_requests_per_second_and_wall_time(server: TestServer) -> None:
    df = users_frame(list(range(1, 21)))
    df.aapi.fetch(f"{server.url}/users/{{user_id}}", rate="10/s")
    report = _report()
    assert report.seconds >= 1.0  # 20 requests at 10/s: the second ten wait for the window
    assert report.requests_per_second == pytest.approx(20 / report.seconds)
    assert report.rows_per_second == pytest.approx(20 / report.seconds)


def test_each_call_replaces_the_last_report(server: TestServer) -> None:
    users_frame([1, 2, 3]).aapi.fetch(f"{server.url}/users/{{user_id}}")
    first = _report()
    users_frame([4]).aapi.fetch(f"{server.url}/users/{{user_id}}")
    second = _report()
    assert second is not first
    assert (first.rows, second.rows) == (3, 1)


def test_a_call_that_sends_nothing_keeps_the_previous_report(server: TestServer) -> None:
    users_frame([1]).aapi.fetch(f"{server.url}/users/{{user_id}}")
    before = _report()
    with pytest.raises(KeyError):
        users_frame([1]).aapi.fetch(f"{server.url}/users/{{missing}}")
    with pytest.raises(ValueError):
        users_frame([1]).aapi.fetch(f"{server.url}/users/{{user_id}}", concurrency=0)
    assert pandas_async.last_report() is before


def test_recorded_when_fetch_raises_fetch_error(server: TestServer) -> None:
    with pytest.raises(pandas_async.FetchError) as info:
        users_frame([1, 9999]).aapi.fetch(f"{server.url}/users/{{user_id}}")
    report = _report()
    assert dict(report.causes) == info.value.counts == {"HTTP 404 Not Found": 1}
    assert report.failed_rows == 1


def test_recorded_by_afetch_series_fetch_and_fetch_inside_a_running_loop(
    server: TestServer,
) -> None:
    async def main() -> tuple[pandas_async.Report, pandas_async.Report]:
        await users_frame([1, 2]).aapi.afetch(f"{server.url}/users/{{user_id}}")
        by_afetch = _report()
        users_frame([1, 2, 3]).aapi.fetch(f"{server.url}/users/{{user_id}}")  # background loop
        return by_afetch, _report()

    by_afetch, by_fetch = asyncio.run(main())
    assert by_afetch.rows == 2 and by_afetch.call.startswith("afetch GET ")
    assert by_fetch.rows == 3 and by_fetch.call.startswith("fetch GET ")
    urls = pd.Series([f"{server.url}/users/1"], name="link")
    urls.aapi.fetch()
    assert _report().call == "fetch GET column 'link'"


def test_concurrent_calls_in_threads_each_leave_a_whole_report(server: TestServer) -> None:
    sizes = [3, 5, 7, 9]
    threads = [
        threading.Thread(
            target=lambda n=n: users_frame(list(range(1, n + 1))).aapi.fetch(
                f"{server.url}/users/{{user_id}}?n={n}"
            )
        )
        for n in sizes
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report = _report()
    assert report.rows in sizes
    assert report.call.endswith(f"?n={report.rows}")  # not a mix of two calls
    assert report.requests == report.rows


def test_text_and_html_repr_name_the_numbers_and_hide_secrets(server: TestServer) -> None:
    df = users_frame([1, 2, 9999])
    df.aapi.fetch(
        f"{server.url}/users/{{user_id}}?api_key=topsecret1",
        headers={"Authorization": "Bearer hunter22"},
        errors="collect",
    )
    report = _report()
    text = str(report)
    assert repr(report) == text
    assert text.startswith("pandas_async report: fetch GET http://")
    assert "/users/{user_id}?api_key=***" in text
    assert "3 rows in" in text
    assert "2 ok, 1 failed" in text
    assert "3 sent (3 distinct, 0 retries)" in text
    assert "200: 2, 404: 1" in text
    assert "HTTP 404 Not Found: 1" in text
    assert "p50 " in text and "p90 " in text and "p99 " in text
    assert "cache" not in text  # there is no cache: no made-up cache hits
    html = report._repr_html_()
    assert "<table>" in html and "p99" in html and "HTTP 404 Not Found: 1" in html
    for shown in (text, html, repr(report.to_dict())):
        assert "topsecret1" not in shown
        assert "hunter22" not in shown


def test_to_dict_has_counts_and_percentiles(server: TestServer) -> None:
    users_frame([1, 2]).aapi.fetch(f"{server.url}/users/{{user_id}}")
    data = _report().to_dict()
    assert data["rows"] == 2 and data["requests"] == 2 and data["retries"] == 0
    assert data["statuses"] == {200: 2}
    assert data["p50"] <= data["p90"] <= data["p99"]
    assert data["cache_hits"] is None  # no cache= in this call


def test_plot_draws_the_latency_histogram(server: TestServer) -> None:
    users_frame(list(range(1, 11))).aapi.fetch(f"{server.url}/users/{{user_id}}")
    report = _report()
    ax, _ = report.plot(bins=5)  # the second panel: requests over time (test_report_timing)
    heights = [patch.get_height() for patch in ax.patches]
    assert len(heights) == 5
    assert sum(heights) == 10  # one count per request
    assert ax.get_xlabel() == "latency per request (ms)"
    assert [t.get_text().split()[0] for t in ax.get_legend().get_texts()] == ["p50", "p90", "p99"]
    plt.close(ax.figure)


def test_percentile_rejects_out_of_range(server: TestServer) -> None:
    users_frame([1]).aapi.fetch(f"{server.url}/users/{{user_id}}")
    with pytest.raises(ValueError):
        _report().percentile(101)
