"""What happened to one request (or one row's pages): shared by the engine and the frame code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["AnswerError", "Outcome"]


class AnswerError(Exception):
    """An answer arrived but could not be read (invalid JSON, a record_path it lacks...)."""

    def __init__(self, cause: str, detail: str = "") -> None:
        self.cause = cause
        super().__init__(f"{cause}: {detail}" if detail else cause)


@dataclass(slots=True)
class Outcome:
    """What happened to one request: its parsed answer, or why there is none."""

    value: Any = None
    status: int | None = None
    error: str | None = None  # short text, None on success
    cause: str | None = None  # what failures are counted by: "HTTP 404 Not Found", "ReadTimeout"
    elapsed: float = 0.0
    attempts: int = 0
    pages: int = 1  # pages fetched (paginate=), or 1

    @property
    def ok(self) -> bool:
        return self.error is None
