"""Exceptions raised by pandas_async.

The tree::

    PandasAsyncError            base of everything raised on purpose by pandas_async
    └── FetchError              some rows failed; ``.frame`` holds everything fetched

Argument errors are plain ``KeyError`` (a column the frame lacks), ``ValueError`` (an impossible
value) and ``TypeError`` (a value of the wrong kind), raised before any request is sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FetchError", "PandasAsyncError"]


class PandasAsyncError(Exception):
    """Base class of the exceptions pandas_async raises on purpose."""


class FetchError(PandasAsyncError):
    """Some rows could not be fetched.

    Every row was attempted before this was raised. ``frame`` is the result as ``errors="collect"``
    would have returned it: fetched rows hold their answers, failed rows their input values, and the
    ``_status``, ``_error``, ``_elapsed`` and ``_attempts`` columns say what happened to each.
    ``counts`` maps each cause (``"HTTP 404 Not Found"``, ``"ReadTimeout"``...) to its
    number of rows.
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        counts: Mapping[str, int],
        total: int,
        where: str = "the fetched rows and the outcome of each are in .frame",
    ) -> None:
        self.frame = frame
        self.counts = dict(counts)
        self.total = total
        self.where = where
        failed = sum(self.counts.values())
        causes = ", ".join(
            f"{n} {cause}" for cause, n in sorted(self.counts.items(), key=lambda kv: -kv[1])
        )
        super().__init__(f"{failed} of {total} rows failed ({causes}); {where}")

    def __reduce__(
        self,
    ) -> tuple[object, ...]:  # keep the exception picklable (dask, multiprocessing)
        return (type(self), (self.frame, self.counts, self.total, self.where))
