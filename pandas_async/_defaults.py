"""Defaults for later calls: ``set_defaults()`` for the session, ``defaults()`` for a block.

Three layers, each over the one before: session defaults (``set_defaults``, seen by every thread
and task), block defaults (``with defaults(...)``, seen only by the thread or task that entered
the block and by tasks it starts meanwhile: a ``contextvars.ContextVar``), and the call's own
options, which win. ``headers`` and ``params`` mappings are merged key by key rather than
replaced (header names case-insensitively); a key set to ``None`` in an upper layer removes it
(a header or param whose value is ``None`` is not sent).
Options are checked when they are set, with the same messages as a call gives.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any, Unpack

from ._options import FetchKwargs, FetchOptions

__all__ = ["apply_defaults", "defaults", "reset_defaults", "set_defaults"]

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_MERGED = {"headers": True, "params": False}  # option -> names are case-insensitive

_lock = threading.Lock()
_session: Mapping[str, Any] = _EMPTY  # replaced whole under _lock, read without it
_block: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "pandas_async_defaults", default=_EMPTY
)


def _merge_mapping(
    below: Mapping[Any, Any], above: Mapping[Any, Any], *, fold_case: bool
) -> dict[Any, Any]:
    """``above`` over ``below`` key by key. A ``None`` value is kept: a header or param whose
    value is ``None`` is left out of the request, so ``None`` removes a lower layer's value.
    Merging is idempotent, so options that already hold the defaults can be merged again."""
    merged = dict(below)
    for key, value in above.items():
        if fold_case and isinstance(key, str):
            folded = key.lower()
            for old in [k for k in merged if isinstance(k, str) and k.lower() == folded]:
                del merged[old]
        merged[key] = value
    return merged


def _layer(below: Mapping[str, Any], above: Mapping[str, Any]) -> dict[str, Any]:
    """``above`` over ``below``: headers/params mappings merged, every other option replaced."""
    out = dict(below)
    for name, value in above.items():
        lower = out.get(name)
        if name in _MERGED and isinstance(lower, Mapping) and isinstance(value, Mapping):
            out[name] = _merge_mapping(lower, value, fold_case=_MERGED[name])
        else:
            out[name] = value
    return out


def _check(caller: str, options: Mapping[str, Any]) -> dict[str, Any]:
    FetchOptions.build(caller, options)  # raises TypeError/ValueError naming the option
    for name in _MERGED:
        value = options.get(name)
        if value is not None and not (
            isinstance(value, Mapping)
            or callable(value)
            or (name == "params" and isinstance(value, list | tuple))
        ):
            raise TypeError(
                f"{name}= expects a mapping (or a function of the row), got {type(value).__name__}"
            )
    return dict(options)


def set_defaults(**options: Unpack[FetchKwargs]) -> None:
    """Set fetch options for every later call in this process (every thread and task).

    Repeated calls add to each other: ``set_defaults(rate="10/s")`` then
    ``set_defaults(headers={...})`` keeps both. A call's own options win; ``headers`` and
    ``params`` are merged key by key. ``reset_defaults()`` clears them.

    >>> pandas_async.set_defaults(headers={"Authorization": "Bearer ..."}, rate="120/min")
    """
    global _session
    checked = _check("set_defaults", options)
    with _lock:
        _session = MappingProxyType(_layer(_session, checked))


def reset_defaults() -> None:
    """Forget every option set with :func:`set_defaults` (``defaults()`` blocks are untouched)."""
    global _session
    with _lock:
        _session = _EMPTY


@contextlib.contextmanager
def defaults(**options: Unpack[FetchKwargs]) -> Iterator[None]:
    """Fetch options for the calls made inside a ``with`` block, in this thread or task only.

    Over the session's defaults, under a call's own options; blocks nest.

    >>> with pandas_async.defaults(cache=True, rate="5/s"):
    ...     prices = pairs.aapi.fetch(url)  # doctest: +SKIP
    """
    checked = _check("defaults", options)
    token = _block.set(MappingProxyType(_layer(_block.get(), checked)))
    try:
        yield
    finally:
        _block.reset(token)


def apply_defaults(options: Mapping[str, Any]) -> dict[str, Any]:
    """A call's options over the current block's defaults over the session's."""
    session, block = _session, _block.get()
    if not session and not block:
        return dict(options)
    return _layer(_layer(session, block), options)
