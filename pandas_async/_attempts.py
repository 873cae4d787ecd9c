"""One request's attempts, as the engine counts them: the bookkeeping and why it stops early.

A refusal for going too fast (a 429, or a 418 ban with ``Retry-After``) is the server's answer
to the pace, not to the row: the limiter slows the host down (a pause, a learned pace), and the
row tries again through it without using up one of its ``retries`` (``_retrying``). That is
bounded: at most ``FREE_REFUSALS`` such refusals per row, and only within ``Retry(max_wait=)``
seconds of its first failure; after that they count like any failure. ``retries=0`` still means
one attempt.
"""

from __future__ import annotations

from ._outcome import Answer

__all__ = ["FREE_REFUSALS", "Attempts", "HostPaused", "RetryableStatus", "http_cause"]

# Refusals for going too fast that a row may draw without using up a retry.
FREE_REFUSALS = 10


class RetryableStatus(Exception):
    """An answer whose status ``Retry(statuses=)`` retries (429, 503...); ``free``: a refusal
    for going too fast, retried without using up a retry (and without a backoff of its own:
    the host's pause or pace is the wait)."""

    def __init__(self, answer: Answer, retry_after: float | None, free: bool = False) -> None:
        self.answer = answer
        self.retry_after = retry_after
        self.free = free
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
