"""Checks of single option values: each raises an error that names the option and the value.

Pure and dependency-free, shared by the option value objects (``Retry``, ``Rate``) and
``FetchOptions.build`` in ``_options``.
"""

from __future__ import annotations

import datetime
import decimal
import math
from collections.abc import Mapping
from typing import Any

__all__ = ["check_int", "check_meta", "check_number", "choice", "json_problem", "short"]


def choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name} expects one of {', '.join(map(repr, choices))}, got {value!r}")
    return str(value)


def check_int(name: str, value: Any, *, minimum: int, extra: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} expects a whole number{extra}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value!r}")


def check_number(
    name: str, value: Any, *, minimum: float, strict: bool = False, extra: str = ""
) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} expects a number of seconds{extra}, got {value!r}")
    if not math.isfinite(value) or value < minimum or (strict and value == minimum):
        bound = "greater than" if strict else "at least"
        raise ValueError(f"{name} must be a finite number {bound} {minimum:g}, got {value!r}")


# What a JSON body may hold besides dicts, lists and JSON scalars: values _requests turns into
# JSON (timestamps as ISO text, numpy scalars as numbers, Decimal exactly, missing as null).
# (pandas' NA/NaT and numpy scalars are told by their type, so this module needs neither.)
_JSON_LEAVES: tuple[type, ...] = (
    str, int, float, bool, type(None), datetime.date, datetime.time, datetime.timedelta,
    decimal.Decimal,
)  # fmt: skip
_MISSING_TYPES = frozenset({"NAType", "NaTType"})


def json_problem(value: Any, depth: int = 0) -> str | None:
    """Why ``value`` cannot become JSON (``None``: it can), naming the offending part."""
    if depth > 100:
        return "is nested more than 100 levels deep"
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str | int | float | bool):
                return f"has a key of type {type(k).__name__} ({k!r}); JSON keys are text"
            problem = json_problem(v, depth + 1)
            if problem is not None:
                return problem
        return None
    if isinstance(value, list | tuple):
        for v in value:
            problem = json_problem(v, depth + 1)
            if problem is not None:
                return problem
        return None
    kind = type(value)
    if isinstance(value, _JSON_LEAVES) or kind.__name__ in _MISSING_TYPES:
        return None
    if kind.__module__ == "numpy" and hasattr(value, "item"):  # a numpy scalar
        return None
    hint = "; use a list" if isinstance(value, set | frozenset) else ""
    if isinstance(value, bytes | bytearray):
        hint = "; decode it to text first"
    return f"holds a {kind.__name__} ({short(value)}), which JSON cannot represent{hint}"


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_meta(meta: Any) -> None:
    """``meta=``: a key, or a list of keys and key paths, as ``json_normalize`` takes it."""
    if meta is None or isinstance(meta, str):
        return
    if isinstance(meta, list | tuple) and all(
        isinstance(m, str)
        or (isinstance(m, list | tuple) and m and all(isinstance(k, str) for k in m))
        for m in meta
    ):
        return
    raise TypeError(
        "meta= expects a key, or a list of keys and key paths such as "
        f"['id', ['customer', 'name']], got {short(meta)}"
    )
