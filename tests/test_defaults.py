"""set_defaults() and defaults(): options for later calls, against the suite's real server."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

import pandas_async
from pandas_async._defaults import apply_defaults
from tests.helpers import users_frame
from tests.server import TestServer


@pytest.fixture(autouse=True)
def _clean_defaults() -> Iterator[None]:
    pandas_async.reset_defaults()
    yield
    pandas_async.reset_defaults()


def sent_headers(server: TestServer) -> list[dict[str, str]]:
    return [r.headers for r in server.requests]


def one(server: TestServer, **options: object) -> None:
    users_frame([1]).aapi.fetch(server.url + "/users/{user_id}", **options)  # type: ignore[arg-type]


def test_session_defaults_apply_to_later_calls(server: TestServer) -> None:
    pandas_async.set_defaults(headers={"X-Team": "data"}, params={"lang": "en"})
    one(server)
    assert server.last.headers["x-team"] == "data"
    assert server.last.query == {"lang": "en"}
    pandas_async.reset_defaults()
    one(server)
    assert "x-team" not in server.last.headers and server.last.query == {}


def test_calls_own_options_win(server: TestServer) -> None:
    pandas_async.set_defaults(errors="collect", retries=0)
    out = users_frame([5000]).aapi.fetch(server.url + "/users/{user_id}")
    assert out["_status"].tolist() == [404]  # errors="collect" from the defaults
    with pytest.raises(pandas_async.FetchError):
        users_frame([5000]).aapi.fetch(server.url + "/users/{user_id}", errors="raise")


def test_headers_and_params_merge_key_by_key(server: TestServer) -> None:
    pandas_async.set_defaults(
        headers={"Authorization": "Bearer default-token", "X-Team": "data"},
        params={"lang": "en", "v": "1"},
    )
    one(server, headers={"X-Trace": "t1"}, params={"v": "2"})
    last = server.last
    assert last.headers["authorization"] == "Bearer default-token"
    assert last.headers["x-team"] == "data" and last.headers["x-trace"] == "t1"
    assert last.query == {"lang": "en", "v": "2"}  # the call's own value wins
    # Header names are case-insensitive: the call's spelling replaces the default's.
    one(server, headers={"authorization": "Bearer own-token"})
    assert server.last.headers["authorization"] == "Bearer own-token"
    # None removes a default for one call.
    one(server, headers={"X-Team": None}, params={"lang": None})
    assert "x-team" not in server.last.headers
    assert server.last.query == {"v": "1"}
    # A function of the row replaces the default mapping rather than merging with it.
    one(server, headers=lambda row: {"X-Row": str(row["user_id"])})
    assert server.last.headers["x-row"] == "1" and "x-team" not in server.last.headers


def test_set_defaults_adds_to_earlier_ones(server: TestServer) -> None:
    pandas_async.set_defaults(headers={"X-A": "a"})
    pandas_async.set_defaults(headers={"X-B": "b"}, params={"p": "1"})
    one(server)
    assert server.last.headers["x-a"] == "a" and server.last.headers["x-b"] == "b"


def test_block_defaults_apply_inside_only_and_nest(server: TestServer) -> None:
    pandas_async.set_defaults(headers={"X-Session": "s"})
    with pandas_async.defaults(headers={"X-Block": "outer"}, params={"a": "1"}):
        with pandas_async.defaults(headers={"X-Inner": "i"}):
            one(server)
            inner = server.last
        one(server)
        outer = server.last
    one(server)
    after = server.last
    assert inner.headers["x-session"] == "s"
    assert inner.headers["x-block"] == "outer" and inner.headers["x-inner"] == "i"
    assert outer.headers["x-block"] == "outer" and "x-inner" not in outer.headers
    assert "x-block" not in after.headers and after.query == {}
    assert after.headers["x-session"] == "s"


def test_cache_as_a_default(server: TestServer, tmp_path: Path) -> None:
    with pandas_async.defaults(cache=tmp_path):
        one(server)
        one(server)
    assert server.count() == 1
    one(server)  # outside the block: no cache
    assert server.count() == 2


def test_preview_shows_the_defaults_masked(server: TestServer) -> None:
    pandas_async.set_defaults(headers={"Authorization": "Bearer secret-token", "X-Team": "d"})
    preview = users_frame([1]).aapi.preview(server.url + "/users/{user_id}")
    assert preview["headers"].iloc[0] == {"Authorization": "***", "X-Team": "d"}
    assert server.count() == 0


def test_client_as_a_default(server: TestServer) -> None:
    async def run() -> None:
        async with httpx.AsyncClient(headers={"X-Client": "mine"}) as client:
            with pandas_async.defaults(client=client):
                await users_frame([1]).aapi.afetch(server.url + "/users/{user_id}")

    asyncio.run(run())
    assert server.last.headers["x-client"] == "mine"


def test_bad_defaults_fail_when_set_naming_the_option(server: TestServer) -> None:
    unknown = r"set_defaults\(\) got an unexpected option 'rtae'; did you mean 'rate'"
    with pytest.raises(TypeError, match=unknown):
        pandas_async.set_defaults(rtae="10/s")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="rate="):
        pandas_async.set_defaults(rate="fast")
    with pytest.raises(ValueError, match="concurrency="), pandas_async.defaults(concurrency=0):
        pass
    with pytest.raises(TypeError, match="cache="):
        pandas_async.set_defaults(cache=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="headers="):
        pandas_async.set_defaults(headers="Authorization: x")  # type: ignore[arg-type]
    pandas_async.set_defaults(rate="10/s")
    with pytest.raises(ValueError, match="retries="):
        pandas_async.set_defaults(rate="1/s", concurrency=2, retries=-1)
    assert apply_defaults({}) == {"rate": "10/s"}  # a failed set changes nothing
    assert server.count() == 0


def test_block_defaults_do_not_leak_between_threads(server: TestServer) -> None:
    inside = threading.Event()
    other_done = threading.Event()
    seen: dict[str, dict[str, str]] = {}

    def in_block() -> None:
        with pandas_async.defaults(headers={"X-Who": "block-thread"}):
            inside.set()
            assert other_done.wait(30)
            users_frame([1]).aapi.fetch(server.url + "/echo", errors="collect")
            seen["block"] = server.last.headers

    def outside() -> None:
        assert inside.wait(30)
        users_frame([1]).aapi.fetch(server.url + "/echo", errors="collect")
        seen["other"] = server.last.headers
        other_done.set()

    threads = [threading.Thread(target=in_block), threading.Thread(target=outside)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert seen["block"]["x-who"] == "block-thread"
    assert "x-who" not in seen["other"]


def test_session_defaults_are_seen_by_other_threads(server: TestServer) -> None:
    pandas_async.set_defaults(headers={"X-Everywhere": "yes"})
    thread = threading.Thread(target=one, args=(server,))
    thread.start()
    thread.join(60)
    assert server.last.headers["x-everywhere"] == "yes"


def test_block_defaults_do_not_leak_between_tasks(server: TestServer) -> None:
    frame = pd.DataFrame({"task": ["a"]})
    url = server.url + "/echo/{task}"

    async def main() -> dict[str, dict[str, str]]:
        entered, other_done = asyncio.Event(), asyncio.Event()
        seen: dict[str, dict[str, str]] = {}

        async def in_block() -> None:
            with pandas_async.defaults(headers={"X-Who": "block-task"}):
                entered.set()
                await other_done.wait()
                await frame.assign(task="block").aapi.afetch(url)
                seen["block"] = server.last.headers

        async def outside() -> None:
            await entered.wait()
            await frame.assign(task="other").aapi.afetch(url)
            seen["other"] = server.last.headers
            other_done.set()

        async with asyncio.TaskGroup() as group:
            group.create_task(in_block())
            group.create_task(outside())
        return seen

    seen = asyncio.run(main())
    assert seen["block"]["x-who"] == "block-task"
    assert "x-who" not in seen["other"]


def test_dask_calls_take_the_callers_defaults(server: TestServer) -> None:
    dd = pytest.importorskip("dask.dataframe")
    distributed = pytest.importorskip("distributed")
    import pandas_async.dask  # registers .aapi on dask frames

    frame = dd.from_pandas(pd.DataFrame({"id": range(6)}), npartitions=3)
    pandas_async.set_defaults(headers={"X-Session": "s", "X-Team": "t"})
    # Workers run tasks in threads of their own, which do not see this thread's block: the
    # defaults must go with the call.
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster),
        pandas_async.defaults(headers={"X-Block": "b"}, params={"from": "block"}),
    ):
        out = frame.aapi.fetch(
            server.url + "/echo", params={"id": "{id}"}, headers={"X-Team": None}
        ).compute()
    assert len(out) == 6 and server.count("/echo") == 6
    for record in server.requests_to("/echo"):
        assert record.headers["x-block"] == "b" and record.headers["x-session"] == "s"
        assert "x-team" not in record.headers  # None removed it, on the workers too
        assert record.query["from"] == "block"
