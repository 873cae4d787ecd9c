"""One request's attempts, as the engine counts them: the bookkeeping and why it stops early."""

from __future__ import annotations

from ._outcome import Answer

__all__ = ["Attempts", "HostPaused", "RetryableStatus", "http_cause"]


class RetryableStatus(Exception):
    """An answer whose status ``Retry(statuses=)`` retries (429, 503...)."""

    def __init__(self, answer: Answer, retry_after: float | None) -> None:
        self.answer = answer
        self.retry_after = retry_after
        super().__init__(http_cause(answer))


class HostPaused(Exception):
    """The host asked for a pause longer than ``Retry(max_wait=)``: fail instead of waiting."""

    def __init__(self, cause: str) -> None:
        self.cause = cause
        super().__init__(cause)


class Attempts:
    """Per-row bookkeeping across attempts."""

    __slots__ = ("count", "started", "status")

    def __init__(self) -> None:
        self.count = 0
        self.started: float | None = None
        self.status: int | None = None  # of the latest answer


def http_cause(answer: Answer) -> str:
    """``"HTTP 404 Not Found"``: what failures of an answer are counted by."""
    return f"HTTP {answer.status_code} {answer.reason_phrase}".rstrip()
