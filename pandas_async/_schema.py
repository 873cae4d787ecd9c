"""``schema=``: the new columns' names and types, enforced row by row. Pure: no I/O.

A schema is a dict ``{column: dtype}`` or a ``pyarrow.Schema``, with names as they appear in the
result (after ``prefix=`` and flattening). Only those new columns are kept, in the schema's order;
one an answer lacks is added empty. Each is cast to its type; a value that does not fit (text in
a number column, 1.5 in an integer column, an object in a text column) fails its input row, with
the column named, and every other row is kept.

dtypes: anything ``pandas.api.types.pandas_dtype`` takes (``"float64"``, ``"Int64"``, ``"string"``,
``"datetime64[ns, UTC]"``, ``int``, ``str``...) or a pyarrow type (kept exactly, as
``pd.ArrowDtype``). NumPy integer and bool types become their nullable twins (``"int64"`` ->
``"Int64"``), so a failed or missing value can be empty. A missing value (null) fits any type.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ._frames import Assembled, assemble, outcome_names
from ._outcome import Outcome

__all__ = ["Schema", "assemble_typed", "enforce", "parse_schema"]

_NULLABLE = {"b": "boolean", "i": "Int", "u": "UInt"}


@dataclass(frozen=True)
class Schema:
    """Validated ``schema=``: ordered column names and their pandas dtypes."""

    columns: tuple[tuple[str, Any], ...]

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.columns]

    def __repr__(self) -> str:
        inner = ", ".join(f"{name!r}: {dtype}" for name, dtype in self.columns)
        return f"Schema({{{inner}}})"

    def empty_frame(self) -> pd.DataFrame:
        return pd.DataFrame({name: pd.Series([], dtype=dtype) for name, dtype in self.columns})


def _is_arrow_type(value: Any) -> bool:
    return type(value).__module__.startswith("pyarrow") and hasattr(value, "bit_width")


def _dtype(name: str, value: Any) -> Any:
    if _is_arrow_type(value):
        return pd.ArrowDtype(value)
    try:
        dtype = pd.api.types.pandas_dtype(value)
    except TypeError:
        raise TypeError(
            f"schema= column {name!r}: {value!r} is not a dtype "
            "(use e.g. 'float64', 'Int64', 'string', 'datetime64[ns, UTC]' or a pyarrow type)"
        ) from None
    if isinstance(dtype, np.dtype) and dtype.kind in _NULLABLE:
        kind = _NULLABLE[dtype.kind]
        return pd.api.types.pandas_dtype(
            kind if kind == "boolean" else f"{kind}{dtype.itemsize * 8}"
        )
    return dtype


def parse_schema(value: Any) -> Schema | None:
    """Check ``schema=`` (a dict or a ``pyarrow.Schema``) before any request; ``None`` passes."""
    if value is None or isinstance(value, Schema):
        return value
    if type(value).__module__.startswith("pyarrow") and hasattr(value, "names"):
        pairs = [(f.name, pd.ArrowDtype(f.type)) for f in value]
    elif isinstance(value, Mapping):
        pairs = []
        for name, dtype in value.items():
            if not isinstance(name, str):
                raise TypeError(f"schema= column names must be strings, got {name!r}")
            pairs.append((name, _dtype(name, dtype)))
    else:
        raise TypeError(
            f"schema= expects a dict {{column: dtype}} or a pyarrow.Schema, got {value!r}"
        )
    if not pairs:
        raise ValueError("schema= names no column")
    return Schema(tuple(pairs))


def _cast(values: pd.Series, dtype: Any) -> pd.Series:
    """``values`` as ``dtype``, or raise: never truncates or turns objects into text."""
    data = values.to_numpy(dtype=object)
    if isinstance(dtype, pd.ArrowDtype):
        import pyarrow as pa  # optional dependency: only a pyarrow type brings us here

        array = pa.array(data, from_pandas=True).cast(dtype.pyarrow_dtype, safe=True)
        return pd.Series(pd.arrays.ArrowExtensionArray(array), index=values.index)
    if dtype != np.dtype(object) and any(isinstance(v, dict | list | tuple) for v in data):
        raise TypeError("a nested value")
    return pd.Series(pd.array(data, dtype=dtype), index=values.index)


def _misfits(values: pd.Series, dtype: Any) -> tuple[np.ndarray, str]:
    """Positions of the values that do not fit ``dtype`` (one at a time), and the first one."""
    bad = np.zeros(len(values), dtype=bool)
    first = ""
    for i, v in enumerate(values.to_numpy(dtype=object)):
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
            continue
        try:
            _cast(pd.Series([v], dtype=object), dtype)
        except Exception:
            bad[i] = True
            first = first or repr(v)[:60]
    return bad, first


@dataclass(frozen=True)
class Enforced:
    frame: pd.DataFrame
    bad: np.ndarray  # one per frame row: True where a value did not fit
    causes: list[tuple[str, str] | None]  # one per frame row: (cause, error text), or None


def enforce(
    frame: pd.DataFrame, new_columns: list[str], tail: list[Any], schema: Schema
) -> Enforced:
    """Keep only the schema's new columns, cast; flag each row holding a value that does not fit.

    ``new_columns`` are the response columns of ``frame``; the schema's columns take their place,
    after the other columns but before ``tail`` (the outcome columns). Values that do not fit are
    left empty and their rows flagged ``bad``: the caller fails those rows.
    """
    n = len(frame)
    bad = np.zeros(n, dtype=bool)
    causes: list[tuple[str, str] | None] = [None] * n
    taken = set(new_columns)
    cast: dict[str, pd.Series] = {}
    for name, dtype in schema.columns:
        if name not in taken:
            cast[name] = pd.Series(pd.array([None] * n, dtype=dtype), index=frame.index)
            continue
        values = frame[name]
        try:
            cast[name] = _cast(values, dtype)
            continue
        except Exception:
            pass
        misfit, example = _misfits(values, dtype)
        cause = f"schema: column {name!r} does not fit {dtype}"
        text = f"schema: column {name!r} value {example} does not fit {dtype}"
        for i in np.flatnonzero(misfit & ~bad):
            causes[i] = (cause, text)
        bad |= misfit
        cast[name] = _cast(values.astype(object).where(~misfit, None), dtype)
    tail_set = set(tail)
    head = [c for c in frame.columns if c not in taken and c not in tail_set]
    index = frame.index
    plain = frame.reset_index(drop=True)
    new = pd.DataFrame({name: series.array for name, series in cast.items()})
    out = pd.concat([plain[head], new, plain[list(tail)]], axis=1)
    out.index = index
    return Enforced(out, bad, causes)


_POSITION = "\x00pandas_async_position"


def assemble_typed(
    frame: pd.DataFrame, outcomes: Sequence[Outcome], schema: Schema | None, **how: Any
) -> Assembled:
    """``assemble`` (``how`` holds its options), then ``schema`` enforced.

    A row with a value that does not fit fails as a whole (all its records, in rows mode): its
    outcome becomes a failure naming the column, and the frame is assembled again without it.
    """
    if schema is None:
        return assemble(frame, outcomes, **how)
    positioned = frame.copy(deep=False)
    positioned[_POSITION] = np.arange(len(frame))
    outcome_columns = outcome_names(list(positioned.columns))
    tail = [*outcome_columns, _POSITION]
    inputs = set(positioned.columns)

    def typed(rows: Sequence[Outcome]) -> tuple[Assembled, Enforced]:
        assembled = assemble(positioned, rows, **how)
        new = [c for c in assembled.frame.columns if c not in inputs and c not in outcome_columns]
        return assembled, enforce(assembled.frame, new, tail, schema)

    assembled, enforced = typed(outcomes)
    if enforced.bad.any():
        failed: dict[int, tuple[str, str]] = {}
        positions = enforced.frame[_POSITION].to_numpy()
        for i in np.flatnonzero(enforced.bad):
            failed.setdefault(int(positions[i]), enforced.causes[i])  # type: ignore[arg-type]
        replaced: dict[int, Outcome] = {}  # rows sharing an answer share its failure
        rows = list(outcomes)
        for pos, (cause, text) in failed.items():
            o = rows[pos]
            if id(o) not in replaced:
                replaced[id(o)] = Outcome(
                    None, o.status, text, cause, o.elapsed, o.attempts, o.pages
                )
        rows = [replaced.get(id(o), o) for o in rows]
        assembled, enforced = typed(rows)
    result = enforced.frame.drop(columns=[_POSITION])
    return Assembled(result, assembled.failures, assembled.outcome_columns)
