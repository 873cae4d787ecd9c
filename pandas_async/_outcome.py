"""What came back for one request (``Answer``) and what happened to it (``Outcome``).

Value objects shared by the transport, the engine, the paginators and the frame code; no I/O.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import yarl

__all__ = ["Answer", "AnswerError", "Outcome", "Tally"]

_HOP_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


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


@dataclass
class Tally:
    """What a call's reports count, added up one request at a time (``add``), so a run that keeps
    no outcome per row (``to_parquet``) reports the same as one that keeps them all."""

    rows: int = 0
    failed: int = 0
    distinct: int = 0  # requests after dedupe (a paginated row counts once)
    requests: int = 0  # sent: first tries, retries and pages
    retries: int = 0
    pages: int = 0
    statuses: Counter[int | None] = field(default_factory=Counter)  # rows by final status
    causes: Counter[str] = field(default_factory=Counter)  # failed rows by cause
    latencies: array[float] = field(default_factory=lambda: array("d"))  # per sent request

    def add(self, outcome: Outcome, rows: int = 1) -> None:
        """Count one request's outcome, which answered ``rows`` rows (more than one: dedupe)."""
        self.rows += rows
        self.distinct += 1
        self.statuses[outcome.status] += rows
        if not outcome.ok:
            self.failed += rows
            self.causes[outcome.cause or "error"] += rows
        sent_pages = min(outcome.pages, outcome.attempts)
        self.requests += outcome.attempts
        self.retries += outcome.attempts - sent_pages
        self.pages += sent_pages
        if outcome.attempts:
            self.latencies.append(outcome.elapsed)

    @classmethod
    def of(cls, outcomes: Iterable[Outcome]) -> Tally:
        """The tally of per-row outcomes, where rows sharing a request share one object."""
        rows: dict[int, list[Any]] = {}
        for outcome in outcomes:
            rows.setdefault(id(outcome), [outcome, 0])[1] += 1
        tally = cls()
        for outcome, count in rows.values():
            tally.add(outcome, count)
        return tally


class Answer:
    """What came back for one request, whichever client sent it.

    ``status_code``, ``headers`` (case-insensitive) and ``content`` are always there; ``response``
    is the ``httpx.Response``, built on first use when aiohttp sent the request.
    """

    __slots__ = ("_response", "content", "headers", "method", "reason_phrase", "status_code", "url")

    def __init__(
        self,
        status_code: int,
        reason_phrase: str,
        headers: Mapping[str, str],
        content: bytes,
        method: str,
        url: str | yarl.URL,
        response: httpx.Response | None = None,
    ) -> None:
        self.status_code = status_code
        self.reason_phrase = reason_phrase
        self.headers = headers
        self.content = content
        self.method = method
        self.url = url
        self._response = response

    @classmethod
    def from_httpx(cls, response: httpx.Response) -> Answer:
        return cls(
            response.status_code,
            response.reason_phrase,
            response.headers,
            response.content,
            response.request.method,
            str(response.url),
            response,
        )

    @property
    def is_error(self) -> bool:
        return self.status_code >= 400

    @property
    def response(self) -> httpx.Response:
        if self._response is None:
            # aiohttp already decoded the body: drop the headers that describe the wire form.
            headers = [(k, v) for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS]
            self._response = httpx.Response(
                self.status_code,
                headers=headers,
                content=self.content,
                request=httpx.Request(self.method, str(self.url)),
                extensions={"reason_phrase": self.reason_phrase.encode("ascii", "replace")},
            )
        return self._response
