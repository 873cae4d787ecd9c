"""Issue 16: the fast flattener gives exactly the frame ``pandas.json_normalize`` gives.

Property-style: a seeded generator makes many sets of records (alike answers, answers that differ
in keys, in key order, in which values are objects, empty objects, tricky key names, every JSON
value type, big integers, NaN, lists), and each set is flattened both ways, with several ``sep``
and ``max_level`` values; frames must be equal, dtypes and column order included.
(``hypothesis`` is not a dependency; the table of cases is generated here, the same every run.)
"""

from __future__ import annotations

import copy
import datetime as dt
import math
import random
from collections import OrderedDict
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pandas_async import _flatten
from pandas_async._flatten import _alike_columns, normalize_records
from pandas_async._frames import assemble
from pandas_async._outcome import Outcome

KEYS = ["id", "name", "a", "b", "a.b", "", ".", ".x", "x_y", "é", "value", "2"]
SEPS = [".", "_", "__"]


def _leaf(rng: random.Random) -> Any:
    kind = rng.randrange(13)
    return [
        lambda: rng.randrange(-5, 1000),
        lambda: rng.random() * 100,
        lambda: None,
        lambda: rng.random() < 0.5,
        lambda: f"s{rng.randrange(50)}",
        lambda: [rng.randrange(9), "t"],
        lambda: [],
        lambda: float("nan"),
        lambda: 2**70 + rng.randrange(9),  # beyond 64 bits: kept as a Python int (object)
        lambda: "2024-01-0" + str(rng.randrange(1, 9)),
        lambda: float(rng.randrange(9)),  # whole floats mixed with ints
        lambda: [{"k": 1}],  # a list of objects stays one value
        lambda: "",
    ][kind]()


def _template(rng: random.Random, depth: int) -> dict[str, Any]:
    """A shape: key -> leaf kind or a nested template."""
    keys = rng.sample(KEYS, rng.randrange(0 if depth else 1, 5))
    return {
        k: (_template(rng, depth + 1) if depth < 3 and rng.random() < 0.3 else rng.randrange(13))
        for k in keys
    }


def _fill(rng: random.Random, template: dict[str, Any], kinds_fixed: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, kind in template.items():
        if isinstance(kind, dict):
            out[key] = _fill(rng, kind, kinds_fixed)
        elif kinds_fixed:
            out[key] = _leaf_of_kind(rng, kind)
        else:
            out[key] = _leaf(rng)
    return out


def _leaf_of_kind(rng: random.Random, kind: int) -> Any:
    for _ in range(100):
        value = _leaf(rng)
        if _kind_of(value) == kind % 6:
            return value
    return value


def _kind_of(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return 1
    if isinstance(value, float):
        return 2
    if isinstance(value, str):
        return 3
    if isinstance(value, list):
        return 4
    return 5


def _mutate(rng: random.Random, record: dict[str, Any]) -> dict[str, Any]:
    """Make one record differ: drop a key, add one, turn an object into null or back, reorder."""
    record = copy.deepcopy(record)
    choice = rng.randrange(5)
    if choice == 0 and record:
        record.pop(rng.choice(list(record)))
    elif choice == 1:
        record[rng.choice(KEYS)] = _leaf(rng)
    elif choice == 2 and record:
        key = rng.choice(list(record))
        record[key] = None if isinstance(record[key], dict) else {"inner": _leaf(rng)}
    elif choice == 3:
        items = list(record.items())
        rng.shuffle(items)
        record = dict(items)
    else:
        record["n"] = {}
    return record


def _case(seed: int) -> tuple[list[dict[str, Any]], str]:
    rng = random.Random(seed)
    template = _template(rng, 0)
    n = rng.choice([1, 2, 3, 7, 40])
    kinds_fixed = rng.random() < 0.5
    records = [_fill(rng, template, kinds_fixed) for _ in range(n)]
    if rng.random() < 0.4:
        for _ in range(rng.randrange(1, 4)):
            i = rng.randrange(n)
            records[i] = _mutate(rng, records[i])
    return records, rng.choice(SEPS)


def _assert_same(records: list[dict[str, Any]], sep: str, max_level: int | None = None) -> None:
    expected = pd.json_normalize(copy.deepcopy(records), sep=sep, max_level=max_level)
    got = normalize_records(records, sep=sep, max_level=max_level)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert list(got.columns) == list(expected.columns)
    assert got.dtypes.tolist() == expected.dtypes.tolist()


@pytest.mark.parametrize("block", range(10))
def test_generated_shapes_flatten_as_json_normalize(block: int) -> None:
    alike = 0
    for seed in range(block * 60, block * 60 + 60):
        records, sep = _case(seed)
        before = copy.deepcopy(records)
        _assert_same(records, sep)
        assert _equal(records, before), "the answers must not be changed"
        alike += _alike_columns(records, sep) is not None
    assert alike >= 10  # the fast path is exercised, not only the general one


def test_without_pandas_converter_rows_give_the_same_frames(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """If pandas moves the converter DataFrame(records) uses, rows of tuples are read instead."""
    monkeypatch.setattr(_flatten, "_convert", None)
    for seed in range(120):
        records, sep = _case(seed)
        _assert_same(records, sep)


@pytest.mark.parametrize("max_level", [0, 1, 2])
def test_max_level_is_json_normalize(max_level: int) -> None:
    for seed in range(40):
        records, sep = _case(seed)
        _assert_same(records, sep, max_level)


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b) and type(a) is type(b)


@pytest.mark.parametrize(
    "records",
    [
        [{"a": 1}, {"a": 2.5}],  # int and float: float64
        [{"a": 1}, {"a": None}],  # a null number: float64 with NaN
        [{"a": True}, {"a": None}],  # object
        [{"a": "x"}, {"a": None}],  # pandas 3 string dtype, NaN
        [{"a": None}, {"a": None}],  # all null: object
        [{"a": {"b": 1}}, {"a": {"b": 2}}],
        [{"a": {"b": 1}}, {"a": None}],  # object in one answer, null in the other
        [{"a": {"b": 1}}, {"b": 2}],  # different keys: NaN where missing
        [{"a": {"b": 1}, "c": 2}, {"c": 3, "a": {"b": 4}}],  # same keys, another order
        [{"a.b": 1, "a": {"b": 2}}] * 2,  # a nested name repeats a plain one: the nested wins
        [{"": {"x": 1}, "y": {"": 2}}] * 3,  # empty key names
        [{"a": {}}, {"a": {}}],  # an empty object adds no column
        [{"a": {}, "b": 1}, {"a": {}, "b": 2}],
        [{}, {}],  # no keys at all: rows without columns
        [{"a": [1, 2]}, {"a": [3]}],  # lists stay values
        [{"t": "2024-01-01"}, {"t": "2024-01-02"}],  # date-like text stays text
        [{"i": 2**70}, {"i": 1}],  # beyond 64 bits
        [{"a": 1, "b": {"c": {"d": {"e": [1]}}}}] * 5,
        # what a parse= callable may return besides JSON values
        [{"t": dt.datetime(2024, 1, 1)}, {"t": None}],
        [{"t": pd.Timestamp("2024-01-01", tz="UTC")}] * 2,
        [{"d": dt.date(2024, 1, 1), "x": Decimal("1.5"), "b": b"x"}] * 2,
        [{"td": dt.timedelta(1)}, {"td": pd.NaT}],
        [{"v": 1}, {"v": True}],  # int and bool: object
        [{"v": pd.NA}, {"v": 1}],
    ],
)
def test_named_shapes(records: list[dict[str, Any]]) -> None:
    for sep in SEPS:
        _assert_same(records, sep)


def test_dict_subclasses_and_non_string_keys_take_the_general_path() -> None:
    ordered = [OrderedDict([("b", 1), ("a", OrderedDict(c=2))]), OrderedDict(b=3, a={"c": 4})]
    _assert_same(ordered, ".")  # type: ignore[arg-type]
    assert _alike_columns(ordered, ".") is None  # type: ignore[arg-type]
    keyed = [{1: "x", "n": {2: 3}}, {1: "y", "n": {2: 4}}]
    _assert_same(keyed, ".")  # type: ignore[arg-type]


def test_alike_answers_take_the_fast_path() -> None:
    records = [{"id": i, "user": {"name": f"n{i}", "geo": {"lat": i / 2}}} for i in range(50)]
    found = _alike_columns(records, ".")
    assert found is not None
    assert found[0] == ["id", "user.name", "user.geo.lat"]


def test_assemble_columns_and_rows_match_json_normalize() -> None:
    rng = np.random.default_rng(5)
    answers = [
        {"id": int(i), "score": float(rng.random()), "tags": ["x"], "geo": {"lat": 1.0 * i}}
        for i in range(30)
    ]
    frame = pd.DataFrame({"k": range(30)}, index=[f"r{i}" for i in range(30)])
    outcomes = [Outcome(a, 200, None, None, 0.0, 1) for a in answers]
    got = assemble(frame, outcomes).frame
    expected = frame.join(pd.json_normalize(answers).set_axis(frame.index))
    pd.testing.assert_frame_equal(got[expected.columns], expected, check_exact=True)
    lists = [Outcome([a, a], 200, None, None, 0.0, 1) for a in answers]  # rows mode
    rows = assemble(frame, lists).frame
    flat = pd.json_normalize([a for a in answers for _ in range(2)])
    pd.testing.assert_frame_equal(
        rows[list(flat.columns)].reset_index(drop=True), flat, check_exact=True
    )
