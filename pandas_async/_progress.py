"""A tqdm.auto progress bar (a widget in Jupyter, text in a terminal) for one fetch."""

from __future__ import annotations

import time
from typing import Any

from ._outcome import Outcome

__all__ = ["Progress"]

# progress=None shows the bar only once the work has run this long: quick calls stay quiet.
AUTO_DELAY = 2.0
# The postfix (failed, retries, requests/s) is redrawn at most this often.
POSTFIX_EVERY = 0.5


class Progress:
    """Rows done, with failed rows, retries and requests/s in the postfix.

    ``enabled=None`` shows the bar only once the call has run for ``AUTO_DELAY`` seconds;
    ``True`` shows it at once and leaves it on screen; ``False`` never shows it. ``update`` is
    called once per distinct request (``rows`` is how many rows shared its answer).
    """

    def __init__(self, total: int, enabled: bool | None) -> None:
        self._bar: Any = None
        self._failed = 0
        self._requests = 0
        self._retries = 0
        self._started = time.monotonic()
        self._last_postfix = 0.0
        if enabled is False or total == 0:
            return
        from tqdm.auto import tqdm

        self._bar = tqdm(
            total=total,
            unit="row",
            desc="pandas_async",
            delay=0.0 if enabled else AUTO_DELAY,
            leave=bool(enabled),
            dynamic_ncols=True,
        )

    @property
    def postfix(self) -> str:
        """``failed=1 retries=2 req/s=35.1``: what the bar shows after the row count."""
        seconds = time.monotonic() - self._started
        rate = self._requests / seconds if seconds > 0 else 0.0
        return f"failed={self._failed} retries={self._retries} req/s={rate:.1f}"

    def update(self, rows: int, outcome: Outcome) -> None:
        self._requests += outcome.attempts
        self._retries += outcome.attempts - min(outcome.pages, outcome.attempts)
        if not outcome.ok:
            self._failed += rows
        bar = self._bar
        if bar is None:
            return
        bar.update(rows)
        now = time.monotonic()
        if now - self._last_postfix > POSTFIX_EVERY:
            self._last_postfix = now
            bar.set_postfix_str(self.postfix, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(self.postfix, refresh=False)
            self._bar.close()
