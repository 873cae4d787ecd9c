"""DESIGN.md sections 2 and 5: FetchError, errors="collect", secrets, and bad input rejected
before any request is sent."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import Any

import httpx
import pandas as pd
import pytest

import pandas_async
from tests.helpers import OUTCOME_COLUMNS, fast_retry, unique, users_frame
from tests.server import TestServer

# -- errors="raise" -------------------------------------------------------------------------


def test_raise_after_every_row_was_attempted(server: TestServer) -> None:
    # With concurrency=1 rows go one after the other: a failing row early on must not stop
    # the rows after it.
    df = users_frame([1, 5000, 2, 6000, 3], index=list("abcde"))
    with pytest.raises(pandas_async.FetchError) as info:
        df.aapi.fetch(server.url + "/users/{user_id}", concurrency=1, retries=fast_retry(1))
    assert server.count("/users/") == 5
    exc = info.value
    assert "2 of 5 rows failed" in str(exc)
    assert "2 HTTP 404 Not Found" in str(exc)
    assert exc.counts == {"HTTP 404 Not Found": 2}

    frame = exc.frame
    assert frame.index.tolist() == list("abcde")
    assert frame["user_id"].tolist() == [1, 5000, 2, 6000, 3]
    assert frame.loc[["a", "c", "e"], "name"].tolist() == ["User 1", "User 2", "User 3"]
    assert frame.loc[["b", "d"], "name"].isna().all()
    assert frame["_status"].tolist() == [200, 404, 200, 404, 200]
    assert set(OUTCOME_COLUMNS) <= set(frame.columns)


def test_fetch_error_message_counts_every_cause(server: TestServer) -> None:
    df = pd.DataFrame(
        {
            "url": [
                f"{server.url}/users/5000",
                f"{server.url}/users/6000",
                f"{server.url}/slow?delay=1",
                f"{server.url}/status/500",
                f"{server.url}/users/1",
            ]
        }
    )
    with pytest.raises(pandas_async.FetchError) as info:
        df.aapi.fetch("url", timeout=0.1, retries=0)
    message = str(info.value)
    assert "4 of 5 rows failed" in message
    assert "2 HTTP 404 Not Found" in message
    assert "1 ReadTimeout" in message
    assert "1 HTTP 500 Internal Server Error" in message
    assert ".frame" in message
    assert info.value.counts == {
        "HTTP 404 Not Found": 2,
        "ReadTimeout": 1,
        "HTTP 500 Internal Server Error": 1,
    }


def test_fetch_error_frame_equals_the_collect_result(server: TestServer) -> None:
    df = users_frame([1, 5000, 2], index=["x", "y", "z"])
    with pytest.raises(pandas_async.FetchError) as info:
        df.aapi.fetch(server.url + "/users/{user_id}", retries=0)
    collected = df.aapi.fetch(server.url + "/users/{user_id}", retries=0, errors="collect")
    pd.testing.assert_frame_equal(
        info.value.frame.drop(columns="_elapsed"), collected.drop(columns="_elapsed")
    )


def test_fetch_error_is_an_exception() -> None:
    assert issubclass(pandas_async.FetchError, Exception)


def test_rows_mode_failed_row_keeps_one_row(server: TestServer) -> None:
    df = pd.DataFrame(
        {"url": [f"{server.url}/list?n=2", f"{server.url}/status/404"]}, index=["ok", "bad"]
    )
    out = df.aapi.fetch("url", how="rows", errors="collect")
    assert out.index.tolist() == ["ok", "ok", "bad"]
    assert out["_status"].tolist() == [200, 200, 404]
    assert pd.isna(out.loc["bad", "rank"])


# -- errors="collect" -----------------------------------------------------------------------


def test_collect_outcome_columns_and_dtypes(server: TestServer) -> None:
    df = pd.DataFrame(
        {"url": [f"{server.url}/users/1", f"{server.url}/users/5000", f"{server.url}/drop"]},
        index=["ok", "missing", "dropped"],
    )
    out = df.aapi.fetch("url", errors="collect", retries=fast_retry(1))
    assert out["_status"].dtype == "Int64"
    assert isinstance(out["_error"].dtype, pd.StringDtype)
    assert out["_elapsed"].dtype == "float64"
    assert out["_attempts"].dtype == "int64"

    assert out.loc["ok", "_status"] == 200
    assert pd.isna(out.loc["ok", "_error"])
    assert out.loc["ok", "_attempts"] == 1
    assert out.loc["ok", "name"] == "User 1"

    assert out.loc["missing", "_status"] == 404
    assert out.loc["missing", "_error"] == "HTTP 404 Not Found"
    assert out.loc["missing", "_attempts"] == 1
    assert pd.isna(out.loc["missing", "name"])

    assert pd.isna(out.loc["dropped", "_status"])
    assert isinstance(out.loc["dropped", "_error"], str)
    assert out.loc["dropped", "_attempts"] == 2
    assert (out["_elapsed"] >= 0).all()
    assert out["url"].tolist() == df["url"].tolist()


def test_collect_with_everything_failing_still_returns_the_input(server: TestServer) -> None:
    df = users_frame([5000, 6000])
    out = df.aapi.fetch(server.url + "/users/{user_id}", errors="collect")
    assert out["user_id"].tolist() == [5000, 6000]
    assert out["_error"].tolist() == ["HTTP 404 Not Found"] * 2


def test_collect_elapsed_counts_retries(server: TestServer) -> None:
    key = unique()
    out = pd.DataFrame({"key": [key]}).aapi.fetch(
        server.url + "/flaky/{key}",
        params={"fail": "1", "status": "503", "retry_after": "1"},
        retries=fast_retry(1),
        errors="collect",
    )
    assert out["_attempts"].tolist() == [2]
    assert out["_elapsed"].iloc[0] >= 0.95


# -- secrets --------------------------------------------------------------------------------

SECRETS = ["Bearer-s3cr3t-AUTH", "k3y-s3cr3t-QUERY", "t0k3n-s3cr3t-QUERY", "h3ad3r-s3cr3t-KEY"]


def _failing_fetch_with_secrets(server: TestServer, **extra: Any) -> pandas_async.FetchError:
    df = pd.DataFrame(
        {
            "url": [
                f"{server.url}/status/500",
                f"{server.url}/slow?delay=1",
                f"{server.url}/drop",
                f"{server.url}/users/5000",
            ]
        }
    )
    with pytest.raises(pandas_async.FetchError) as info:
        df.aapi.fetch(
            "url",
            headers={"Authorization": SECRETS[0], "X-API-Key": SECRETS[3]},
            params={"api_key": SECRETS[1], "token": SECRETS[2], "page": "1"},
            timeout=0.1,
            retries=fast_retry(1),
            **extra,
        )
    return info.value


def _assert_no_secret(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"secret {secret!r} leaked in {where}: {text[:2000]}"


def test_secrets_are_sent_to_the_server(server: TestServer) -> None:
    users_frame([1]).aapi.fetch(
        server.url + "/users/{user_id}",
        headers={"Authorization": SECRETS[0], "X-API-Key": SECRETS[3]},
        params={"api_key": SECRETS[1], "token": SECRETS[2]},
    )
    seen = server.last
    assert seen.headers["authorization"] == SECRETS[0]
    assert seen.headers["x-api-key"] == SECRETS[3]
    assert seen.query == {"api_key": SECRETS[1], "token": SECRETS[2]}


def test_no_secret_in_fetch_error_text_repr_traceback_or_frame(server: TestServer) -> None:
    exc = _failing_fetch_with_secrets(server)
    assert server.requests[0].headers["authorization"] == SECRETS[0]  # really sent
    _assert_no_secret(str(exc), "str(FetchError)")
    _assert_no_secret(repr(exc), "repr(FetchError)")
    _assert_no_secret(repr(exc.args), "FetchError.args")
    _assert_no_secret(repr(exc.counts), "FetchError.counts")
    _assert_no_secret("".join(traceback.format_exception(exc)), "the printed traceback")
    frame = exc.frame
    _assert_no_secret(repr(frame), "repr(FetchError.frame)")
    _assert_no_secret(frame.to_string(), "FetchError.frame")
    _assert_no_secret(" ".join(frame["_error"].dropna()), "_error")
    assert frame["_error"].notna().sum() == 4


def test_no_secret_in_any_log_record(server: TestServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # every logger: ours, httpx, httpcore, aiohttp, asyncio
    _failing_fetch_with_secrets(server)
    assert server.count() >= 4
    for record in caplog.records:
        text = record.getMessage()
        if record.exc_info:
            text += "".join(traceback.format_exception(*record.exc_info))
        _assert_no_secret(text, f"log record of {record.name!r}")


def test_no_secret_in_our_logger(server: TestServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="pandas_async")
    _failing_fetch_with_secrets(server)
    ours = [r for r in caplog.records if r.name.startswith("pandas_async")]
    for record in ours:
        text = record.getMessage()
        if record.exc_info:
            text += "".join(traceback.format_exception(*record.exc_info))
        _assert_no_secret(text, "a pandas_async log record")


def test_no_secret_with_a_user_client_carrying_auth(server: TestServer) -> None:
    client = httpx.AsyncClient(headers={"Authorization": SECRETS[0]}, params={"token": SECRETS[2]})
    df = pd.DataFrame({"url": [f"{server.url}/status/503"]})
    with pytest.raises(pandas_async.FetchError) as info:
        df.aapi.fetch("url", client=client, retries=0)
    assert server.last.headers["authorization"] == SECRETS[0]
    text = str(info.value) + repr(info.value) + "".join(traceback.format_exception(info.value))
    _assert_no_secret(text + info.value.frame.to_string(), "FetchError with a user client")


# -- bad input is rejected before any request -----------------------------------------------


@pytest.mark.parametrize(
    ("call", "missing"),
    [
        (lambda df, url: df.aapi.fetch(url + "/users/{nope}"), "nope"),
        (lambda df, url: df.aapi.fetch(url + "/users/{user_id}/{other}"), "other"),
        (lambda df, url: df.aapi.fetch("no_such_column_of_urls"), "no_such_column_of_urls"),
        (lambda df, url: df.aapi.fetch(url + "/echo", params=["user_id", "ghost"]), "ghost"),
        (lambda df, url: df.aapi.fetch(url + "/echo", params={"p": "{ghost}"}), "ghost"),
        (lambda df, url: df.aapi.fetch(url + "/echo", headers={"X": "a{ghost}"}), "ghost"),
        (
            lambda df, url: df.aapi.fetch(
                url + "/echo", method="POST", json={"a": {"b": ["{ghost}"]}}
            ),
            "ghost",
        ),
        (
            lambda df, url: df.aapi.fetch(url + "/echo", method="POST", json={"a": "{ghost}"}),
            "ghost",
        ),
        (
            lambda df, url: df.aapi.fetch(url + "/echo", method="POST", data={"a": "{ghost}"}),
            "ghost",
        ),
    ],
)
def test_missing_column_raises_key_error_naming_it(
    server: TestServer, call: Callable[[pd.DataFrame, str], object], missing: str
) -> None:
    df = users_frame([1, 2])
    with pytest.raises(KeyError, match=missing):
        call(df, server.url)
    assert server.count() == 0


BAD_VALUES: list[tuple[dict[str, Any], type[Exception]]] = [
    ({"concurrency": 0}, ValueError),
    ({"concurrency": -3}, ValueError),
    ({"rate": "ten per sec"}, ValueError),
    ({"rate": "10/fortnight"}, ValueError),
    ({"rate": 0}, ValueError),
    ({"rate": -5}, ValueError),
    ({"errors": "explode"}, ValueError),
    ({"how": "sideways"}, ValueError),
    ({"parse": "xml"}, ValueError),
    ({"timeout": -1}, ValueError),
    ({"retries": -1}, ValueError),
    ({"concurrency": "10"}, TypeError),
    ({"concurrency": 2.5}, TypeError),
    ({"timeout": "fast"}, TypeError),
    ({"retries": "3"}, TypeError),
    ({"rate": [10]}, TypeError),
    ({"params": 5}, TypeError),
    ({"headers": "X-A: b"}, TypeError),
    ({"client": "http://example.com"}, TypeError),
    ({"dedupe": "yes"}, TypeError),
]


@pytest.mark.parametrize(("options", "error"), BAD_VALUES, ids=lambda v: repr(v))
def test_bad_option_values_are_rejected_before_any_request(
    server: TestServer, options: dict[str, Any], error: type[Exception]
) -> None:
    df = users_frame([1, 2])
    with pytest.raises(error):
        df.aapi.fetch(server.url + "/users/{user_id}", **options)
    assert server.count() == 0


@pytest.mark.parametrize(("options", "error"), BAD_VALUES[:6], ids=lambda v: repr(v))
def test_bad_option_values_are_rejected_by_afetch_too(
    server: TestServer, options: dict[str, Any], error: type[Exception]
) -> None:
    import asyncio

    df = users_frame([1, 2])
    with pytest.raises(error):
        asyncio.run(df.aapi.afetch(server.url + "/users/{user_id}", **options))
    assert server.count() == 0


@pytest.mark.parametrize("url", [123, None, b"http://x/"])
def test_url_of_the_wrong_type(server: TestServer, url: object) -> None:
    with pytest.raises(TypeError):
        users_frame([1]).aapi.fetch(url)
    assert server.count() == 0


@pytest.mark.parametrize("bad", [{"attempts": -1}, {"backoff": -0.1}, {"max_wait": -1}])
def test_retry_rejects_bad_values(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        pandas_async.Retry(**bad)


def test_missing_value_in_url_column_is_rejected_before_sending(server: TestServer) -> None:
    df = pd.DataFrame({"user_id": [1, None, 3]}, index=["a", "b", "c"])
    with pytest.raises(ValueError, match="user_id"):
        df.aapi.fetch(server.url + "/users/{user_id}")
    assert server.count() == 0


def test_bad_input_in_a_late_row_sends_nothing(server: TestServer) -> None:
    # The check runs for every row before the first request, not lazily per row.
    df = pd.DataFrame({"link": [f"{server.url}/users/1"] * 3 + [None]})
    with pytest.raises(ValueError):
        df.aapi.fetch("link")
    assert server.count() == 0


def test_accessor_is_registered_on_frames_and_series() -> None:
    assert hasattr(pd.DataFrame({"a": [1]}), "aapi")
    assert hasattr(pd.Series([1]), "aapi")


def test_what_a_custom_paginator_sees_has_no_secret_in_its_repr(server: TestServer) -> None:
    seen: list[str] = []

    class OnePage(pandas_async.Paginator):
        def next_request(self, spec: Any, page: Any) -> None:
            seen.append(repr(spec))
            return None

    df = pd.DataFrame({"key": [unique()]})
    df.aapi.fetch(
        server.url + "/pages/{key}?api_key=k3y-s3cr3t-QUERY",
        params={"token": "t0k3n-s3cr3t-QUERY"},
        headers={"Authorization": "Bearer-s3cr3t-AUTH", "X-Api-Key": "h3ad3r-s3cr3t-KEY"},
        paginate=OnePage(),
    )
    (text,) = seen
    assert "/pages/" in text
    for secret in SECRETS:
        assert secret not in text
