"""Small helpers shared by the test modules."""

from __future__ import annotations

import uuid

import pandas as pd

import pandas_async

OUTCOME_COLUMNS = ["_status", "_error", "_elapsed", "_attempts"]


def fast_retry(attempts: int = 2) -> pandas_async.Retry:
    """A retry policy with tiny backoffs, so retries cost milliseconds."""
    return pandas_async.Retry(attempts=attempts, backoff=0.01)


def unique(prefix: str = "k") -> str:
    """A key no other test (or earlier run) used for the per-key counters of the server."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def users_frame(ids: list[int], index: list[object] | None = None) -> pd.DataFrame:
    return pd.DataFrame({"user_id": ids}, index=index)
