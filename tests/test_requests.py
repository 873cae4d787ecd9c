"""DESIGN.md section 2: how each row's request is built (url, method, params, headers, json,
data, client), checked by what the real server received."""

from __future__ import annotations

import asyncio
import json

import httpx
import pandas as pd
import pytest

import pandas_async  # noqa: F401  (registers the accessors)
from tests.helpers import users_frame
from tests.server import TestServer

# -- url ------------------------------------------------------------------------------------


def test_url_template_fills_each_row(server: TestServer) -> None:
    df = users_frame([1, 2, 3])
    out = df.aapi.fetch(server.url + "/users/{user_id}")
    assert out["name"].tolist() == ["User 1", "User 2", "User 3"]
    assert sorted(r.path for r in server.requests) == ["/users/1", "/users/2", "/users/3"]
    assert all(r.method == "GET" for r in server.requests)


def test_url_from_a_column_of_urls(server: TestServer) -> None:
    df = pd.DataFrame({"link": [f"{server.url}/users/7", f"{server.url}/users/8"]})
    out = df.aapi.fetch("link")
    assert out["name"].tolist() == ["User 7", "User 8"]
    assert out["link"].tolist() == df["link"].tolist()
    assert sorted(r.path for r in server.requests) == ["/users/7", "/users/8"]


def test_url_from_a_callable_receiving_the_row(server: TestServer) -> None:
    df = pd.DataFrame({"user_id": [4, 5]}, index=["x", "y"])
    seen_labels: list[object] = []

    def build(row: pd.Series) -> str:
        seen_labels.append(row.name)
        return f"{server.url}/users/{row['user_id'] * 10}"

    out = df.aapi.fetch(build)
    assert out["name"].tolist() == ["User 40", "User 50"]
    assert sorted(seen_labels) == ["x", "y"]  # the row is a Series named by its index label
    assert sorted(r.path for r in server.requests) == ["/users/40", "/users/50"]


def test_url_template_with_several_columns(server: TestServer) -> None:
    df = pd.DataFrame({"a": ["one", "two"], "b": [1, 2]})
    out = df.aapi.fetch(server.url + "/echo/{a}/{b}")
    assert out["path"].tolist() == ["/echo/one/1", "/echo/two/2"]


def test_url_template_percent_encodes_values_as_one_segment(server: TestServer) -> None:
    values = ["../echo", "1?x=1", "a b/c", "#frag", "50%"]
    df = pd.DataFrame({"uid": values})
    out = df.aapi.fetch(server.url + "/users/{uid}", errors="collect", retries=0)
    records = server.requests
    assert len(records) == len(values)
    # Each value arrived whole, as the one segment after /users/, decoded back by the server.
    assert sorted(r.path for r in records) == sorted(f"/users/{v}" for v in values)
    for r in records:
        assert r.raw_path.count("/") == 2, r.raw_path  # "/" in data was encoded
        assert "?" not in r.raw_path and "#" not in r.raw_path
        assert r.query_string == ""  # "?" in data made no query string
    assert {r.raw_path for r in records} >= {"/users/..%2Fecho", "/users/%23frag", "/users/50%25"}
    assert server.count("/echo") == 0  # "../" in data did not reach another endpoint
    assert out["_status"].tolist() == [404] * len(values)


def test_url_template_dot_segments_in_data_cannot_climb_the_path(server: TestServer) -> None:
    # A value that is exactly ".." or "." must stay a segment of /echo/..., not be resolved
    # away by URL normalization (which would send the request to "/" or "/echo").
    df = pd.DataFrame({"v": ["..", "."]})
    df.aapi.fetch(server.url + "/echo/{v}/end", errors="collect", retries=0)
    paths = sorted(r.raw_path for r in server.requests)
    assert len(paths) == 2
    assert all(p.startswith("/echo/") and p.endswith("/end") for p in paths), paths
    assert all(p.count("/") == 3 for p in paths), paths


# -- method ---------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "get", "OPTIONS"])
def test_method(server: TestServer, method: str) -> None:
    df = users_frame([1, 2])
    out = df.aapi.fetch(server.url + "/echo/{user_id}", method=method)
    assert out["method"].tolist() == [method.upper()] * 2
    assert [r.method for r in server.requests] == [method.upper()] * 2


# -- params ---------------------------------------------------------------------------------


def test_params_dict_template(server: TestServer) -> None:
    df = pd.DataFrame({"page": [1, 2], "q": ["a&b=c", "x y"]})
    df.aapi.fetch(
        server.url + "/echo",
        params={"page": "{page}", "label": "p-{page}", "search": "{q}", "fixed": "yes"},
    )
    queries = sorted((r.query for r in server.requests), key=lambda q: q["page"])
    assert queries == [
        {"page": "1", "label": "p-1", "search": "a&b=c", "fixed": "yes"},
        {"page": "2", "label": "p-2", "search": "x y", "fixed": "yes"},
    ]


def test_params_callable(server: TestServer) -> None:
    df = pd.DataFrame({"page": [3, 4]})
    df.aapi.fetch(server.url + "/echo", params=lambda row: {"double": int(row["page"]) * 2})
    assert sorted(r.query["double"] for r in server.requests) == ["6", "8"]


def test_params_list_of_columns(server: TestServer) -> None:
    df = pd.DataFrame({"page": [1, 2], "size": [10, 20], "other": ["not", "sent"]})
    out = df.aapi.fetch(server.url + "/echo", params=["page", "size"])
    queries = sorted((r.query for r in server.requests), key=lambda q: q["page"])
    assert queries == [{"page": "1", "size": "10"}, {"page": "2", "size": "20"}]
    assert out["query.page"].tolist() == ["1", "2"]


# -- headers --------------------------------------------------------------------------------


def test_headers_dict_template(server: TestServer) -> None:
    df = users_frame([1, 2])
    df.aapi.fetch(
        server.url + "/echo/{user_id}",
        headers={"X-User": "{user_id}", "X-Static": "static", "X-Mixed": "u{user_id}!"},
    )
    seen = sorted(
        (r.headers["x-user"], r.headers["x-static"], r.headers["x-mixed"]) for r in server.requests
    )
    assert seen == [("1", "static", "u1!"), ("2", "static", "u2!")]


def test_headers_callable(server: TestServer) -> None:
    df = users_frame([5, 6])
    df.aapi.fetch(
        server.url + "/echo/{user_id}", headers=lambda row: {"X-Twice": str(row["user_id"] * 2)}
    )
    assert sorted(r.headers["x-twice"] for r in server.requests) == ["10", "12"]


# -- json -----------------------------------------------------------------------------------


def test_json_template_keeps_types_of_exact_fields(server: TestServer) -> None:
    df = pd.DataFrame(
        {"user_id": [1, 2], "score": [1.5, 2.5], "active": [True, False], "name": ["Ann", "Bo"]}
    )
    df.aapi.fetch(
        server.url + "/echo/{user_id}",
        method="POST",
        json={
            "id": "{user_id}",
            "score": "{score}",
            "active": "{active}",
            "label": "user-{user_id}",
            "nested": {"who": "{name}", "list": ["{user_id}", "x"]},
            "constant": 7,
        },
    )
    bodies = sorted((json.loads(r.body) for r in server.requests), key=lambda b: b["id"])
    assert bodies == [
        {
            "id": 1,
            "score": 1.5,
            "active": True,
            "label": "user-1",
            "nested": {"who": "Ann", "list": [1, "x"]},
            "constant": 7,
        },
        {
            "id": 2,
            "score": 2.5,
            "active": False,
            "label": "user-2",
            "nested": {"who": "Bo", "list": [2, "x"]},
            "constant": 7,
        },
    ]
    assert all(r.headers["content-type"].startswith("application/json") for r in server.requests)


def test_json_callable(server: TestServer) -> None:
    df = pd.DataFrame({"a": [1, 2], "b": [10, 20]})
    out = df.aapi.fetch(
        server.url + "/echo",
        method="POST",
        json=lambda row: {"sum": int(row["a"] + row["b"])},
        dedupe=False,
    )
    assert sorted(json.loads(r.body)["sum"] for r in server.requests) == [11, 22]
    assert out["json.sum"].tolist() == [11, 22]


# -- data -----------------------------------------------------------------------------------


def test_form_data_template(server: TestServer) -> None:
    df = pd.DataFrame({"user_id": [1, 2], "name": ["Ann", "Bo b"]})
    df.aapi.fetch(
        server.url + "/echo/{user_id}", method="POST", data={"who": "{name}", "n": "{user_id}"}
    )
    forms = sorted((r for r in server.requests), key=lambda r: r.path)
    assert all(
        r.headers["content-type"].startswith("application/x-www-form-urlencoded") for r in forms
    )
    from urllib.parse import parse_qsl

    assert [dict(parse_qsl(r.body.decode())) for r in forms] == [
        {"who": "Ann", "n": "1"},
        {"who": "Bo b", "n": "2"},
    ]


def test_form_data_callable(server: TestServer) -> None:
    df = users_frame([3])
    out = df.aapi.fetch(
        server.url + "/echo/{user_id}", method="POST", data=lambda row: {"n": str(row["user_id"])}
    )
    assert out["form.n"].tolist() == ["3"]


# -- client ---------------------------------------------------------------------------------


def test_user_client_with_base_url_and_default_header_sync(server: TestServer) -> None:
    client = httpx.AsyncClient(base_url=server.url, headers={"X-From-Client": "configured"})
    df = users_frame([1, 2])
    out = df.aapi.fetch("/users/{user_id}", client=client)
    assert out["name"].tolist() == ["User 1", "User 2"]
    assert [r.headers.get("x-from-client") for r in server.requests] == ["configured"] * 2
    assert not client.is_closed  # the user's client is never closed by us


def test_user_client_with_afetch(server: TestServer) -> None:
    async def main() -> tuple[pd.DataFrame, bool]:
        async with httpx.AsyncClient(
            base_url=server.url, headers={"X-From-Client": "async"}
        ) as client:
            out = await users_frame([1, 2, 3]).aapi.afetch(
                "/users/{user_id}", client=client, headers={"X-Row": "{user_id}"}
            )
            still_open = not client.is_closed
            # The client stays usable after afetch returns.
            again = await client.get("/users/9")
            assert again.json()["name"] == "User 9"
            return out, still_open

    out, still_open = asyncio.run(main())
    assert still_open
    assert out["name"].tolist() == ["User 1", "User 2", "User 3"]
    user_requests = server.requests_to("/users/")
    assert [r.headers["x-from-client"] for r in user_requests] == ["async"] * 4
    assert sorted(r.headers["x-row"] for r in user_requests[:3]) == ["1", "2", "3"]


def test_redirects_are_followed_by_default(server: TestServer) -> None:
    df = users_frame([2, 3])
    out = df.aapi.fetch(server.url + "/redirect", params={"to": "/users/{user_id}"})
    assert out["name"].tolist() == ["User 2", "User 3"]
    assert server.count("/users/") == 2


def test_relative_url_without_a_client_is_refused_before_sending(server: TestServer) -> None:
    df = pd.DataFrame({"id": [1, 2]}, index=["a", "b"])
    with pytest.raises(ValueError, match=r"row 'a'.*base_url"):
        df.aapi.fetch("/users/{id}")
    assert server.requests == []


def test_a_url_column_with_unsafe_characters_is_encoded_not_rejected(server: TestServer) -> None:
    df = pd.DataFrame({"url": [server.url + "/echo/a b/ü?q=x y"]})
    out = df.aapi.fetch("url", errors="collect")
    assert out["_status"].tolist() == [200]
    (seen,) = server.requests
    assert seen.raw_path.startswith("/echo/a%20b/%C3%BC")


@pytest.mark.parametrize("own_client", [False, True])
def test_json_fields_from_pandas_columns_are_json_ready(
    server: TestServer, own_client: bool
) -> None:
    # Timestamps become ISO text and missing values null, through either sender.
    df = pd.DataFrame(
        {
            "when": pd.to_datetime(["2024-01-02 03:04:05", None]),
            "n": pd.array([1, None], dtype="Int64"),
            "x": [0.5, float("nan")],
            "k": [1, 2],
        }
    )
    body = {"when": "{when}", "n": "{n}", "x": "{x}", "k": "{k}"}

    async def main() -> None:
        async with httpx.AsyncClient() as client:
            await df.aapi.afetch(
                server.url + "/echo/{k}", method="POST", json=body,
                client=client if own_client else None,
            )  # fmt: skip

    asyncio.run(main())
    bodies = sorted((json.loads(r.body) for r in server.requests), key=lambda b: b["k"])
    assert bodies == [
        {"when": "2024-01-02T03:04:05", "n": 1, "x": 0.5, "k": 1},
        {"when": None, "n": None, "x": None, "k": 2},
    ]
