"""What came back for one request (``Answer``) and what happened to it (``Outcome``).

Value objects shared by the transport, the engine, the paginators and the frame code; no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import yarl

__all__ = ["Answer", "AnswerError", "Outcome"]

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
