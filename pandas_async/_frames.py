"""Answers -> DataFrame: normalize, join as columns or rows. Pure: no I/O (parsers: _parsers).

``assemble`` lines results up with the input: same index labels, same order; in rows mode an input
row's label repeats once per record (like ``DataFrame.explode``), and a row with no record (an empty
list, or a failure) keeps one row with empty response columns, so nothing is silently dropped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

import numpy as np
import pandas as pd

from ._flatten import normalize_records as _normalize
from ._outcome import Outcome
from ._parsers import make_parser  # where it was first: callers import it from here too

__all__ = [
    "OUTCOME_COLUMNS",
    "SCALAR_COLUMN",
    "SUFFIX",
    "Assembled",
    "assemble",
    "make_parser",
    "outcome_names",
]

SCALAR_COLUMN = "response"
SUFFIX = "_response"
OUTCOME_COLUMNS = ("_status", "_error", "_elapsed", "_attempts")
_ROW_KEY = "\x00pandas_async_row"
TOO_DEEP = "answer nested too deeply"
_MANY = (list, pd.DataFrame)  # answers that are records: rows mode under how="auto"
_VALUE = attrgetter("value")
_STATUS, _ERROR = attrgetter("status"), attrgetter("error")
_ELAPSED, _ATTEMPTS = attrgetter("elapsed"), attrgetter("attempts")


@dataclass(frozen=True)
class Assembled:
    frame: pd.DataFrame  # with outcome columns
    failures: Counter[str]  # cause -> failed input rows
    # The outcome columns' names in ``frame``: OUTCOME_COLUMNS, each suffixed when the input
    # frame already has a column of that name (input columns are never dropped or duplicated).
    outcome_columns: tuple[str, ...] = OUTCOME_COLUMNS


def outcome_names(columns: Sequence[object]) -> tuple[str, ...]:
    """The names the outcome columns take next to these input columns."""
    taken = {str(c) for c in columns}
    names = []
    for name in OUTCOME_COLUMNS:
        while name in taken:
            name += SUFFIX
        taken.add(name)
        names.append(name)
    return tuple(names)


def _records_of(value: Any) -> list[Any]:
    if isinstance(value, pd.DataFrame):
        return value.to_dict("records")
    if isinstance(value, list):
        return value
    return [] if value is None else [value]


def _as_record(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {SCALAR_COLUMN: value}


def assemble(
    frame: pd.DataFrame,
    outcomes: Sequence[Outcome],
    *,
    how: str = "auto",
    record_path: str | list[str] | None = None,
    meta: Any = None,
    max_level: int | None = None,
    sep: str = ".",
    prefix: str | None = None,
) -> Assembled:
    """Join ``outcomes`` (one per row of ``frame``) back onto ``frame``.

    Rows that shared a request (dedupe) share one ``Outcome`` object: each distinct answer is
    flattened once and its records are then taken for every row that asked.
    """
    n = len(frame)
    distinct, row_u = _distinct(outcomes)
    values = list(map(_VALUE, distinct))
    types = set(map(type, values))
    if how == "auto":
        rows_mode = record_path is not None or any(issubclass(t, _MANY) for t in types)
    else:
        rows_mode = how == "rows"

    owners: list[int] = []  # the distinct outcome each record came from, ascending
    if not rows_mode:
        if types == {dict}:  # the usual call: every answer an object
            records, owners = values, list(range(len(values)))
        else:
            records = []
            for k, value in enumerate(values):
                if value is not None:
                    records.append(_as_record(value))
                    owners.append(k)
        normalized, owners = _normalize_owned(
            records, owners, distinct, sep=sep, max_level=max_level
        )
    elif record_path is None:
        records = []
        for k, value in enumerate(values):
            if value is not None:  # a failed row may still carry the pages fetched before
                items = _records_of(value)
                records.extend(_as_record(r) for r in items)
                owners.extend([k] * len(items))
        normalized, owners = _normalize_owned(
            records, owners, distinct, sep=sep, max_level=max_level
        )
    else:
        normalized, owners = _normalize_paths(
            distinct, record_path=record_path, meta=meta, sep=sep, max_level=max_level
        )

    # Each row gets max(1, its records) output rows; `source` says which normalized record fills
    # each output row (-1: none, the row keeps empty response columns).
    count_u = np.bincount(np.asarray(owners, dtype=np.intp), minlength=len(distinct))
    first_u = np.cumsum(count_u) - count_u
    counts = count_u[row_u]
    reps = np.maximum(counts, 1)
    take = np.repeat(np.arange(n), reps)
    total = len(take)
    source = np.full(total, -1, dtype=np.intp)
    has = counts > 0
    if has.any():
        c = counts[has]
        rank = np.arange(c.sum()) - np.repeat(np.cumsum(c) - c, c)
        slots = np.repeat((np.cumsum(reps) - reps)[has], c) + rank
        source[slots] = np.repeat(first_u[row_u[has]], c) + rank

    base = frame.take(take)
    index = base.index
    base = base.reset_index(drop=True)
    normalized = normalized.reset_index(drop=True)
    if total == len(normalized) and np.array_equal(source, np.arange(total)):
        new = normalized  # one record per row, in order: nothing to move
    elif (source >= 0).all():
        new = normalized.take(source).reset_index(drop=True)
    else:
        new = normalized.reindex(source).reset_index(drop=True)  # -1: all-missing row

    outcome_cols_named = outcome_names(list(frame.columns))
    reserved = {str(c) for c in frame.columns} | set(OUTCOME_COLUMNS) | set(outcome_cols_named)
    new.columns = _new_names([str(c) for c in new.columns], reserved, prefix)

    take_u = row_u[take]  # outcome columns: read once per distinct outcome, then taken
    errors = list(map(_ERROR, distinct))  # _normalize_* may have failed some: read them now
    status = pd.array(list(map(_STATUS, distinct)), dtype="Int64").take(take_u)
    error = pd.array(errors, dtype="string").take(take_u)
    elapsed = np.fromiter(map(_ELAPSED, distinct), np.float64, len(distinct))[take_u]
    attempts = np.fromiter(map(_ATTEMPTS, distinct), np.int64, len(distinct))[take_u]
    columns = (status, error, elapsed, attempts)
    outcome_cols = pd.DataFrame(dict(zip(outcome_cols_named, columns, strict=True)))
    result = pd.concat([base, new, outcome_cols], axis=1)
    result.index = index
    failures: Counter[str] = Counter()
    failed = [k for k, e in enumerate(errors) if e is not None]
    if failed:
        rows_of = np.bincount(row_u, minlength=len(distinct))
        for k in failed:
            failures[distinct[k].cause or "error"] += int(rows_of[k])
    return Assembled(result, failures, outcome_cols_named)


def _distinct(outcomes: Sequence[Outcome]) -> tuple[list[Outcome], np.ndarray]:
    """The distinct outcomes (rows that shared a request share one object), in first-seen
    order, and which one each row has."""
    n = len(outcomes)
    if len(set(map(id, outcomes))) == n:  # nothing shared
        return list(outcomes), np.arange(n, dtype=np.intp)
    distinct: list[Outcome] = []
    seen: dict[int, int] = {}
    row_u = np.empty(n, dtype=np.intp)
    for i, o in enumerate(outcomes):
        k = seen.get(id(o))
        if k is None:
            k = seen[id(o)] = len(distinct)
            distinct.append(o)
        row_u[i] = k
    return distinct, row_u


def _normalize_owned(
    records: list[dict[str, Any]],
    owners: list[int],
    outcomes: list[Outcome],
    *,
    sep: str,
    max_level: int | None,
) -> tuple[pd.DataFrame, list[int]]:
    """``_normalize`` all records at once; if that fails (an answer nested ~1,000 levels deep
    exhausts the recursion of ``json_normalize``), find the answers at fault, fail just their
    rows (``outcomes`` is updated) and flatten everything else."""
    try:
        return _normalize(records, sep=sep, max_level=max_level), owners
    except Exception:  # whatever an answer holds, only its row may fail
        pass
    by_owner: dict[int, list[dict[str, Any]]] = {}
    for record, k in zip(records, owners, strict=True):
        by_owner.setdefault(k, []).append(record)
    kept: list[dict[str, Any]] = []
    kept_owners: list[int] = []
    for k, mine in by_owner.items():
        try:
            _normalize(mine, sep=sep, max_level=max_level)
        except Exception as exc:
            outcomes[k] = _unflattenable(outcomes[k], exc)
            continue
        kept.extend(mine)
        kept_owners.extend([k] * len(mine))
    return _normalize(kept, sep=sep, max_level=max_level), kept_owners


def _unflattenable(o: Outcome, exc: BaseException) -> Outcome:
    if isinstance(exc, RecursionError):
        cause = TOO_DEEP
        text = (
            f"{cause} to flatten into columns; pass max_level= (or parse=) to keep the deep "
            "part as one value"
        )
    else:
        cause = "unexpected answer"
        text = f"{cause}: cannot flatten it ({type(exc).__name__}: {str(exc)[:150]})"
    return Outcome(None, o.status, text, cause, o.elapsed, o.attempts, o.pages)


def _normalize_paths(
    outcomes: list[Outcome],
    *,
    record_path: str | list[str],
    meta: Any,
    sep: str,
    max_level: int | None,
) -> tuple[pd.DataFrame, list[int]]:
    """``json_normalize(record_path=, meta=)`` over every answer at once, remembering each owner."""
    docs: list[dict[str, Any]] = []
    doc_owner: list[int] = []
    for i, o in enumerate(outcomes):
        if o.value is None:
            continue
        items = _records_of(o.value)
        for item in items:
            if isinstance(item, dict):
                docs.append({**item, _ROW_KEY: i})
                doc_owner.append(i)
    meta_list: list[Any] = [] if meta is None else ([meta] if isinstance(meta, str) else list(meta))

    def normalize(batch: list[dict[str, Any]]) -> pd.DataFrame:
        return pd.json_normalize(
            batch,
            record_path=record_path,
            meta=[*meta_list, _ROW_KEY],
            sep=sep,
            max_level=max_level,
            errors="ignore",  # a meta field an answer leaves out (APIs omit nulls) is NaN
        )

    try:
        table = normalize(docs) if docs else pd.DataFrame({_ROW_KEY: []})
    except (KeyError, TypeError, AttributeError, RecursionError):
        # Some answers lack the record_path (or nest too deeply): fail just those rows.
        good: list[dict[str, Any]] = []
        lacking: set[int] = set()
        for doc, i in zip(docs, doc_owner, strict=True):
            try:
                normalize([doc])
            except RecursionError as exc:
                lacking.add(i)
                outcomes[i] = _unflattenable(outcomes[i], exc)
            except (KeyError, TypeError, AttributeError) as exc:
                lacking.add(i)
                o = outcomes[i]
                detail = f"record_path {record_path!r} not found in the answer ({exc!s})"
                outcomes[i] = Outcome(
                    None, o.status, f"unexpected answer: {detail}", "unexpected answer",
                    o.elapsed, o.attempts,
                )  # fmt: skip
            else:
                good.append(doc)
        good = [d for d in good if d[_ROW_KEY] not in lacking]
        table = normalize(good) if good else pd.DataFrame({_ROW_KEY: []})
    owners = table.pop(_ROW_KEY).astype(np.intp).tolist()
    return table, owners


def _new_names(names: list[str], reserved: set[str], prefix: str | None) -> list[str]:
    """Prefix every new column; give a colliding one the ``_response`` suffix."""
    out = []
    taken = set(reserved)
    for name in names:
        candidate = f"{prefix}{name}" if prefix else name
        while candidate in taken:
            candidate += SUFFIX
        taken.add(candidate)
        out.append(candidate)
    return out
