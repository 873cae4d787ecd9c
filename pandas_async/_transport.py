"""The default HTTP client, and what a transport failure is called.

httpx stays the public face (``client=``, auth, timeouts, ``httpx.Response``), but the default
client sends through aiohttp (the ``httpx-aiohttp`` transport): httpcore 1.0's pool spends CPU
in proportion to connections x queued requests, aiohttp's does not. See benchmarks/.
"""

from __future__ import annotations

import asyncio

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

__all__ = ["default_client", "describe_exception", "is_transient"]

USER_AGENT = "pandas-async"


def default_client(*, concurrency: int, timeout: httpx.Timeout | None) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` on the aiohttp transport, one connection per concurrent request."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(
        transport=AiohttpTransport(limits=limits),
        timeout=timeout if timeout is not None else httpx.Timeout(10.0),
        follow_redirects=True,
        headers={"User-Agent": USER_AGENT},
    )


# httpx-aiohttp maps every aiohttp connection error to ConnectTimeout; name the real cause instead.
_AIOHTTP_NAMES: tuple[tuple[type[BaseException], str], ...] = (
    (aiohttp.ConnectionTimeoutError, "ConnectTimeout"),
    (aiohttp.SocketTimeoutError, "ReadTimeout"),
    (aiohttp.ServerTimeoutError, "ReadTimeout"),
    (aiohttp.ServerDisconnectedError, "RemoteProtocolError"),
    (aiohttp.ClientConnectorError, "ConnectError"),
    (aiohttp.ClientPayloadError, "ReadError"),
    (aiohttp.ClientOSError, "ReadError"),
    (aiohttp.ClientConnectionError, "NetworkError"),
)

_TRANSIENT = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
    aiohttp.ClientConnectionError,
    aiohttp.ClientPayloadError,
    asyncio.TimeoutError,
    ConnectionError,
)


def _root(exc: BaseException) -> BaseException:
    cause = exc.__cause__
    return cause if isinstance(cause, aiohttp.ClientError) else exc


def is_transient(exc: BaseException) -> bool:
    """A connection error or timeout: worth another attempt."""
    return isinstance(exc, _TRANSIENT) or isinstance(_root(exc), _TRANSIENT)


def describe_exception(exc: BaseException) -> str:
    """A short, stable name for a transport failure: ``ReadTimeout``, ``ConnectError``..."""
    root = _root(exc)
    for kind, name in _AIOHTTP_NAMES:
        if isinstance(root, kind):
            return name
    if isinstance(root, asyncio.TimeoutError) and not isinstance(root, httpx.HTTPError):
        return "ReadTimeout"
    return type(exc).__name__
