"""Run a coroutine from sync code, whether or not the calling thread already runs an event loop.

No running loop (a script): ``asyncio.run``. A running loop (Jupyter, IPython, code under
``asyncio.run``, a loop patched by nest_asyncio): the caller's loop cannot be re-entered, so the
coroutine runs on a private loop in a daemon thread and the caller waits for it. asyncio itself is
never patched. Ctrl-C while waiting cancels the coroutine, which closes its connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["run_sync"]

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop, _thread
    with _lock:
        if _loop is None or _thread is None or not _thread.is_alive():
            _loop = asyncio.new_event_loop()
            _thread = threading.Thread(
                target=_loop.run_forever, name="pandas-async-loop", daemon=True
            )
            _thread.start()
        return _loop


def _in_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion and return its result, from any thread."""
    if not _in_running_loop():
        runner = asyncio.Runner()  # cancels the task and re-raises on Ctrl-C
        try:
            return runner.run(coro)
        finally:
            runner.close()
    future = asyncio.run_coroutine_threadsafe(coro, _background_loop())
    try:
        return future.result()
    except BaseException:  # KeyboardInterrupt in the waiting thread: stop the work too
        if not future.done():
            future.cancel()
            with contextlib.suppress(BaseException):
                future.result(timeout=5)
        raise
