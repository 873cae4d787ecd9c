"""df.aapi.preview(url, **options): the requests fetch would send, secrets masked, none sent."""

from __future__ import annotations

import pandas as pd
import pytest

import pandas_async
from tests.helpers import users_frame
from tests.server import TestServer


def test_shows_the_first_rows_requests_indexed_like_the_input(server: TestServer) -> None:
    df = pd.DataFrame(
        {"user_id": [1, 2, 3, 4, 5, 6, 7], "q": list("abcdefg")},
        index=[f"r{i}" for i in range(7)],
    )
    shown = df.aapi.preview(f"{server.url}/users/{{user_id}}", params={"q": "{q}", "v": 2})
    assert list(shown.columns) == ["method", "url", "params", "headers"]
    assert shown.index.tolist() == ["r0", "r1", "r2", "r3", "r4"]  # n=5 by default
    assert shown["method"].tolist() == ["GET"] * 5
    assert shown.loc["r1", "url"] == f"{server.url}/users/2"
    assert shown.loc["r2", "params"] == {"q": "c", "v": 2}
    assert shown["headers"].isna().all()
    assert server.count() == 0  # nothing was sent


def test_sends_nothing_and_records_no_report(server: TestServer) -> None:
    users_frame([1]).aapi.fetch(f"{server.url}/users/{{user_id}}")
    before = pandas_async.last_report()
    server.reset()
    users_frame([1, 2]).aapi.preview(f"{server.url}/users/{{user_id}}", concurrency=3)
    assert server.count() == 0
    assert pandas_async.last_report() is before


def test_n_rows_and_more_than_the_frame(server: TestServer) -> None:
    df = users_frame([1, 2, 3], index=["a", "b", "c"])
    url = f"{server.url}/users/{{user_id}}"
    assert df.aapi.preview(url, n=2).index.tolist() == ["a", "b"]
    assert df.aapi.preview(url, n=10).index.tolist() == ["a", "b", "c"]
    assert df.aapi.preview(url, n=0).empty
    with pytest.raises(ValueError, match="n="):
        df.aapi.preview(url, n=-1)
    with pytest.raises(TypeError, match="n="):
        df.aapi.preview(url, n="5")  # type: ignore[arg-type]


def test_secrets_are_masked_in_url_params_headers_and_bodies(server: TestServer) -> None:
    df = pd.DataFrame({"user_id": [1], "token": ["tok-row-secret"]})
    shown = df.aapi.preview(
        f"{server.url}/users/{{user_id}}?api_key=urlsecret1&page=2",
        method="POST",
        params={"access_token": "{token}", "q": "x"},
        headers={"Authorization": "Bearer hunter22", "X-Api-Key": "keysecret", "X-Trace": "t1"},
        json={"user": "{user_id}", "password": "pw-secret", "nested": {"client_secret": "cs"}},
    )
    row = shown.iloc[0]
    assert row["method"] == "POST"
    assert row["url"] == f"{server.url}/users/1?api_key=***&page=2"
    assert row["params"] == {"access_token": "***", "q": "x"}
    assert row["headers"] == {"Authorization": "***", "X-Api-Key": "***", "X-Trace": "t1"}
    assert row["json"] == {"user": 1, "password": "***", "nested": {"client_secret": "***"}}
    text = shown.to_string() + repr(shown.to_dict())
    for secret in ("urlsecret1", "tok-row-secret", "hunter22", "keysecret", "pw-secret"):
        assert secret not in text


def test_data_column_only_when_data_is_given(server: TestServer) -> None:
    df = pd.DataFrame({"name": ["ada"]})
    url = f"{server.url}/echo"
    shown = df.aapi.preview(url, method="POST", data={"name": "{name}", "session_id": "s3cr3t"})
    assert list(shown.columns) == ["method", "url", "params", "headers", "data"]
    assert shown.iloc[0]["data"] == {"name": "ada", "session_id": "***"}
    assert "json" not in df.aapi.preview(url).columns


def test_params_given_as_pairs_by_a_callable_are_masked(server: TestServer) -> None:
    df = pd.DataFrame({"k": ["v"]})
    shown = df.aapi.preview(
        f"{server.url}/echo", params=lambda row: [("q", row["k"]), ("apikey", "pairsecret")]
    )
    assert shown.iloc[0]["params"] == [("q", "v"), ("apikey", "***")]


def test_same_validation_errors_as_fetch(server: TestServer) -> None:
    df = users_frame([1, None])  # type: ignore[list-item]
    url = f"{server.url}/users/{{user_id}}"
    with pytest.raises(KeyError, match="nope"):
        df.aapi.preview(f"{server.url}/users/{{nope}}")
    with pytest.raises(ValueError, match="missing value"):
        df.aapi.preview(url, n=1)  # the missing value is past the first row: still refused
    with pytest.raises(ValueError, match="concurrency"):
        users_frame([1]).aapi.preview(url, concurrency=0)
    with pytest.raises(TypeError, match="preview\\(\\) got an unexpected option 'retry'"):
        users_frame([1]).aapi.preview(url, retry=3)  # type: ignore[call-arg]
    assert server.count() == 0


def test_callable_url_and_column_url(server: TestServer) -> None:
    df = pd.DataFrame({"link": [f"{server.url}/users/7"], "id": [9]}, index=["x"])
    assert df.aapi.preview("link").loc["x", "url"] == f"{server.url}/users/7"
    shown = df.aapi.preview(lambda row: f"{server.url}/users/{row['id']}/{row.name}")
    assert shown.loc["x", "url"] == f"{server.url}/users/9/x"


def test_series_preview(server: TestServer) -> None:
    urls = pd.Series(
        [f"{server.url}/users/1?token=abcd1234", f"{server.url}/users/2"], index=[10, 20]
    )
    shown = urls.aapi.preview(n=1, headers={"X-A": "1"})
    assert shown.index.tolist() == [10]
    assert shown.loc[10, "url"] == f"{server.url}/users/1?token=***"
    assert shown.loc[10, "headers"] == {"X-A": "1"}
    assert server.count() == 0


def test_paginate_shows_the_first_page_request(server: TestServer) -> None:
    df = pd.DataFrame({"key": ["k1"]})
    shown = df.aapi.preview(
        f"{server.url}/pages/{{key}}",
        params={"q": "x"},
        paginate=pandas_async.PageNumber("page", size_param="size", size=2),
    )
    assert shown.iloc[0]["url"] == f"{server.url}/pages/k1"
    assert shown.iloc[0]["params"] == {"q": "x", "page": 1, "size": 2}  # as the paginator sends
    assert server.count() == 0
