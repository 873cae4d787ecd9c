"""What a failed attempt means: aiohttp's failures as their httpx counterparts (mapped once,
here), the failures no retry can heal (``Unrecoverable``, told in words a user acts on), and which
failures are worth another attempt."""

from __future__ import annotations

import errno
import re
import ssl

import aiohttp
import httpx

__all__ = [
    "Unrecoverable",
    "as_httpx_error",
    "describe_exception",
    "explain",
    "is_transient",
    "too_large",
    "undecodable",
]

# Most specific first: the first match wins.
_ERROR_MAP: tuple[tuple[type[BaseException], type[httpx.RequestError]], ...] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.ServerTimeoutError, httpx.ReadTimeout),
    (TimeoutError, httpx.ReadTimeout),
    (aiohttp.ClientProxyConnectionError, httpx.ProxyError),
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.TooManyRedirects, httpx.TooManyRedirects),
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),
    (aiohttp.ClientPayloadError, httpx.ReadError),
    (aiohttp.InvalidURL, httpx.UnsupportedProtocol),
    (aiohttp.ClientOSError, httpx.ReadError),
    (aiohttp.ClientConnectionError, httpx.NetworkError),
    (aiohttp.ClientError, httpx.TransportError),
)


class Unrecoverable(Exception):
    """A failure another attempt cannot heal, told in words; never retried.

    ``cause`` is what failures are counted by (``"answer too large"``), ``str()`` the detail a
    user acts on, ``status`` the HTTP status when an answer had begun.
    """

    def __init__(self, cause: str, detail: str = "", status: int | None = None) -> None:
        self.cause = cause
        self.status = status
        super().__init__(detail)


def too_large(limit: int, status: int | None) -> Unrecoverable:
    return Unrecoverable(
        "answer too large",
        f"more than {limit:,} bytes after decompression (max_bytes={limit}); stopped reading. "
        "Raise max_bytes= or pass max_bytes=None to lift the limit",
        status,
    )


def undecodable(encoding: str, status: int | None) -> Unrecoverable:
    hint = {
        "br": "install the brotli package to read it",
        "zstd": "install the zstandard package to read it",
    }.get(encoding, "the body is not in the encoding its header declares")
    return Unrecoverable(
        f"undecodable body (content-encoding: {encoding})",
        f"the answer says Content-Encoding: {encoding}, which could not be decoded; {hint}",
        status,
    )


_ENCODING_IN_MESSAGE = re.compile(r"content-encoding: (?:[\w-]+ \()?([\w-]+)\)?", re.IGNORECASE)


def explain(exc: BaseException) -> Unrecoverable | None:
    """The cause buried in a transport failure's chain, when no retry can heal it: an untrusted
    certificate, no file descriptors left, a body in an encoding that cannot be decoded."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            # aiohttp's ClientConnectorCertificateError is one too, with ssl's error inside
            inner = getattr(current, "certificate_error", current)
            detail = getattr(inner, "verify_message", None) or str(inner)
            return Unrecoverable(
                "certificate verify failed",
                f"{detail}; the server's TLS certificate is not trusted. Fix the certificate, "
                "or pass client=httpx.AsyncClient(verify=...) with the CA that signed it",
            )
        if isinstance(current, OSError) and current.errno == errno.EMFILE:
            return Unrecoverable(
                "Too many open files",
                "the process ran out of file descriptors; lower concurrency= or raise the "
                "limit (ulimit -n)",
            )
        message = str(current)
        if "decode content-encoding" in message or isinstance(current, httpx.DecodingError):
            found = _ENCODING_IN_MESSAGE.search(message)
            return undecodable(found.group(1).lower() if found else "unknown", None)
        current = current.__cause__ or current.__context__
    return None


def as_httpx_error(exc: BaseException, url: str) -> httpx.RequestError | None:
    """The httpx counterpart of an aiohttp failure (None: not a transport failure)."""
    for source, target in _ERROR_MAP:
        if isinstance(exc, source):
            return target(str(exc) or source.__name__, request=httpx.Request("GET", url))
    return None


_TRANSIENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


def is_transient(exc: BaseException) -> bool:
    """A connection error or timeout: worth another attempt."""
    return isinstance(exc, _TRANSIENT)


def describe_exception(exc: BaseException) -> str:
    """A short, stable name for a failure: ``ReadTimeout``, ``ConnectError``, or the cause of
    an ``Unrecoverable`` in words (``answer too large``)."""
    if isinstance(exc, Unrecoverable):
        return exc.cause
    return type(exc).__name__
