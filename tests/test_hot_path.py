"""The per-request and per-page path: no httpx parsing or models where none is asked for, and
the shortcuts taken instead encode exactly as httpx would (issue 16)."""

from __future__ import annotations

from typing import Any

import httpx
import pandas as pd
import pytest

import pandas_async
from pandas_async._frames import make_parser
from pandas_async._outcome import Answer
from pandas_async._requests import url_with_params
from pandas_async._transport import _CLEAN_URL
from tests.server import TestServer

PARAMS: list[dict[str, Any]] = [
    {"page": 1},
    {"q": "a b&c=d/é", "n": 2.5, "flag": True, "off": False, "none": None},
    {"tag": ["x", "y z"], "k": ("1", 2)},
    {"sym": "BTC-USD", "from": "2024-01-01T00:00:00+00:00", "plus": "+", "pct": "100%"},
    {"emoji": "🙂", "quote": "\"'", "hash": "#frag?"},
]


@pytest.mark.parametrize("params", PARAMS)
def test_plain_params_encode_exactly_as_httpx_does(params: dict[str, Any]) -> None:
    url = "https://api.example.com/v1/items/a%2Fb"
    assert url_with_params(url, params) == str(httpx.URL(url).copy_merge_params(params))


@pytest.mark.parametrize(
    ("url", "params"),
    [
        ("https://h/x?a=1", {"b": 2}),  # a query already there: httpx merges
        ("https://h/x#f", {"b": 2}),
        ("https://h/x", {"b": object()}),
        ("https://h/x", {"b": []}),
        ("https://h/x", [("b", 1)]),
    ],
)
def test_anything_else_is_left_to_httpx(url: str, params: Any) -> None:
    assert url_with_params(url, params) is None


def test_page_number_pages_build_no_httpx_url_or_response(
    server: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[str] = []
    real_url, real_response = httpx.URL.__init__, httpx.Response.__init__

    def url_init(self: httpx.URL, *args: Any, **kwargs: Any) -> None:
        built.append("URL")
        real_url(self, *args, **kwargs)

    def response_init(self: httpx.Response, *args: Any, **kwargs: Any) -> None:
        built.append("Response")
        real_response(self, *args, **kwargs)

    monkeypatch.setattr(httpx.URL, "__init__", url_init)
    monkeypatch.setattr(httpx.Response, "__init__", response_init)
    df = pd.DataFrame({"key": ["a", "b", "c"]})
    out = df.aapi.fetch(
        server.url + "/pages/{key}",
        params={"n": 7},
        paginate=pandas_async.PageNumber("page", size_param="size", size=2),
    )
    assert len(out) == 21
    assert len(server.requests) == 12  # 4 pages a row
    assert built == []


def test_a_custom_paginator_still_gets_the_response(server: TestServer) -> None:
    seen: list[int] = []

    class Headers(pandas_async.Paginator):
        def next_request(self, spec: Any, page: Any) -> Any:
            seen.append(page.response.status_code)
            return None

    df = pd.DataFrame({"key": ["a"]})
    df.aapi.fetch(server.url + "/pages/{key}", paginate=Headers())
    assert seen == [200]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"id": 12345678901234567890123}', {"id": 12345678901234567890123}),  # kept exact
        (b'[18446744073709551616, "x"]', [18446744073709551616, "x"]),  # 2**64, 20 digits
        (b'{"a": 123456789012345678}', {"a": 123456789012345678}),  # 18 digits: orjson's own
        (b'{"a": "12345.6789012345678", "b": 1.5}', {"a": "12345.6789012345678", "b": 1.5}),
        (b'{"n": -9999999999999999999}', {"n": -9999999999999999999}),  # 19 digits, negative
    ],
)
def test_long_integers_stay_exact(body: bytes, expected: Any) -> None:
    value = make_parser("json")(Answer(200, "OK", {}, body, "GET", "http://127.0.0.1/"))
    assert value == expected
    assert [type(v) for v in _leaves(value)] == [type(v) for v in _leaves(expected)]


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


@pytest.mark.parametrize(
    ("url", "clean"),
    [
        ("http://127.0.0.1:8080/users/12345", True),
        ("https://h/a%2Fb?x=1&y=%C3%A9#f", True),
        ("https://u:p@h/[v6]/!$&'()*+,;=~._-", True),
        ("https://h/a b", False),  # a space needs encoding: httpx does it
        ("https://h/a%2", False),  # a broken escape
        ("https://h/a%zz", False),
        ("https://h/é", False),
        ("https://h/" + "a" * 5000 + '"', False),  # a long URL failing at its end
        ("ftp://h/a", False),
    ],
)
def test_clean_url_shortcut(url: str, clean: bool) -> None:
    assert (_CLEAN_URL.match(url) is not None) is clean
