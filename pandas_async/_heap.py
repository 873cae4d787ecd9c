"""One call's garbage collection: the heap that was there before the call is not walked again.

CPython's full collection walks every tracked object. A call makes a few objects per row (its
outcomes and the parsed answers), which sets off several full collections while it runs, and each
one walked the whole session's heap again: the imported libraries, the frame, the call's own
requests (measured: a third of the gap to a plain aiohttp client at 50,000 rows). ``gc.freeze()``
when a call starts sets the objects that exist then aside for its duration, and ``gc.unfreeze()``
when it ends puts them back, so garbage from before the call is collected as usual afterwards.
Objects made during the call are collected as always, so memory stays bounded on a long
``to_parquet`` run. Calls that overlap (threads, several loops) share one freeze. Nothing is done
when the collector is off or something else froze objects (a pre-fork server): theirs stay as set.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

__all__ = ["heap_set_aside"]

_lock = threading.Lock()
_calls = 0  # calls under way
_frozen = False  # whether the freeze is ours, to undo when the last call ends


@contextlib.contextmanager
def heap_set_aside() -> Iterator[None]:
    """While the block runs, full collections skip the objects that existed when it began."""
    global _calls, _frozen
    with _lock:
        if _calls == 0:
            _frozen = gc.isenabled() and gc.get_freeze_count() == 0
        if _frozen:
            gc.freeze()  # also what an overlapping call brought: its frame and requests
        _calls += 1
    try:
        yield
    finally:
        with _lock:
            _calls -= 1
            if _calls == 0 and _frozen:
                _frozen = False
                gc.unfreeze()
