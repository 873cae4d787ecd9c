"""``schema=``: only the named new columns, cast to their types; a misfit fails its row only."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest

import pandas_async
from tests.server import TestServer


def _frame(values: list[object]) -> pd.DataFrame:
    return pd.DataFrame({"v": values}, index=[f"r{i}" for i in range(len(values))])


def test_only_schema_columns_are_added_cast_and_in_order(server: TestServer) -> None:
    frame = _frame(["1.5", "2", "3.25"])
    out = frame.aapi.fetch(
        f"{server.url}/record", params={"price": "{v}", "name": "n{v}", "extra": "x"},
        schema={"price": "float64", "name": "string", "missing": "Int64"},
    )  # fmt: skip
    assert list(out.columns) == ["v", "price", "name", "missing"]
    assert out["price"].dtype == "float64"
    assert out["price"].tolist() == [1.5, 2.0, 3.25]
    assert out["name"].dtype == "string"
    assert out["missing"].dtype == "Int64" and out["missing"].isna().all()
    assert out.index.tolist() == frame.index.tolist()


def test_a_value_that_does_not_fit_fails_that_row_naming_the_column(server: TestServer) -> None:
    frame = _frame(["1", "abc", "3"])
    url = f"{server.url}/record"
    with pytest.raises(pandas_async.FetchError) as info:
        frame.aapi.fetch(url, params={"n": "{v}"}, schema={"n": "Int64"})
    err = info.value
    assert "'n'" in str(err) and "1 of 3 rows failed" in str(err)
    collected = err.frame
    assert collected.loc["r1", "_error"].startswith("schema: column 'n' value 'abc'")
    assert collected["n"].dtype == "Int64"
    assert collected["n"].tolist()[0] == 1 and pd.isna(collected.loc["r1", "n"])
    assert collected.loc["r2", "n"] == 3
    assert collected["_error"].isna().sum() == 2


def test_int_column_refuses_a_fraction_instead_of_truncating(server: TestServer) -> None:
    frame = pd.DataFrame({"v": [1, 2]})
    out = frame.aapi.fetch(
        f"{server.url}/echo", method="POST", json={"x": "{v}"},
        schema={"json.x": "int64"}, errors="collect",
    )  # fmt: skip
    assert out["json.x"].dtype == "Int64"  # numpy ints become nullable
    assert out["json.x"].tolist() == [1, 2]
    frac = pd.DataFrame({"v": [1.0, 1.5]})
    out = frac.aapi.fetch(
        f"{server.url}/echo", method="POST", json={"x": "{v}"},
        schema={"json.x": "int64"}, errors="collect",
    )  # fmt: skip
    assert out["_error"].isna().tolist() == [True, False]
    assert "does not fit Int64" in out["_error"].iloc[1]


def test_pyarrow_schema_keeps_exact_types(server: TestServer) -> None:
    frame = pd.DataFrame({"v": [1, 2, 3]})
    schema = pa.schema([("json.x", pa.int32()), ("json.t", pa.string())])
    out = frame.aapi.fetch(
        f"{server.url}/echo", method="POST", json={"x": "{v}", "t": "t{v}"}, schema=schema
    )
    assert list(out.columns) == ["v", "json.x", "json.t"]
    assert out["json.x"].dtype == pd.ArrowDtype(pa.int32())
    assert out["json.x"].tolist() == [1, 2, 3]
    table = pa.Table.from_pandas(out[["json.x", "json.t"]], preserve_index=False)
    assert table.schema.field("json.x").type == pa.int32()


def test_rows_mode_misfit_fails_the_whole_input_row(server: TestServer) -> None:
    frame = pd.DataFrame({"n": [2, 3]})
    out = frame.aapi.fetch(
        f"{server.url}/list", params={"n": "{n}"}, schema={"rank": "Int64", "label": "float64"},
        errors="collect",
    )  # fmt: skip
    # every label is text: each input row fails once, keeping one empty row
    assert len(out) == 2
    assert out["_error"].str.contains("column 'label'").all()
    ok = frame.aapi.fetch(f"{server.url}/list", params={"n": "{n}"}, schema={"rank": "Int64"})
    assert ok["rank"].tolist() == [1, 2, 1, 2, 3]
    assert ok.index.tolist() == [0, 0, 1, 1, 1]


@pytest.mark.parametrize(
    ("schema", "error", "match"),
    [
        (["a"], TypeError, "schema= expects a dict"),
        ({"a": "no-such-type"}, TypeError, "column 'a'"),
        ({1: "int64"}, TypeError, "names must be strings"),
        ({}, ValueError, "names no column"),
    ],
)
def test_bad_schema_fails_before_any_request(
    server: TestServer, schema: object, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        _frame(["1"]).aapi.fetch(f"{server.url}/record", schema=schema)
    assert server.requests == []
