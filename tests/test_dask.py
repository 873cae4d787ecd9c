"""DESIGN.md section 6, Dask: the pandas call on dask frames, concurrency and rate held as totals
across a real cluster of worker processes, observed at the real test server."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import pandas_async

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

import pandas_async.dask  # noqa: E402  (registers .aapi on dask frames)
from pandas_async._dask_leases import LeasePlan  # noqa: E402
from pandas_async._options import Rate  # noqa: E402
from tests.helpers import fast_retry  # noqa: E402
from tests.server import TestServer  # noqa: E402

CLOCK_TOLERANCE = 0.05


def max_in_any_window(arrivals: list[float], period: float) -> int:
    """The largest number of arrivals inside any window of ``period`` seconds (less tolerance)."""
    arrivals = sorted(arrivals)
    best = start = 0
    for end, t in enumerate(arrivals):
        while t - arrivals[start] >= period - CLOCK_TOLERANCE:
            start += 1
        best = max(best, end - start + 1)
    return best


def users(n: int, partitions: int, *, missing: int = 0) -> tuple[pd.DataFrame, Any]:
    """A frame of user ids and the same rows as a dask frame (the frame as dask holds it)."""
    ids = list(range(1, n + 1)) + [5000 + i for i in range(missing)]  # > 1000: 404
    frame = pd.DataFrame({"user_id": ids}, index=[f"r{i}" for i in range(len(ids))])
    ddf = dd.from_pandas(frame, npartitions=partitions, sort=False)
    return ddf.compute(), ddf  # dask may convert text to its own string dtype


def as_dask_holds(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` as a dask frame holds it (dask turns text columns into its string dtype)."""
    return dd.from_pandas(frame, npartitions=1, sort=False).compute()


def without_elapsed(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["_elapsed"], errors="ignore")


# -- the local (threaded) scheduler: no cluster ---------------------------------------------------


def test_results_equal_the_pandas_call(server: TestServer) -> None:
    frame, ddf = users(30, 4, missing=2)
    url = server.url + "/users/{user_id}"
    got = ddf.aapi.fetch(url, errors="collect", concurrency=4).compute()
    expected = frame.aapi.fetch(url, errors="collect")
    pd.testing.assert_frame_equal(without_elapsed(got), without_elapsed(as_dask_holds(expected)))


def test_partitions_with_different_answers_get_one_column_set(server: TestServer) -> None:
    # The first partition's answers hold query.a, the second's query.b: both columns appear in
    # every partition, as in the pandas call, and nothing was sent to learn them but the rows.
    ddf = dd.from_pandas(pd.DataFrame({"key": ["a"] * 3 + ["b"] * 3}), npartitions=2, sort=False)
    frame = ddf.compute()
    out = ddf.aapi.fetch(server.url + "/echo", params=lambda row: {row["key"]: "1"})
    assert server.count("/echo") == 2  # identical requests are sent once (dedupe)
    pandas_out = frame.aapi.fetch(server.url + "/echo", params=lambda row: {row["key"]: "1"})
    expected = as_dask_holds(pandas_out)
    assert {"query.a", "query.b"} <= set(expected.columns)
    parts = [p.compute() for p in out.partitions]
    assert all(list(p.columns) == list(expected.columns) for p in parts)
    pd.testing.assert_frame_equal(out.compute(), expected)
    assert server.count("/echo") == 4  # the pandas call's 2; computing sent nothing more


def test_series_of_urls(server: TestServer) -> None:
    links = pd.Series([f"{server.url}/users/{i}" for i in (1, 2, 3, 4)], name="link")
    durls = dd.from_pandas(links, npartitions=2)
    urls = durls.compute()
    got = durls.aapi.fetch().compute()
    pd.testing.assert_frame_equal(got, as_dask_holds(urls.aapi.fetch()))


def test_series_of_urls_with_failures(server: TestServer) -> None:
    links = pd.Series([f"{server.url}/users/{i}" for i in (1, 2, 5000, 4)], name="link")
    durls = dd.from_pandas(links, npartitions=2)
    with pytest.raises(pandas_async.FetchError) as info:
        durls.aapi.fetch()
    assert info.value.frame["link"].tolist() == [f"{server.url}/users/5000"]
    collected = durls.aapi.fetch(errors="collect").compute()
    assert collected["_status"].tolist() == [200, 200, 404, 200]


def test_bad_options_fail_before_any_request(server: TestServer) -> None:
    _, ddf = users(10, 2)
    with pytest.raises(ValueError, match="concurrency"):
        ddf.aapi.fetch(server.url + "/users/{user_id}", concurrency=0)
    with pytest.raises(KeyError, match="nope"):
        ddf.aapi.fetch(server.url + "/users/{nope}")
    with pytest.raises(TypeError, match="unexpected option 'ratee'"):
        ddf.aapi.fetch(server.url + "/users/{user_id}", ratee="1/s")
    with pytest.raises(TypeError, match="client= cannot go to Dask workers"):
        import httpx

        ddf.aapi.fetch(server.url + "/users/{user_id}", client=httpx.AsyncClient())
    assert server.count() == 0


def test_errors_raise_gathers_every_failed_row(server: TestServer) -> None:
    _, ddf = users(12, 3, missing=3)
    with pytest.raises(pandas_async.FetchError) as info:
        ddf.aapi.fetch(server.url + "/users/{user_id}")
    error = info.value
    assert error.counts == {"HTTP 404 Not Found": 3}
    assert error.total == 15
    assert sorted(error.frame["user_id"]) == [5000, 5001, 5002]
    assert error.frame["_status"].tolist() == [404, 404, 404]


SCHEMA = {"name": "string", "address.geo.lat": "float64", "id": "int64"}


def test_schema_makes_the_result_lazy(server: TestServer) -> None:
    frame, ddf = users(20, 4, missing=1)
    url = server.url + "/users/{user_id}"
    out = ddf.aapi.fetch(url, schema=SCHEMA, errors="collect")
    assert server.count() == 0  # nothing sent before compute
    expected = frame.aapi.fetch(url, schema=SCHEMA, errors="collect")
    assert list(out.columns) == list(expected.columns)
    got = out.compute()
    assert server.count("/users/") == 2 * len(frame)
    pd.testing.assert_frame_equal(without_elapsed(got), without_elapsed(as_dask_holds(expected)))


def test_schema_errors_raise_at_compute_with_every_failed_row(server: TestServer) -> None:
    _, ddf = users(12, 3, missing=2)
    out = ddf.aapi.fetch(server.url + "/users/{user_id}", schema=SCHEMA)
    assert server.count() == 0
    assert "_error" not in out.columns
    with pytest.raises(pandas_async.FetchError) as info:
        out.compute()
    assert info.value.counts == {"HTTP 404 Not Found": 2}
    assert sorted(info.value.frame["user_id"]) == [5000, 5001]


def test_threaded_scheduler_holds_concurrency_in_process(server: TestServer) -> None:
    frame = pd.DataFrame({"id": range(24)})
    ddf = dd.from_pandas(frame, npartitions=6)
    with pandas_async_dask_threads(6):
        ddf.aapi.fetch(
            server.url + "/slow", params={"delay": "0.15", "id": "{id}"}, concurrency=4
        ).compute()
    assert server.count("/slow") == 24
    assert 2 <= server.max_in_flight <= 4


def test_threaded_scheduler_holds_the_rate_in_process(server: TestServer) -> None:
    ddf = dd.from_pandas(pd.DataFrame({"id": range(60)}), npartitions=3)
    with pandas_async_dask_threads(3):
        ddf.aapi.fetch(
            server.url + "/ratelimited", params={"limit": "20", "id": "{id}"}, rate="20/s"
        ).compute()
    assert server.count("/ratelimited") == 60
    assert server.ratelimit_violations == 0
    assert max_in_any_window(server.arrivals("/ratelimited"), 1.0) <= 20


def pandas_async_dask_threads(n: int) -> Any:
    import dask

    return dask.config.set(scheduler="threads", num_workers=n)


def test_lease_plan_splits_budgets_so_the_sum_holds() -> None:
    plan = LeasePlan.split(
        concurrency=100, rate=Rate(50, 1.0), burst=None, partitions=40, threads=4
    )
    assert plan.leases * plan.concurrency <= 100
    assert plan.rate is not None and plan.leases * plan.rate.limit <= 50
    assert (plan.leases, plan.concurrency, plan.rate.limit) == (2, 50, 25)
    plan = LeasePlan.split(concurrency=6, rate=None, burst=None, partitions=4, threads=4)
    assert (plan.leases, plan.concurrency) == (3, 2)
    plan = LeasePlan.split(concurrency=10, rate=Rate(1, 1.0), burst=None, partitions=8, threads=8)
    assert plan.leases == 1 and plan.rate == Rate(1, 1.0)
    assert plan.hand_over == 1.0
    plan = LeasePlan.split(concurrency=8, rate=Rate(20, 1.0), burst=4, partitions=8, threads=8)
    assert plan.leases == 4 and plan.burst == 1 and plan.rate == Rate(5, 1.0)
    plan = LeasePlan.split(concurrency=8, rate=Rate(20, 1.0), burst=1, partitions=8, threads=8)
    assert plan.leases == 1 and plan.burst == 1  # evenly spaced starts: one lease only


def test_burst_one_spaces_starts_across_partitions(server: TestServer) -> None:
    ddf = dd.from_pandas(pd.DataFrame({"id": range(12)}), npartitions=2)
    with pandas_async_dask_threads(4):
        ddf.aapi.fetch(
            server.url + "/record", params={"id": "{id}"}, rate="20/s", burst=1, concurrency=4
        ).compute()
    arrivals = server.arrivals("/record")
    assert len(arrivals) == 12
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert min(gaps) >= 0.05 - CLOCK_TOLERANCE / 2  # one start every 50 ms, never two at once


# -- a real cluster of worker processes -----------------------------------------------------------


@pytest.fixture(scope="module")
def cluster_client() -> Iterator[Any]:
    with (
        distributed.LocalCluster(
            processes=True, n_workers=2, threads_per_worker=2, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


@pytest.fixture
def client(cluster_client: Any, server: TestServer) -> Any:
    with cluster_client.as_current():
        yield cluster_client


@pytest.mark.slow
def test_cluster_results_equal_the_pandas_call(client: Any, server: TestServer) -> None:
    frame, ddf = users(40, 4, missing=2)
    url = server.url + "/users/{user_id}"
    got = ddf.aapi.fetch(url, errors="collect", concurrency=8).compute()
    expected = frame.aapi.fetch(url, errors="collect")
    pd.testing.assert_frame_equal(without_elapsed(got), without_elapsed(as_dask_holds(expected)))
    with pytest.raises(pandas_async.FetchError) as info:
        ddf.aapi.fetch(url)
    assert sorted(info.value.frame["user_id"]) == [5000, 5001]


@pytest.mark.slow
def test_cluster_concurrency_is_a_total(client: Any, server: TestServer) -> None:
    frame = pd.DataFrame({"id": range(48)})
    ddf = dd.from_pandas(frame, npartitions=8)
    ddf.aapi.fetch(server.url + "/slow", params={"delay": "0.2", "id": "{id}"}, concurrency=6)
    assert server.count("/slow") == 48
    # 4 worker threads each running a partition would put 24 in flight with a per-worker cap.
    assert 4 <= server.max_in_flight <= 6


@pytest.mark.slow
def test_cluster_rate_is_a_total(client: Any, server: TestServer) -> None:
    frame = pd.DataFrame({"id": range(60)})
    ddf = dd.from_pandas(frame, npartitions=6)
    started = time.monotonic()
    ddf.aapi.fetch(
        server.url + "/ratelimited",
        params={"limit": "20", "id": "{id}"},
        rate="20/s",
        concurrency=20,
    )
    seconds = time.monotonic() - started
    assert server.count("/ratelimited") == 60
    assert server.ratelimit_violations == 0
    assert max_in_any_window(server.arrivals("/ratelimited"), 1.0) <= 20
    assert seconds >= 2.0  # 60 at 20/s: the third window cannot open before 2 s


@pytest.mark.slow
def test_cluster_schema_is_lazy_and_cancel_stops_requests(client: Any, server: TestServer) -> None:
    ddf = dd.from_pandas(pd.DataFrame({"id": range(400)}), npartitions=4)
    out = ddf.aapi.fetch(
        server.url + "/slow",
        params={"delay": "0.3", "id": "{id}"},
        schema={"delay": "float64"},
        concurrency=8,
    )
    time.sleep(0.5)
    assert server.count() == 0  # nothing sent before compute
    future = client.compute(out)
    assert server.wait_for(lambda: server.count("/slow") >= 8, timeout=10)
    future.cancel()
    assert server.wait_for(lambda: server.in_flight == 0, timeout=5)
    sent = server.count("/slow")
    time.sleep(1.0)
    assert server.count("/slow") == sent < 100  # 400 without the cancel


@pytest.mark.slow
def test_cluster_schema_raise_gathers_failures_across_partitions(
    client: Any, server: TestServer
) -> None:
    _, ddf = users(30, 3, missing=3)
    out = ddf.aapi.fetch(server.url + "/users/{user_id}", schema=SCHEMA, concurrency=6)
    with pytest.raises(pandas_async.FetchError) as info:
        out.compute()
    assert info.value.total == 33
    assert sorted(info.value.frame["user_id"]) == [5000, 5001, 5002]


@pytest.mark.slow
def test_cluster_retries_and_collect(client: Any, server: TestServer) -> None:
    frame = pd.DataFrame({"code": [200, 500, 200, 404]})
    ddf = dd.from_pandas(frame, npartitions=2, sort=False)
    out = ddf.aapi.fetch(
        server.url + "/status/{code}", errors="collect", retries=fast_retry(1)
    ).compute()
    assert out["_status"].tolist() == [200, 500, 200, 404]
    assert out["_attempts"].tolist() == [1, 2, 1, 1]


# -- to_parquet ---------------------------------------------------------------------------------


def read_back(path: Path) -> pd.DataFrame:
    frame = pd.read_parquet(path)
    return frame.sort_values("user_id").reset_index(drop=True)


def check_to_parquet_resumes(server: TestServer, tmp_path: Path) -> None:
    url = server.url + "/users/{user_id}"
    frame, ddf = users(40, 4, missing=2)
    first = dd.from_pandas(frame.iloc[:20], npartitions=2, sort=False)
    report = first.aapi.to_parquet(tmp_path / "dask", url, batch_size=4)
    assert report.rows == 20 and report.failed_rows == 0
    assert server.count("/users/") == 20
    with pytest.raises(pandas_async.FetchError) as info:
        ddf.aapi.to_parquet(tmp_path / "dask", url, batch_size=4)  # the rest, and 2 that fail
    assert server.count("/users/") == 20 + 22  # resumed: only rows not yet written
    assert sorted(info.value.frame["user_id"]) == [5000, 5001]
    with pytest.raises(pandas_async.FetchError):
        ddf.aapi.to_parquet(tmp_path / "dask", url, batch_size=4)
    assert server.count("/users/") == 20 + 22 + 2  # a re-run retries exactly the failed rows
    with pytest.raises(pandas_async.FetchError):
        frame.aapi.to_parquet(tmp_path / "pandas", url, batch_size=4)
    # Same rows and values; text dtypes read back as each folder's schema history left them.
    pd.testing.assert_frame_equal(
        read_back(tmp_path / "dask"), read_back(tmp_path / "pandas"), check_dtype=False
    )
    assert len(read_back(tmp_path / "dask")) == 40


def test_to_parquet_resumes_like_the_pandas_one(server: TestServer, tmp_path: Path) -> None:
    check_to_parquet_resumes(server, tmp_path)


@pytest.mark.slow
def test_cluster_to_parquet_resumes_like_the_pandas_one(
    client: Any, server: TestServer, tmp_path: Path
) -> None:
    check_to_parquet_resumes(server, tmp_path)


@pytest.mark.slow
def test_cluster_to_parquet_holds_the_totals(
    client: Any, server: TestServer, tmp_path: Path
) -> None:
    ddf = dd.from_pandas(pd.DataFrame({"id": range(48)}), npartitions=8)
    report = ddf.aapi.to_parquet(
        tmp_path / "slow", server.url + "/slow", params={"delay": "0.2", "id": "{id}"},
        concurrency=6, batch_size=5,
    )  # fmt: skip
    assert report.rows == 48 and report.requests == 48
    assert 4 <= server.max_in_flight <= 6
    assert len(pd.read_parquet(tmp_path / "slow")) == 48
