"""Run a coroutine from sync code, from any thread, with or without a running event loop.

Every sync call runs on ONE long-lived private event loop in a daemon thread (in a script, in
Jupyter, under ``asyncio.run``), and the caller's thread waits for it. One loop for every call
is what lets a user's ``httpx.AsyncClient`` (whose connections belong to the loop they were
opened on) serve repeated ``fetch`` calls. asyncio itself is never patched.

- A nested call, made from a callback (a ``parse=`` callable, a paginator) that runs on one of
  our loops, cannot wait for that loop: it runs on a fresh loop in a fresh thread instead, so it
  never deadlocks.
- Ctrl-C while waiting cancels the work (which closes its connections) and re-raises
  ``KeyboardInterrupt`` at once. Under ``asyncio.run`` the first Ctrl-C only cancels the main
  task, which cannot run while this thread waits, so asyncio's handler is swapped for Python's
  default one for the duration of the wait.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import signal
import threading
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["background_loop", "claim_client", "run_sync"]

T = TypeVar("T")

# How long a cancelled call may take to close its connections before Ctrl-C returns anyway.
CANCEL_GRACE = 0.5

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None
_ours = threading.local()  # .loop_thread is True in the threads that run our loops


def _serve_forever(loop: asyncio.AbstractEventLoop) -> None:
    _ours.loop_thread = True
    asyncio.set_event_loop(loop)
    loop.run_forever()


def _background_loop() -> asyncio.AbstractEventLoop:
    """The long-lived loop of sync calls, started on first use (and again after a fork)."""
    global _loop, _thread
    with _lock:
        if _loop is None or _thread is None or not _thread.is_alive():
            _loop = asyncio.new_event_loop()
            _thread = threading.Thread(
                target=_serve_forever, args=(_loop,), name="pandas-async-loop", daemon=True
            )
            _thread.start()
        return _loop


def background_loop() -> asyncio.AbstractEventLoop:
    """The loop sync ``fetch`` calls run on (started if need be)."""
    return _background_loop()


def _on_our_loop_thread() -> bool:
    return bool(getattr(_ours, "loop_thread", False))


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion and return its result (or raise its exception)."""
    if _on_our_loop_thread():
        return _run_on_fresh_thread(coro)
    loop = _background_loop()
    context = contextvars.copy_context()  # the caller's context (tracing, defaults) goes along
    done = threading.Event()
    box: dict[str, Any] = {}

    async def guarded() -> None:
        try:
            box["result"] = await coro
        except BaseException as exc:  # handed to the waiting thread, cancellation included
            box["error"] = exc
        finally:
            done.set()

    task_box: list[asyncio.Task[None]] = []

    def start() -> None:
        task_box.append(loop.create_task(guarded(), context=context))

    loop.call_soon_threadsafe(start)
    try:
        with _interruptible():
            done.wait()
    except BaseException:  # KeyboardInterrupt (or SystemExit) while waiting: stop the work too

        def cancel() -> None:
            if task_box:
                task_box[0].cancel()
            else:  # not started yet: never start it
                coro.close()
                done.set()

        loop.call_soon_threadsafe(cancel)
        done.wait(CANCEL_GRACE)
        raise
    if "error" in box:
        raise box["error"]
    result: T = box["result"]
    return result


def _run_on_fresh_thread(coro: Coroutine[Any, Any, T]) -> T:
    """A call made from a callback on one of our loops: that loop is busy running the callback,
    so this call gets a loop and a thread of its own, and the callback waits for it."""
    box: dict[str, Any] = {}
    context = contextvars.copy_context()

    def main() -> None:
        _ours.loop_thread = True
        try:
            box["result"] = asyncio.run(coro)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(
        target=context.run, args=(main,), name="pandas-async-nested", daemon=True
    )
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    result: T = box["result"]
    return result


class _interruptible:
    """While the main thread waits, Ctrl-C raises ``KeyboardInterrupt`` right away.

    Only asyncio's own handler (installed by ``asyncio.run``/``asyncio.Runner``, which merely
    cancels a task that cannot run while we wait) is replaced, and only for the wait; a handler
    of the user's own is left alone.
    """

    def __init__(self) -> None:
        self._saved: Any = None

    def __enter__(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        handler = signal.getsignal(signal.SIGINT)
        if _is_asyncio_handler(handler):
            self._saved = handler
            signal.signal(signal.SIGINT, signal.default_int_handler)

    def __exit__(self, *exc: object) -> None:
        if self._saved is not None:
            signal.signal(signal.SIGINT, self._saved)
            self._saved = None


def _is_asyncio_handler(handler: Any) -> bool:
    func: Callable[..., Any] | None = handler
    if isinstance(handler, functools.partial):
        func = handler.func
    owner = getattr(func, "__self__", None)
    return isinstance(owner, asyncio.Runner)


# -- a user's client belongs to one loop --------------------------------------------------------

_client_loops: weakref.WeakKeyDictionary[Any, weakref.ref[asyncio.AbstractEventLoop]] = (
    weakref.WeakKeyDictionary()
)


def claim_client(client: Any) -> None:
    """Note that ``client`` (an ``httpx.AsyncClient``) now sends on the running loop; raise a
    ``RuntimeError`` naming the fix when an earlier call used it on another loop, whose
    connections it still holds (httpx fails on them with "Event loop is closed" or "bound to a
    different event loop"). Call it on the loop that will send, before anything is sent."""
    loop = asyncio.get_running_loop()
    with _lock:
        earlier = _client_loops.get(client)
        previous = earlier() if earlier is not None else None
        if earlier is None or previous is loop:
            _client_loops[client] = weakref.ref(loop)
            return
    ours = _loop
    if previous is ours:
        fix = (
            "it was used by fetch(), which runs on pandas_async's own event loop, and its "
            "connections belong to that loop. Keep using it with fetch(), or give afetch() a "
            "client made for this loop (for example `async with httpx.AsyncClient() as client:` "
            "in your coroutine)"
        )
    elif loop is ours:
        fix = (
            "it was used by afetch() (or your own code) on another event loop, and its "
            "connections belong to that loop; fetch() runs on pandas_async's own loop. Keep "
            "using it with afetch() in that loop, or give fetch() a client of its own"
        )
    else:
        fix = (
            "it was used on another event loop (a finished asyncio.run, or another thread), and "
            "its connections belong to that loop. Make one client per loop, for example "
            "`async with httpx.AsyncClient() as client:` inside the coroutine you run"
        )
    raise RuntimeError(f"client= cannot be used on this event loop: {fix}.")
