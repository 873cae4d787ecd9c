"""Issue 10, items 3-8: values go out as meant, answers come back whole, one bad row never sinks
the call, and options are checked before any request. Against real servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import decimal
import json
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

import pandas_async
from pandas_async import Paginator
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


# -- 5. values sent as meant -------------------------------------------------------------------


@pytest.mark.parametrize("missing", [None, float("nan"), pd.NA, pd.NaT], ids=repr)
def test_a_missing_value_leaves_its_header_and_param_out(api: EchoServer, missing: object) -> None:
    df = pd.DataFrame({"tenant": pd.Series(["acme", missing], dtype=object), "id": [1, 2]})
    out = df.aapi.fetch(
        api.url + "/echo",
        headers={"X-Tenant": "{tenant}", "X-Trace": "t-{tenant}"},
        params={"q": "id-{tenant}", "t": "{tenant}", "id": "{id}"},
        max_level=0,
    )
    first, second = out["headers"].tolist()
    assert first["x-tenant"] == "acme" and first["x-trace"] == "t-acme"
    assert "x-tenant" not in second and "x-trace" not in second
    assert out["query_string"].tolist() == ["q=id-acme&t=acme&id=1", "id=2"]


def test_missing_values_from_callables_are_left_out_too(api: EchoServer) -> None:
    df = pd.DataFrame({"tenant": ["acme", None]})
    out = df.aapi.fetch(
        api.url + "/echo",
        headers=lambda row: {"X-Tenant": row["tenant"]},
        params=lambda row: {"t": row["tenant"], "k": "v"},
        max_level=0,
    )
    assert "x-tenant" not in out["headers"].iloc[1]
    assert out["query_string"].tolist() == ["t=acme&k=v", "k=v"]


def test_bytes_are_decoded_never_sent_as_their_repr(api: EchoServer) -> None:
    df = pd.DataFrame({"b": [b"caf\xc3\xa9", b"abc"]})
    out = df.aapi.fetch(
        api.url + "/echo", headers={"X-B": "{b}"}, params={"b": "{b}", "c": "x-{b}"}, max_level=0
    )
    assert out["query_string"].tolist() == ["b=caf%C3%A9&c=x-caf%C3%A9", "b=abc&c=x-abc"]
    assert out["headers"].iloc[1]["x-b"] == "abc"
    sent = out.drop(columns="b").to_csv()
    assert "b'abc" not in sent and "b'caf" not in sent


def test_bytes_that_are_not_utf8_fail_their_row_only(api: EchoServer) -> None:
    df = pd.DataFrame({"b": [b"\xff\xfe", b"ok"]}, index=["bad", "good"])
    with pytest.raises(pandas_async.FetchError) as info:
        df.aapi.fetch(api.url + "/echo", params={"b": "{b}"})
    frame = info.value.frame
    assert frame.loc["good", "query_string"] == "b=ok"
    error = frame.loc["bad", "_error"]
    assert "column 'b'" in error and "UTF-8" in error
    assert len(api.seen("/echo")) == 1  # the bad row sent nothing


DATED = pd.DataFrame(
    {
        "when": pd.to_datetime(["2024-01-02 03:04:05", None]),
        "x": [1.5, np.nan],
        "n": np.array([3, 4], dtype=np.int64),
        "price": [decimal.Decimal("1.10"), decimal.Decimal("12345678901234567890.123456789")],
        "flag": [True, False],
    }
)


def _json_bodies(api: EchoServer) -> list[str]:
    return sorted(r.body.decode() for r in api.seen("/echo"))


@pytest.mark.parametrize("sender", ["default", "client"])
def test_json_from_row_to_dict_becomes_json(api: EchoServer, sender: str) -> None:
    """The README's own json=lambda row: row.to_dict(), with dates, NaN, numpy and Decimal."""
    options: dict[str, Any] = {"method": "POST", "json": lambda row: row.to_dict()}
    if sender == "client":

        async def main() -> pd.DataFrame:
            async with httpx.AsyncClient() as client:
                return await DATED.aapi.afetch(api.url + "/echo", client=client, **options)

        out = asyncio.run(main())
    else:
        out = DATED.aapi.fetch(api.url + "/echo", **options)
    assert out["method"].tolist() == ["POST", "POST"]
    bodies = _json_bodies(api)
    assert bodies == [
        '{"when":"2024-01-02T03:04:05","x":1.5,"n":3,"price":1.10,"flag":true}',
        '{"when":null,"x":null,"n":4,"price":12345678901234567890.123456789,"flag":false}',
    ]
    assert all(json.loads(b) for b in bodies)  # valid JSON: no NaN, no Infinity
    assert all(r.headers["content-type"] == "application/json" for r in api.seen("/echo"))


@pytest.mark.parametrize("sender", ["default", "client"])
def test_json_templates_with_the_same_values_match(api: EchoServer, sender: str) -> None:
    options: dict[str, Any] = {
        "method": "POST",
        "json": {"when": "{when}", "x": "{x}", "n": "{n}", "price": "{price}", "nested": ["{x}"]},
    }
    if sender == "client":

        async def main() -> pd.DataFrame:
            async with httpx.AsyncClient() as client:
                return await DATED.aapi.afetch(api.url + "/echo", client=client, **options)

        asyncio.run(main())
    else:
        DATED.aapi.fetch(api.url + "/echo", **options)
    assert _json_bodies(api) == [
        '{"when":"2024-01-02T03:04:05","x":1.5,"n":3,"price":1.10,"nested":[1.5]}',
        '{"when":null,"x":null,"n":4,"price":12345678901234567890.123456789,"nested":[null]}',
    ]


def test_a_json_callable_returning_what_json_cannot_hold_fails_its_row_only(
    api: EchoServer,
) -> None:
    df = pd.DataFrame({"id": [1, 2]})
    out = df.aapi.fetch(
        api.url + "/echo",
        method="POST",
        json=lambda row: {"ids": {1, 2}} if row["id"] == 1 else {"id": int(row["id"])},
        errors="collect",
    )
    assert "set" in out["_error"].iloc[0] and "json=" in out["_error"].iloc[0]
    assert pd.isna(out["_error"].iloc[1])
    assert _json_bodies(api) == ['{"id":2}']


def test_integers_beyond_64_bits_keep_their_value(api: EchoServer) -> None:
    out = pd.DataFrame({"k": [1]}).aapi.fetch(api.url + "/bigint")
    # (compared as text: numpy says a float64 equals any int it rounds to)
    assert str(out["id"].iloc[0]) == "123456789012345678901234567890"
    assert str(out["neg"].iloc[0]) == "-98765432109876543210987"
    assert out["small"].iloc[0] == 7


# -- 6. one bad row never sinks the call ------------------------------------------------------


@pytest.mark.parametrize("errors", ["raise", "collect"])
def test_an_answer_nested_a_thousand_levels_deep_fails_its_row_only(
    api: EchoServer, errors: str
) -> None:
    df = pd.DataFrame({"url": [api.url + "/deep?n=1000", api.url + "/echo"]})
    if errors == "raise":
        with pytest.raises(pandas_async.FetchError) as info:
            df.aapi.fetch("url")
        out = info.value.frame
    else:
        out = df.aapi.fetch("url", errors="collect")
    assert out["method"].tolist()[1] == "GET"
    assert "nested too deeply" in out["_error"].iloc[0]
    assert pd.isna(out["_error"].iloc[1])


@pytest.mark.parametrize("option", ["url", "params", "headers", "json", "data"])
def test_a_callable_that_raises_fails_its_row_only(api: EchoServer, option: str) -> None:
    def fn(row: pd.Series) -> Any:
        if row["id"] == 2:
            raise LookupError("no such tenant")
        return api.url + "/echo" if option == "url" else {"id": str(row["id"])}

    df = pd.DataFrame({"id": [1, 2, 3]})
    url: Any = fn if option == "url" else api.url + "/echo"
    kwargs: dict[str, Any] = {} if option == "url" else {option: fn}
    with pytest.raises(pandas_async.FetchError) as info:
        df.aapi.fetch(url, method="POST", **kwargs)
    frame = info.value.frame
    assert frame["method"].tolist()[::2] == ["POST", "POST"]
    assert frame["_error"].iloc[1] == f"{option}= callable raised LookupError: no such tenant"
    assert info.value.counts == {f"{option}= callable error": 1}
    assert len(api.seen("/echo")) == 2


def test_a_url_callable_returning_a_non_string_fails_its_row_only(api: EchoServer) -> None:
    df = pd.DataFrame({"id": [1, 2]})
    out = df.aapi.fetch(lambda row: api.url + "/echo" if row["id"] == 1 else None, errors="collect")
    assert out["_error"].iloc[1] == "url= callable returned a NoneType, expected a str"
    assert out["method"].iloc[0] == "GET"


class _DictPaginator(Paginator):
    """A custom paginator that returns a dict where a request spec belongs."""

    def next_request(self, spec: Any, page: Any) -> Any:
        return {"url": spec.url + "&page=2"}


def test_a_custom_paginator_returning_a_non_spec_fails_its_row_only(server: TestServer) -> None:
    df = pd.DataFrame({"url": [server.url + "/list?n=2", server.url + "/empty-list"]})
    with pytest.raises(pandas_async.FetchError) as info:
        df.aapi.fetch("url", paginate=_DictPaginator())
    frame = info.value.frame
    assert info.value.counts == {"paginator error": 1}
    error = frame["_error"].dropna().iloc[0]
    assert "dict" in error and "RequestSpec" in error
    assert len(frame) == 3  # the failed row keeps the records of its first page
