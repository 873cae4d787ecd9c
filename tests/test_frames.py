"""DESIGN.md sections 1 and 4: answers turned into columns or rows, lined up with the input."""

from __future__ import annotations

import asyncio
import copy

import numpy as np
import pandas as pd
import pytest

import pandas_async  # noqa: F401  (registers the accessors)
from tests.helpers import OUTCOME_COLUMNS, users_frame
from tests.server import TestServer

USER_COLUMNS = ["id", "name", "email", "address.city", "address.geo.lat", "address.geo.lng"]

# -- columns --------------------------------------------------------------------------------


def test_object_answers_become_flattened_columns(server: TestServer) -> None:
    df = users_frame([1, 2])
    out = df.aapi.fetch(server.url + "/users/{user_id}")
    assert list(out.columns) == ["user_id", *USER_COLUMNS]
    assert out["address.city"].tolist() == ["City 1", "City 2"]
    assert out["address.geo.lat"].tolist() == [1.5, 2.5]
    assert out["id"].tolist() == [1, 2]
    assert not any(c in out.columns for c in OUTCOME_COLUMNS)  # only with errors="collect"


def test_how_columns_explicit(server: TestServer) -> None:
    out = users_frame([3]).aapi.fetch(server.url + "/users/{user_id}", how="columns")
    assert out["address.geo.lng"].tolist() == [-3.25]


def test_sep(server: TestServer) -> None:
    out = users_frame([1]).aapi.fetch(server.url + "/users/{user_id}", sep="_")
    assert "address_geo_lat" in out.columns
    assert "address.geo.lat" not in out.columns


def test_max_level(server: TestServer) -> None:
    out = users_frame([1]).aapi.fetch(server.url + "/users/{user_id}", max_level=0)
    assert "address.city" not in out.columns
    assert out["address"].iloc[0] == {"city": "City 1", "geo": {"lat": 1.5, "lng": -1.25}}
    out1 = users_frame([1]).aapi.fetch(server.url + "/users/{user_id}", max_level=1)
    assert "address.city" in out1.columns
    assert out1["address.geo"].iloc[0] == {"lat": 1.5, "lng": -1.25}


def test_prefix_prefixes_every_new_column(server: TestServer) -> None:
    out = users_frame([1]).aapi.fetch(server.url + "/users/{user_id}", prefix="u_")
    assert list(out.columns) == ["user_id", *(f"u_{c}" for c in USER_COLUMNS)]


def test_collision_with_an_input_column_gets_the_response_suffix(server: TestServer) -> None:
    df = pd.DataFrame({"id": [1, 2], "name": ["mine 1", "mine 2"]})
    out = df.aapi.fetch(server.url + "/users/{id}")
    assert out["id"].tolist() == [1, 2]
    assert out["name"].tolist() == ["mine 1", "mine 2"]  # input values kept
    assert out["name_response"].tolist() == ["User 1", "User 2"]
    assert out["id_response"].tolist() == [1, 2]
    assert "email" in out.columns  # non-colliding keys are not renamed


def test_collision_with_an_outcome_column(server: TestServer) -> None:
    df = pd.DataFrame({"v": ["x"]})
    out = df.aapi.fetch(server.url + "/record", params={"_status": "{v}"}, errors="collect")
    assert out["_status"].tolist() == [200]
    assert out["_status_response"].tolist() == ["x"]


def test_collision_after_prefix(server: TestServer) -> None:
    df = pd.DataFrame({"user_id": [1], "u_name": ["mine"]})
    out = df.aapi.fetch(server.url + "/users/{user_id}", prefix="u_")
    assert out["u_name"].tolist() == ["mine"]
    assert out["u_name_response"].tolist() == ["User 1"]
    assert out["u_email"].tolist() == ["user1@example.com"]


def test_non_object_answer_in_columns_mode_goes_in_response_column(server: TestServer) -> None:
    df = pd.DataFrame({"n": [2]})
    out = df.aapi.fetch(server.url + "/list", params={"n": "{n}"}, how="columns")
    assert len(out) == 1
    assert out["response"].iloc[0] == [
        {"rank": 1, "label": "item 1"},
        {"rank": 2, "label": "item 2"},
    ]


# -- rows -----------------------------------------------------------------------------------


def test_list_answers_become_rows_repeating_the_index(server: TestServer) -> None:
    df = pd.DataFrame({"n": [2, 3], "tag": ["p", "q"]}, index=["a", "b"])
    out = df.aapi.fetch(server.url + "/list", params={"n": "{n}"})  # auto: list -> rows
    assert out.index.tolist() == ["a", "a", "b", "b", "b"]
    assert out["tag"].tolist() == ["p", "p", "q", "q", "q"]
    assert out["n"].tolist() == [2, 2, 3, 3, 3]
    assert out["rank"].tolist() == [1, 2, 1, 2, 3]
    assert out["label"].tolist() == ["item 1", "item 2", "item 1", "item 2", "item 3"]


def test_how_rows_with_object_answers_gives_one_row_each(server: TestServer) -> None:
    out = users_frame([1, 2], index=["x", "y"]).aapi.fetch(
        server.url + "/users/{user_id}", how="rows"
    )
    assert out.index.tolist() == ["x", "y"]
    assert out["name"].tolist() == ["User 1", "User 2"]


def test_auto_with_mixed_answers_gives_rows(server: TestServer) -> None:
    df = pd.DataFrame(
        {"url": [f"{server.url}/list?n=2", f"{server.url}/users/4"]}, index=["l", "u"]
    )
    out = df.aapi.fetch("url")
    assert out.index.tolist() == ["l", "l", "u"]
    assert out["rank"].tolist()[:2] == [1, 2]
    assert out["name"].tolist()[2] == "User 4"


def test_empty_list_keeps_one_row_with_missing_values(server: TestServer) -> None:
    df = pd.DataFrame(
        {"url": [f"{server.url}/list?n=2", f"{server.url}/empty-list"]}, index=["full", "empty"]
    )
    out = df.aapi.fetch("url", how="rows")
    assert out.index.tolist() == ["full", "full", "empty"]
    assert out.loc["empty", "url"] == f"{server.url}/empty-list"
    assert pd.isna(out.loc["empty", "rank"])
    assert pd.isna(out.loc["empty", "label"])


def test_record_path_and_meta(server: TestServer) -> None:
    df = pd.DataFrame({"n": [2, 1]}, index=[10, 20])
    out = df.aapi.fetch(
        server.url + "/nested-list",
        params={"n": "{n}"},
        record_path="data",
        meta=["total", ["meta", "page"]],
    )
    assert out.index.tolist() == [10, 10, 20]
    assert out["rank"].tolist() == [1, 2, 1]
    assert out["tag.color"].tolist() == ["c1", "c2", "c1"]
    assert out["total"].tolist() == [2, 2, 1]
    assert out["meta.page"].tolist() == [1, 1, 1]
    assert "data" not in out.columns


def test_record_path_as_list_with_sep_max_level_and_prefix(server: TestServer) -> None:
    df = pd.DataFrame({"n": [1]})
    out = df.aapi.fetch(
        server.url + "/nested-list",
        params={"n": "{n}"},
        how="rows",
        record_path=["data"],
        meta=[["meta", "source"]],
        sep="__",
        prefix="r_",
    )
    assert out["r_rank"].tolist() == [1]
    assert out["r_tag__color"].tolist() == ["c1"]
    assert out["r_meta__source"].tolist() == ["test"]
    out0 = df.aapi.fetch(
        server.url + "/nested-list", params={"n": "{n}"}, record_path="data", max_level=0
    )
    assert out0["tag"].tolist() == [{"color": "c1"}]


# -- parse ----------------------------------------------------------------------------------


def test_parse_text(server: TestServer) -> None:
    df = pd.DataFrame({"v": ["hello", "world"]})
    out = df.aapi.fetch(server.url + "/text", params={"value": "{v}"}, parse="text")
    assert out["response"].tolist() == ["hello", "world"]


def test_parse_bytes(server: TestServer) -> None:
    df = pd.DataFrame({"v": ["abc"]})
    out = df.aapi.fetch(server.url + "/text", params={"value": "{v}"}, parse="bytes")
    assert out["response"].tolist() == [b"abc"]


def test_parse_csv_gives_rows(server: TestServer) -> None:
    df = pd.DataFrame({"n": [2, 1]}, index=["p", "q"])
    out = df.aapi.fetch(server.url + "/csv", params={"n": "{n}"}, parse="csv")
    assert out.index.tolist() == ["p", "p", "q"]
    assert out["a"].tolist() == [1, 2, 1]
    assert out["b"].tolist() == ["x", "y", "x"]


def test_parse_callable_returning_json_like(server: TestServer) -> None:
    import httpx

    def summarise(response: httpx.Response) -> dict[str, object]:
        return {"code": response.status_code, "size": len(response.content)}

    out = users_frame([1]).aapi.fetch(server.url + "/users/{user_id}", parse=summarise)
    assert out["code"].tolist() == [200]
    assert out["size"].iloc[0] > 10


def test_parse_callable_returning_a_frame_gives_rows(server: TestServer) -> None:
    import httpx

    def frame(response: httpx.Response) -> pd.DataFrame:
        data = response.json()
        return pd.DataFrame({"part": [data["name"], data["email"]]})

    out = users_frame([1, 2], index=["a", "b"]).aapi.fetch(
        server.url + "/users/{user_id}", parse=frame
    )
    assert out.index.tolist() == ["a", "a", "b", "b"]
    assert out["part"].tolist() == ["User 1", "user1@example.com", "User 2", "user2@example.com"]


def test_invalid_json_is_a_row_error(server: TestServer) -> None:
    df = pd.DataFrame({"url": [f"{server.url}/badjson", f"{server.url}/users/1"]})
    out = df.aapi.fetch("url", errors="collect")
    assert out["_status"].tolist() == [200, 200]
    assert out["_error"].iloc[0].startswith("invalid JSON")
    assert pd.isna(out["_error"].iloc[1])
    assert out["name"].iloc[1] == "User 1"
    assert pd.isna(out["name"].iloc[0])
    assert server.count("/badjson") == 1  # a parse error is not retried


def test_parse_callable_error_is_a_row_error(server: TestServer) -> None:
    def explode(response: object) -> object:
        raise ValueError("cannot read this")

    out = users_frame([1]).aapi.fetch(
        server.url + "/users/{user_id}", parse=explode, errors="collect"
    )
    assert out["_error"].iloc[0].startswith("parse error")
    assert "cannot read this" in out["_error"].iloc[0]


# -- lining up with the input ---------------------------------------------------------------


def test_empty_frame_returns_empty_frame_without_requests(server: TestServer) -> None:
    df = pd.DataFrame({"user_id": pd.Series([], dtype="int64")})
    out = df.aapi.fetch(server.url + "/users/{user_id}")
    assert isinstance(out, pd.DataFrame)
    assert len(out) == 0
    assert "user_id" in out.columns
    assert out is not df
    assert server.count() == 0


def test_string_index_with_duplicates_keeps_labels_and_order(server: TestServer) -> None:
    # Answers come back in reverse order (the first row is the slowest): the result must not.
    df = pd.DataFrame(
        {"delay": [0.3, 0.2, 0.1, 0.0], "id": [1, 2, 3, 4]}, index=["z", "a", "z", "m"]
    )
    out = df.aapi.fetch(server.url + "/slow", params={"delay": "{delay}", "id": "{id}"})
    assert out.index.tolist() == ["z", "a", "z", "m"]
    assert out["id"].tolist() == [1, 2, 3, 4]
    assert out["id_response"].tolist() == ["1", "2", "3", "4"]
    assert out["delay_response"].tolist() == [0.3, 0.2, 0.1, 0.0]


def test_unsorted_integer_index_and_multiindex(server: TestServer) -> None:
    df = users_frame([3, 1, 2], index=[30, 10, 20])
    out = df.aapi.fetch(server.url + "/users/{user_id}")
    assert out.index.tolist() == [30, 10, 20]
    assert out["name"].tolist() == ["User 3", "User 1", "User 2"]

    mi = pd.MultiIndex.from_tuples([("b", 2), ("a", 1)], names=["k", "n"])
    out_mi = users_frame([5, 6], index=mi).aapi.fetch(server.url + "/users/{user_id}")
    assert out_mi.index.equals(mi)
    assert out_mi["name"].tolist() == ["User 5", "User 6"]


def test_input_columns_keep_names_dtypes_and_values(server: TestServer) -> None:
    df = pd.DataFrame(
        {
            "user_id": [1, 2],
            "when": pd.to_datetime(["2024-01-01", "2024-02-01"]),
            "kind": pd.Categorical(["x", "y"]),
            "score": pd.array([1, None], dtype="Int64"),
        },
        index=pd.Index(["r1", "r2"], name="row"),
    )
    out = df.aapi.fetch(server.url + "/users/{user_id}")
    pd.testing.assert_frame_equal(out[df.columns], df)
    assert out.index.name == "row"


def test_input_is_never_mutated(server: TestServer) -> None:
    df = pd.DataFrame(
        {
            "user_id": [1, 2, 2],
            "name": ["a", "b", "c"],
            "nested": [{"k": 1}, {"k": 2}, {"k": 3}],
        },
        index=["x", "y", "y"],
    )
    before = copy.deepcopy(df)
    out = df.aapi.fetch(
        server.url + "/users/{user_id}",
        params=lambda row: {"n": row["name"]},
        headers={"X-Name": "{name}"},
        prefix="p_",
        errors="collect",
    )
    pd.testing.assert_frame_equal(df, before)
    assert df.attrs == before.attrs
    assert out is not df
    # The result shares no mutable list/dict cells with the input either way round.
    out.loc["x", "p_name"] = "changed"
    pd.testing.assert_frame_equal(df, before)

    rows_out = df.aapi.fetch(server.url + "/list", params={"n": "{user_id}"})
    pd.testing.assert_frame_equal(df, before)
    assert len(rows_out) == 5


def test_rows_mode_preserves_input_dtypes(server: TestServer) -> None:
    df = pd.DataFrame({"n": np.array([1, 2], dtype="int32"), "tag": ["p", "q"]})
    out = df.aapi.fetch(server.url + "/list", params={"n": "{n}"})
    assert out["n"].dtype == np.dtype("int32")
    assert out["n"].tolist() == [1, 2, 2]


# -- Series ---------------------------------------------------------------------------------


def test_series_fetch_keeps_the_series_as_a_column(server: TestServer) -> None:
    s = pd.Series([f"{server.url}/users/1", f"{server.url}/users/2"], index=["a", "b"], name="link")
    out = s.aapi.fetch()
    assert isinstance(out, pd.DataFrame)
    assert out.index.tolist() == ["a", "b"]
    assert out["link"].tolist() == s.tolist()
    assert out["name"].tolist() == ["User 1", "User 2"]
    assert server.count("/users/") == 2


def test_unnamed_series_column_is_called_url(server: TestServer) -> None:
    s = pd.Series([f"{server.url}/users/3"])
    out = s.aapi.fetch(errors="collect", prefix="r_")
    assert out["url"].tolist() == s.tolist()
    assert out["r_name"].tolist() == ["User 3"]
    assert out["_status"].tolist() == [200]


def test_series_afetch(server: TestServer) -> None:
    s = pd.Series([f"{server.url}/list?n=2", f"{server.url}/users/9"], name="u")
    out = asyncio.run(s.aapi.afetch())
    assert out.index.tolist() == [0, 0, 1]
    assert out["u"].tolist() == [s[0], s[0], s[1]]


@pytest.mark.parametrize("how", ["columns", "rows", "auto"])
def test_result_is_a_new_frame_each_time(server: TestServer, how: str) -> None:
    df = users_frame([1])
    a = df.aapi.fetch(server.url + "/users/{user_id}", how=how)
    b = df.aapi.fetch(server.url + "/users/{user_id}", how=how)
    assert a is not b
    pd.testing.assert_frame_equal(a, b)
