"""Row values as they go out: text for URLs, params and headers, JSON for bodies. Pure.

A missing value (None, NaN, NA, NaT) is never sent as text ("None", "nan"): the request builder
leaves that param, header or form field out, and a JSON body gets ``null``. Bytes are decoded
as UTF-8 (or the row fails naming the column), never sent as their repr ``b'...'``. Timestamps,
numpy scalars and ``Decimal`` become JSON whether they come from a template or a callable, on the
default sender and a user's httpx client alike (both send ``encode_json``'s bytes).
"""

from __future__ import annotations

import datetime
import decimal
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson
import pandas as pd

__all__ = [
    "MISSING",
    "ValueProblem",
    "encode_json",
    "is_missing",
    "json_ready",
    "outgoing",
    "text_of",
]

_MAX_DEPTH = 200  # a body nested deeper than this is a bug, not data


class _Missing:
    """Stands for "leave this out": a template filled from a missing value."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class ValueProblem(ValueError):
    """A row value that cannot be sent as meant; fails that row only."""


def is_missing(value: Any) -> bool:
    """None, NaN (float or numpy), ``pd.NA``, ``pd.NaT`` or a numpy NaT."""
    if value is None or value is pd.NA or value is pd.NaT or value is MISSING:
        return True
    if isinstance(value, float | np.floating):
        return math.isnan(value)
    if isinstance(value, np.datetime64 | np.timedelta64):
        return bool(np.isnat(value))
    if isinstance(value, decimal.Decimal):
        return value.is_nan()
    return False


def text_of(value: Any, where: str) -> str:
    """A value as the text a URL, param or header carries (bytes decoded as UTF-8)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise ValueProblem(
                f"{where} holds bytes that are not UTF-8 text ({bytes(value[:20])!r}...); "
                "decode them first"
            ) from None
    return str(value)


def json_ready(value: Any, where: str, depth: int = 0) -> Any:
    """``value`` as JSON-ready Python: missing -> None, timestamps -> ISO text, numpy -> Python,
    tuples -> lists, bytes -> text; ``Decimal`` kept (``encode_json`` writes it exactly).

    Raises ``ValueProblem`` naming ``where`` for what JSON cannot represent (a set, an object).
    """
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if depth > _MAX_DEPTH:
        raise ValueProblem(f"{where} is nested more than {_MAX_DEPTH} levels deep")
    if isinstance(value, dict):
        return {_key(k, where): json_ready(v, where, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v, where, depth + 1) for v in value]
    if is_missing(value):
        return None
    if isinstance(value, decimal.Decimal):
        return None if value.is_infinite() else value
    if isinstance(value, datetime.date | datetime.time):  # pd.Timestamp is a datetime
        return value.isoformat()
    if isinstance(value, pd.Timedelta | datetime.timedelta):
        return pd.Timedelta(value).isoformat()
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist(), where, depth + 1)
    if isinstance(value, np.generic):
        return json_ready(value.item(), where, depth + 1)
    if isinstance(value, bytes | bytearray):
        return text_of(value, where)
    if isinstance(value, pd.Series):
        return json_ready(value.to_dict(), where, depth + 1)
    if isinstance(value, Mapping):
        return {_key(k, where): json_ready(v, where, depth + 1) for k, v in value.items()}
    kind = type(value).__name__
    hint = "; use a list" if isinstance(value, set | frozenset) else ""
    raise ValueProblem(f"{where} holds a {kind}, which JSON cannot represent{hint}")


def _key(key: Any, where: str) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, int | float | bool | np.generic) or key is None:
        return str(json_ready(key, where))
    raise ValueProblem(f"{where} has a key of type {type(key).__name__}; JSON keys are text")


def outgoing(name: str, value: Any) -> Any:
    """params/headers/data as they go out: missing values left out, bytes decoded, bodies JSON."""
    if name == "json":
        return json_ready(value, "json=")
    if value is None:
        return None
    if name == "headers":
        if not isinstance(value, Mapping):
            raise ValueProblem(f"headers= gave a {type(value).__name__}, expected a dict")
        return {
            text_of(k, "headers="): text_of(v, f"header {k!r}")
            for k, v in value.items()
            if not is_missing(v)
        }
    if isinstance(value, str | bytes | bytearray):
        return value  # a query string, or a raw body
    if isinstance(value, Mapping):
        return {k: _out(v, f"{name}= field {k!r}") for k, v in value.items() if not _gone(v)}
    if isinstance(value, list | tuple) and all(
        isinstance(p, list | tuple) and len(p) == 2 for p in value
    ):
        return [(k, _out(v, f"{name}= field {k!r}")) for k, v in value if not _gone(v)]
    raise ValueProblem(
        f"{name}= gave a {type(value).__name__}, expected a dict, (name, value) pairs or text"
    )


def _gone(value: Any) -> bool:
    return is_missing(value) or (
        isinstance(value, list | tuple) and len(value) > 0 and all(is_missing(v) for v in value)
    )


def _out(value: Any, where: str) -> Any:
    if isinstance(value, bytes | bytearray):
        return text_of(value, where)
    if isinstance(value, list | tuple):
        return [_out(v, where) for v in value if not is_missing(v)]
    return value


def _default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):  # exactly as written: 1.10 stays 1.10
        return orjson.Fragment(str(value) if value.is_finite() else "null")
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")


def encode_json(value: Any) -> bytes:
    """The bytes of a JSON body (after ``json_ready``; plain values pass through it unchanged)."""
    try:
        return orjson.dumps(value, default=_default, option=orjson.OPT_SERIALIZE_NUMPY)
    except TypeError:  # a value json_ready did not see (a paginator's own body): convert now
        return orjson.dumps(json_ready(value, "json="), default=_default)
