"""Issue 10, items 3-8: values go out as meant, answers come back whole, one bad row never sinks
the call, and options are checked before any request. Against real servers on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest

import pandas_async
from tests.security_servers import EchoServer
from tests.server import TestServer


@pytest.fixture(scope="module")
def echo() -> Iterator[EchoServer]:
    server = EchoServer().start()
    yield server
    server.stop()


@pytest.fixture
def api(echo: EchoServer) -> EchoServer:
    echo.reset()
    return echo


# -- 3. the dedupe key includes the body ---------------------------------------------------


@pytest.mark.parametrize("body", ["json", "data"])
def test_get_rows_with_different_bodies_are_never_merged(api: EchoServer, body: str) -> None:
    df = pd.DataFrame({"name": ["alice", "bob", "carol", "alice"]})
    out = df.aapi.fetch(api.url + "/echo", **{body: {"name": "{name}"}})  # type: ignore[arg-type]
    sent = sorted(r.body.decode() for r in api.seen("/echo"))
    assert len(sent) == 3  # alice twice: one request; bob and carol each their own
    for name, answer in zip(df["name"], out["body"], strict=True):
        assert name in answer
    report = pandas_async.last_report()
    assert report is not None and report.shared_rows == 1


# -- 4. input columns named like outcome columns --------------------------------------------


def test_input_columns_named_like_outcome_columns_are_kept(api: EchoServer) -> None:
    df = pd.DataFrame(
        {"_status": ["mine"], "_error": ["x"], "_elapsed": [1.5], "_attempts": [9], "q": [1]}
    )
    out = df.aapi.fetch(api.url + "/echo", params={"q": "{q}"})
    assert out.columns.is_unique
    pd.testing.assert_frame_equal(out[df.columns], df)
    assert "method" in out.columns

    collected = df.aapi.fetch(api.url + "/echo", params={"q": "{q}"}, errors="collect")
    assert collected.columns.is_unique
    pd.testing.assert_frame_equal(collected[df.columns], df)
    assert collected["_status_response"].tolist() == [200]
    assert collected["_error_response"].isna().all()
    assert collected["_attempts_response"].tolist() == [1]
    assert "_elapsed_response" in collected.columns


def test_failed_rows_with_outcome_named_inputs_keep_them_in_fetch_error(
    server: TestServer,
) -> None:
    df = pd.DataFrame({"_error": ["keep me", "me too"], "id": [1, 5000]})
    with pytest.raises(pandas_async.FetchError) as info:
        df.aapi.fetch(server.url + "/users/{id}")
    frame = info.value.frame
    assert frame.columns.is_unique
    assert frame["_error"].tolist() == ["keep me", "me too"]
    assert frame["_error_response"].tolist()[1] == "HTTP 404 Not Found"


# -- 7. meta= fields some answers omit ------------------------------------------------------


def test_meta_missing_from_some_answers_becomes_nan(api: EchoServer) -> None:
    df = pd.DataFrame({"owner": ["ann", None]})
    urls = [api.url + "/items?owner=ann", api.url + "/items"]
    out = pd.DataFrame({"url": urls}, index=["a", "b"]).aapi.fetch(
        "url", record_path="items", meta=["owner"], errors="collect"
    )
    assert out.index.tolist() == ["a", "a", "b", "b"]
    assert out["n"].tolist() == [1, 2, 1, 2]
    assert out["owner"].tolist()[:2] == ["ann", "ann"]
    assert out["owner"].iloc[2:].isna().all()
    assert out["_error"].isna().all()
    del df


# -- 8. options checked before any request ---------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "named"),
    [
        ({"json": {1, 2}}, TypeError, "json="),
        ({"json": {"ids": {1, 2}}}, TypeError, "json="),
        ({"json": object()}, TypeError, "json="),
        ({"data": 123}, TypeError, "data="),
        ({"data": 1.5}, TypeError, "data="),
        ({"rate": 1e300}, ValueError, "rate="),
        ({"rate": "99999999999999999999999/s"}, ValueError, "rate="),
        ({"meta": 1}, TypeError, "meta="),
        ({"meta": ["a", 2]}, TypeError, "meta="),
    ],
)
def test_bad_body_rate_and_meta_options_fail_before_any_request(
    api: EchoServer, options: dict[str, object], error: type[Exception], named: str
) -> None:
    df = pd.DataFrame({"id": [1, 2]})
    with pytest.raises(error, match=named):
        df.aapi.fetch(api.url + "/echo", record_path="items", **options)  # type: ignore[arg-type]
    assert api.requests == []
