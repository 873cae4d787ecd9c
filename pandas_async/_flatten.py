"""Records -> DataFrame, as ``pandas.json_normalize(records, sep=sep)`` makes it, faster. Pure.

``json_normalize`` (no ``record_path``/``meta``/``max_level``) flattens each record on its own in
Python: every leaf costs a function call, every record two dict comprehensions. API answers are
mostly alike: the same keys in the same order, nested objects where the last answer had them. For
those, this module flattens a column at a time instead, with C-level loops (``dict.values``,
``zip``), and builds the frame from row tuples. pandas turns row tuples and dicts into columns with
the same code (``to_object_array_tuples`` / ``dicts_to_array``, then one dtype inference), so the
frame, dtypes included, is the one ``json_normalize`` returns; ``tests/test_flatten.py`` checks it
against ``json_normalize`` on generated shapes.

Records that differ in shape (a key missing here, an object in one answer and a null in another)
take the general path: each record flattened exactly as pandas' ``_simple_json_normalize`` does
(top-level plain values first, then nested keys joined with ``sep``), then ``DataFrame(records)``,
which is what ``json_normalize`` ends with. With ``max_level=`` it is ``json_normalize`` itself.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Sequence
from operator import itemgetter
from typing import Any

import numpy as np
import pandas as pd

_convert: Callable[..., list[Any]] | None
try:  # the converter DataFrame(records) runs on each column (pandas internals, since 1.x)
    _convert = importlib.import_module("pandas.core.internals.construction").convert_object_array
except (ImportError, AttributeError):  # pragma: no cover
    _convert = None

__all__ = ["normalize_records"]


def normalize_records(
    records: Sequence[dict[Any, Any]], *, sep: str = ".", max_level: int | None = None
) -> pd.DataFrame:
    """``pandas.json_normalize(list(records), sep=sep, max_level=max_level)``, for dicts."""
    if not records:
        return pd.DataFrame(index=pd.RangeIndex(0))
    if max_level is not None:  # nested_to_record's own rules: leave them to pandas
        return pd.json_normalize(list(records), sep=sep, max_level=max_level)
    alike = _alike_columns(records, sep)
    if alike is None:
        return pd.DataFrame(_flat_all(records, sep))
    names, columns = alike
    n = len(records)
    objects = [np.fromiter(column, dtype=object, count=n) for column in columns]
    if _convert is None:  # pandas moved its converter: rows, read by the same code as dicts
        return pd.DataFrame(list(zip(*objects, strict=True)), columns=names)
    return pd.DataFrame(dict(zip(names, _convert(objects, dtype=None), strict=True)), copy=False)


def _name(prefix: str, key: Any, sep: str) -> str:
    """pandas' ``_normalize_json`` key: ``prefix + sep + key``, the ``sep`` dropped at the top."""
    name = f"{prefix}{sep}{key}"
    return name.removeprefix(sep) if not prefix else name


def _alike_columns(
    records: Sequence[dict[Any, Any]], sep: str
) -> tuple[list[Any], list[list[Any]]] | None:
    """The flattened columns' names and values, when every record has the same shape: the same
    keys at every level, each value an object in all records or in none. None otherwise (the
    general path decides, record by record)."""
    if set(map(type, records)) != {dict}:  # a dict subclass: let DataFrame read it its way
        return None
    names: list[Any] = []
    columns: list[list[Any]] = []
    nested: list[tuple[str, list[Any]]] = []
    try:
        for key, column, kind in _columns(records):
            if not isinstance(key, str) or kind is None:
                return None
            if kind == "plain":  # json_normalize puts a record's plain values first
                names.append(key)
                columns.append(column)
            else:
                nested.append((_name("", key, sep), column))
        for prefix, column in nested:
            if not _nested_columns(column, prefix, sep, names, columns):
                return None
    except KeyError:  # a record lacks a key the first one has
        return None
    if not names or len(set(names)) != len(names):  # a nested name repeats a plain one
        return None
    return names, columns


def _columns(objects: Sequence[dict[Any, Any]]) -> list[tuple[Any, list[Any], str | None]]:
    """Each key of the first object with its column of values and their kind. Raises KeyError
    if another object lacks one; only objects with as many keys pass, so all have the same keys
    (in whatever order: a column's place is where the first record has it, as DataFrame does)."""
    keys = list(objects[0])
    if set(map(len, objects)) != {len(keys)}:
        raise KeyError("objects differ in keys")
    out = []
    for key in keys:
        column = list(map(itemgetter(key), objects))
        out.append((key, column, _kind(column)))
    return out


def _nested_columns(
    objects: list[dict[Any, Any]],
    prefix: str,
    sep: str,
    names: list[Any],
    out: list[list[Any]],
) -> bool:
    """Append the leaf columns of a column of alike objects, in key order (depth first)."""
    for key, column, kind in _columns(objects):  # {} everywhere: no column, as json_normalize
        if kind is None:
            return False
        name = _name(prefix, key, sep)
        if kind == "plain":
            names.append(name)
            out.append(column)
        elif not _nested_columns(column, name, sep, names, out):
            return False
    return True


def _kind(column: list[Any]) -> str | None:
    """The column's kind: "plain" (no object in it), "nested" (only plain dicts), or None
    (both, or dict subclasses, whose reading is left to the general path)."""
    types = set(map(type, column))
    if dict in types:
        return "nested" if len(types) == 1 else None
    if any(issubclass(t, dict) for t in types):
        return None
    return "plain"


def _flat_all(records: Sequence[dict[Any, Any]], sep: str) -> list[dict[Any, Any]]:
    """Each record as pandas' ``_simple_json_normalize`` flattens it (same keys, same order):
    its plain values first, then its objects' leaves, depth first; a name made twice keeps its
    first place and its last value. Names are made once per (prefix, key), not once per leaf."""
    names: dict[tuple[str, Any], str] = {}
    out: list[dict[Any, Any]] = []
    for record in records:
        nested = [(k, v) for k, v in record.items() if isinstance(v, dict)]
        if not nested:
            out.append(record if type(record) is dict else dict(record))
            continue
        flat = {k: v for k, v in record.items() if not isinstance(v, dict)}
        _flat_into(flat, nested, "", sep, names)
        out.append(flat)
    return out


def _flat_into(
    out: dict[Any, Any],
    items: Iterable[tuple[Any, Any]],
    prefix: str,
    sep: str,
    names: dict[tuple[str, Any], str],
) -> None:
    for key, value in items:
        name = names.get((prefix, key))
        if name is None:
            name = names[prefix, key] = _name(prefix, key, sep)
        if isinstance(value, dict):
            _flat_into(out, value.items(), name, sep, names)
        else:
            out[name] = value
