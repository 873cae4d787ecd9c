"""A tqdm progress bar (a widget in Jupyter, text in a terminal) for one fetch.

The bar is chosen as ``tqdm.auto`` would, minus its warning: a widget inside a Jupyter kernel
when ipywidgets is installed, else a text bar, quietly (``tqdm.auto`` prints "IProgress not
found. Please update jupyter and ipywidgets" on every kernel without the ``[notebook]`` extra).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import sys
import time
from typing import Any

from ._outcome import Outcome

__all__ = ["Progress"]

# progress=None shows the bar only once the work has run this long: quick calls stay quiet.
AUTO_DELAY = 2.0
# The postfix (failed, retries, requests/s) is redrawn at most this often.
POSTFIX_EVERY = 0.5


def _in_jupyter_kernel() -> bool:
    ipython = sys.modules.get("IPython")  # never imported here: a script has none
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
        return shell is not None and "IPKernelApp" in shell.config
    except Exception:  # an IPython we do not know: behave as in a terminal
        return False


def _bar_class() -> Any:
    if _in_jupyter_kernel():
        try:
            importlib.import_module("ipywidgets")  # the widget bar needs it
            from tqdm.notebook import tqdm as notebook_tqdm
        except ImportError:
            pass  # no [notebook] extra: a text bar, without tqdm.auto's warning
        else:
            return notebook_tqdm
    from tqdm.std import tqdm as text_tqdm

    return text_tqdm


class Progress:
    """Rows done, with failed rows, retries and requests/s in the postfix.

    ``enabled=True`` shows the bar at once and leaves it on screen; ``False`` never shows it;
    ``None`` creates it once the call has run for ``AUTO_DELAY`` seconds (a timer on the running
    event loop) and removes it at the end, so a quick call draws nothing and, in Jupyter,
    creates no widget at all. ``update`` is called once per distinct request (``rows`` is how
    many rows shared it). Create, update and close it on the event loop that runs the fetch.
    """

    def __init__(self, total: int, enabled: bool | None) -> None:
        self._bar: Any = None
        self._total = total
        self._enabled = enabled
        self._done = 0
        self._failed = 0
        self._requests = 0
        self._retries = 0
        self._started = time.monotonic()
        self._last_postfix = 0.0
        self._timer: asyncio.TimerHandle | None = None
        if total == 0 or enabled is False:
            return
        if enabled:
            self._open()
            return
        with contextlib.suppress(RuntimeError):  # no running loop: see update()
            self._timer = asyncio.get_running_loop().call_later(AUTO_DELAY, self._open_if_slow)

    def _open_if_slow(self) -> None:
        self._timer = None
        if self._bar is None and self._done < self._total:
            bar = self._open()
            bar.set_postfix_str(self.postfix)

    def _open(self) -> Any:
        tqdm = _bar_class()
        self._bar = bar = tqdm(
            total=self._total,
            initial=self._done,
            unit="row",
            desc="pandas_async",
            leave=bool(self._enabled),
            dynamic_ncols=True,
        )
        return bar

    @property
    def postfix(self) -> str:
        """``failed=1 retries=2 req/s=35.1``: what the bar shows after the row count."""
        seconds = time.monotonic() - self._started
        rate = self._requests / seconds if seconds > 0 else 0.0
        return f"failed={self._failed} retries={self._retries} req/s={rate:.1f}"

    def update(self, rows: int, outcome: Outcome) -> None:
        """Called once per request: a few additions, and the clock only while a bar is shown."""
        attempts = outcome.attempts
        self._requests += attempts
        if attempts > outcome.pages:  # more attempts than pages: the rest were retries
            self._retries += attempts - outcome.pages
        if outcome.error is not None:
            self._failed += rows
        bar = self._bar
        if bar is None:
            self._done += rows
            if (
                self._enabled is None
                and self._timer is None  # no loop to time the bar's opening: look at the clock
                and time.monotonic() - self._started >= AUTO_DELAY
            ):
                self._open_if_slow()
            return
        bar.update(rows)
        now = time.monotonic()
        if now - self._last_postfix > POSTFIX_EVERY:
            self._last_postfix = now
            bar.set_postfix_str(self.postfix, refresh=False)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._bar is not None:
            self._bar.set_postfix_str(self.postfix, refresh=False)
            self._bar.close()
