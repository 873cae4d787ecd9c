"""Keep secrets out of error texts, reprs and log lines, and away from other origins.

A secret is the value of a header or query parameter whose name says it carries one
(``is_secret_name``), or the user name and password in a URL. Texts are scrubbed of every form a
secret takes on its way out: raw, percent-encoded (each style: ``quote``, ``quote_plus``, httpx's
query encoding, upper- or lower-case hex) and base64 (how HTTP basic auth carries a URL's user).
"""

from __future__ import annotations

import base64
import contextlib
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlencode, urlsplit, urlunsplit

import httpx

__all__ = [
    "MASK",
    "is_secret_name",
    "mask_headers",
    "mask_text",
    "mask_url",
    "query_pairs",
    "redact",
    "secret_forms",
    "secret_values",
    "without_secrets",
]

MASK = "***"
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
_SECRET_WORDS = re.compile(
    r"key|token|secret|passw|auth|signature|session|credential|sig$", re.IGNORECASE
)
_MIN_SECRET = 4  # shorter values would mask ordinary words in a text


def is_secret_name(name: str) -> bool:
    """Whether a header or query parameter of this name may carry a secret."""
    return name.lower() in _SECRET_HEADERS or _SECRET_WORDS.search(name) is not None


def mask_headers(headers: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: (MASK if is_secret_name(str(k)) else v) for k, v in (headers or {}).items()}


def without_secrets(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers, less every one that may carry a secret (for a request to another origin)."""
    return {k: v for k, v in headers.items() if not is_secret_name(k)}


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


def query_pairs(params: Any) -> list[tuple[str, str]]:
    """Query parameters in any form httpx takes (dict, pairs, query string) as pairs of text."""
    if params is None:
        return []
    try:
        return [(str(k), str(v)) for k, v in httpx.QueryParams(params).multi_items()]
    except Exception:  # whatever a callable returned: the request fails elsewhere, not here
        return []


def secret_values(headers: Any, params: Any, url: Any) -> list[str]:
    """The secret strings a request carries, to scrub from any text about it. Never raises."""
    found: list[str] = []
    try:
        if isinstance(headers, Mapping):
            found += [str(v) for k, v in headers.items() if is_secret_name(str(k))]
        found += [v for k, v in query_pairs(params) if is_secret_name(k)]
        parts = urlsplit(str(url))
        found += [v for k, v in parse_qsl(parts.query) if is_secret_name(k)]
        for userinfo in (parts.username, parts.password):
            if userinfo:
                found += [userinfo, unquote(userinfo)]
    except Exception:  # a text about a broken request must still be written
        pass
    more: list[str] = []
    for value in found:
        # "Bearer abc" -> "abc"; "sid=abc; theme=x" -> "abc" (a cookie's values).
        if " " in value:
            more.append(value.split(" ", 1)[1])
        for part in value.split(";"):
            _, eq, rest = part.strip().partition("=")
            if eq and rest:
                more.append(rest)
    return [v for v in found + more if len(v) >= _MIN_SECRET]


def secret_forms(secret: str) -> set[str]:
    """Every form in which ``secret`` may show up in a text."""
    forms = {
        secret,
        quote(secret, safe=""),
        quote(secret, safe="/"),
        quote(secret),
        quote_plus(secret),
        quote_plus(secret, safe="/"),
    }
    with contextlib.suppress(Exception):
        forms.add(str(httpx.QueryParams({"k": secret}))[2:])
    forms |= {_lower_hex(f) for f in forms if "%" in f}
    raw = secret.encode("utf-8", "surrogatepass")
    for encoded in (raw, raw + b":"):  # ":" : a URL user name, sent as basic auth "user:"
        b64 = base64.b64encode(encoded).decode()
        forms |= {b64, b64.rstrip("="), base64.urlsafe_b64encode(encoded).decode().rstrip("=")}
    return {f for f in forms if len(f) >= _MIN_SECRET}


def _lower_hex(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every form of every secret replaced by ``***``."""
    forms: set[str] = set()
    for secret in set(secrets):
        forms |= secret_forms(secret)
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, MASK)
    return text


_QUERY_PAIR = re.compile(r"([?&;])([^=&\s'\"#]+)=([^&\s'\"#]*)")
_HEADER_PAIR = re.compile(r"\(b'([^']+)', b'([^']*)'\)")
_USERINFO = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://)[^/?#@\s'\"]+@")


def mask_text(text: str) -> str:
    """Any text with secret-named query values, secret headers as ``(b'Name', b'value')`` (as
    httpcore logs them) and URL user info replaced by ``***``: for texts whose secrets we were
    not told, such as an HTTP library's own debug log."""
    text = _USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", text)
    text = _QUERY_PAIR.sub(
        lambda m: f"{m.group(1)}{m.group(2)}={MASK}" if is_secret_name(m.group(2)) else m.group(0),
        text,
    )
    return _HEADER_PAIR.sub(
        lambda m: f"(b'{m.group(1)}', b'{MASK}')" if is_secret_name(m.group(1)) else m.group(0),
        text,
    )


class RedactingFilter(logging.Filter):
    """Masks secret query values in the URLs httpx logs ("HTTP Request: GET https://...")."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and any(isinstance(a, httpx.URL) for a in args):
            record.args = tuple(mask_url(str(a)) if isinstance(a, httpx.URL) else a for a in args)
        return True


class TextRedactingFilter(logging.Filter):
    """Masks secrets in httpcore's debug trace, which logs response headers (``Location`` with
    the query a server echoed back, ``Set-Cookie``) as they came."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_text(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


# httpcore logs to these (a filter on a parent logger does not see a child's records).
_HTTPCORE_LOGGERS = ("httpcore", "httpcore.connection", "httpcore.http11", "httpcore.http2",
                     "httpcore.proxy")  # fmt: skip


def install_log_redaction() -> None:
    """Once per process: keep secrets out of httpx's and httpcore's own log lines."""
    logger = logging.getLogger("httpx")
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter())
    for name in _HTTPCORE_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, TextRedactingFilter) for f in logger.filters):
            logger.addFilter(TextRedactingFilter())
