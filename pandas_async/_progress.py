"""A tqdm.auto progress bar (a widget in Jupyter, text in a terminal) for one fetch."""

from __future__ import annotations

import time
from typing import Any

from ._outcome import Outcome

__all__ = ["Progress"]

# progress=None shows the bar only once the work has run this long: quick calls stay quiet.
AUTO_DELAY = 2.0


class Progress:
    """Rows done, with failures and requests/s in the postfix. ``enabled=None``: show if slow."""

    def __init__(self, total: int, enabled: bool | None) -> None:
        self._bar: Any = None
        self._failed = 0
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

    def update(self, rows: int, outcome: Outcome) -> None:
        bar = self._bar
        if bar is None:
            return
        if not outcome.ok:
            self._failed += rows
        bar.update(rows)
        now = time.monotonic()
        if now - self._last_postfix > 0.5:
            self._last_postfix = now
            bar.set_postfix(failed=self._failed, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.set_postfix(failed=self._failed, refresh=False)
            self._bar.close()
