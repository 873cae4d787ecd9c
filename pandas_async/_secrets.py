"""Keep secrets out of error texts, reprs and log lines."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

__all__ = ["MASK", "is_secret_name", "mask_headers", "mask_url", "redact"]

MASK = "***"
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
_SECRET_WORDS = re.compile(
    r"key|token|secret|passw|auth|signature|session|credential|sig$", re.IGNORECASE
)


def is_secret_name(name: str) -> bool:
    """Whether a header or query parameter of this name may carry a secret."""
    return name.lower() in _SECRET_HEADERS or _SECRET_WORDS.search(name) is not None


def mask_headers(headers: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: (MASK if is_secret_name(k) else v) for k, v in (headers or {}).items()}


def mask_url(url: str) -> str:
    """The URL with user info and secret-looking query values replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if is_secret_name(k) else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def secret_values(
    headers: Mapping[str, Any] | None, params: Mapping[str, Any] | None, url: str
) -> list[str]:
    """The secret strings a request carries, to scrub from any text about it."""
    found = [str(v) for k, v in (headers or {}).items() if is_secret_name(k)]
    found += [str(v) for k, v in (params or {}).items() if is_secret_name(k)]
    try:
        parts = urlsplit(url)
        found += [v for k, v in parse_qsl(parts.query) if is_secret_name(k)]
        if parts.password:
            found.append(parts.password)
    except ValueError:
        pass
    # Authorization: "Bearer abc" -> also scrub "abc" on its own.
    found += [v.split(" ", 1)[1] for v in found if " " in v]
    return [v for v in found if len(v) >= 4]


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in sorted(set(secrets), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


class RedactingFilter(logging.Filter):
    """Masks secret query values in the URLs httpx logs ("HTTP Request: GET https://...")."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and any(isinstance(a, httpx.URL) for a in args):
            record.args = tuple(mask_url(str(a)) if isinstance(a, httpx.URL) else a for a in args)
        return True


def install_log_redaction() -> None:
    """Once per process: keep secrets out of httpx's own request log lines."""
    logger = logging.getLogger("httpx")
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter())
