"""One call's garbage collection: fewer collections, and none that walks the heap from before.

A call makes a few lasting objects per row (outcomes, parsed answers) and many short-lived ones
per request in flight (aiohttp's, ours). With CPython's defaults (a young collection every 700
net allocations) the objects of requests still in flight are walked by collection after
collection, and every full collection walks the whole session's heap again: the imported
libraries, the frame, the call's requests. Measured at 50,000 rows, concurrency 50: 13 µs of CPU
per request in the collector; at concurrency 1,000: 35 µs (benchmarks/bench_floor.py).

While a call runs, ``heap_set_aside``:

- raises the young generation's threshold to ``CALL_THRESHOLD`` (never lowers one that is
  higher), so the objects of a request are usually freed by reference counting before a
  collection walks them; a young collection then walks at most that many objects (a few ms);
- ``gc.freeze()``: the objects that exist when the call starts are set aside, and
  ``gc.unfreeze()`` puts them back when it ends, so garbage from before the call is collected as
  usual afterwards.

Objects made during the call are collected as always (cyclic garbage at most ``CALL_THRESHOLD``
allocations later), so memory stays bounded on a long ``to_parquet`` run. Calls that overlap
(threads, several loops) share one setting. Nothing is done when the collector is off, and a
freeze made by something else (a pre-fork server) is left as it is.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

__all__ = ["CALL_THRESHOLD", "heap_set_aside", "set_aside_now"]

CALL_THRESHOLD = 50_000  # young-generation threshold while a call runs (CPython's default: 700)

_lock = threading.Lock()
_calls = 0  # calls under way
_frozen = False  # whether the freeze is ours, to undo when the last call ends
_thresholds: tuple[int, int, int] | None = None  # the ones to put back, when we raised them


@contextlib.contextmanager
def heap_set_aside(*, fewer_collections: bool = True) -> Iterator[None]:
    """While the block runs: fewer young collections, and the objects that existed when it
    began are skipped by full ones. ``fewer_collections=False`` keeps the threshold as it is:
    streaming to Parquet, where the cyclic garbage a raised threshold lets pile up (about 10 MiB)
    would count against memory bounded by the batch (decided by the first of overlapping calls)."""
    global _calls, _frozen, _thresholds
    with _lock:
        if _calls == 0:
            enabled = gc.isenabled()
            _frozen = enabled and gc.get_freeze_count() == 0
            before = gc.get_threshold()
            if fewer_collections and enabled and 0 < before[0] < CALL_THRESHOLD:
                _thresholds = before
                gc.set_threshold(CALL_THRESHOLD, before[1], before[2])
        if _frozen:
            gc.freeze()  # also what an overlapping call brought: its frame and requests
        _calls += 1
    try:
        yield
    finally:
        with _lock:
            _calls -= 1
            if _calls == 0:
                if _frozen:
                    _frozen = False
                    gc.unfreeze()
                if _thresholds is not None:
                    if gc.get_threshold()[0] == CALL_THRESHOLD:  # not changed since by someone
                        gc.set_threshold(*_thresholds)
                    _thresholds = None


def set_aside_now() -> None:
    """Inside ``heap_set_aside``: set aside what exists now too (a cached re-run's answers, just
    read: acyclic, so nothing for the collector to find), when the freeze is ours."""
    with _lock:
        if _frozen and _calls:
            gc.freeze()
