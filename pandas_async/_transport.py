"""The default HTTP client: httpx in front, aiohttp underneath.

httpx stays the public face (``client=``, auth, timeouts, ``httpx.Response`` for ``parse=``), but
the default client sends through aiohttp: httpcore 1.0's pool spends CPU in proportion to
connections x queued requests, aiohttp's does not (see benchmarks/).

Why not the ``httpx-aiohttp`` package: it hands aiohttp the URL as a string, which yarl
re-normalises, decoding ``%2E%2E`` back to ``..`` and resolving it (``/echo/%2E%2E/x`` becomes
``/x``) and decoding ``%3D`` in paths; and it maps every aiohttp connection error to
``ConnectTimeout``. This transport passes the URL exactly as httpx encoded it, maps each aiohttp
error to its httpx counterpart once, here, and reads the body in one go (every answer is parsed
whole anyway).
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterator

import aiohttp
import httpx
import yarl

__all__ = ["AiohttpTransport", "default_client", "describe_exception", "is_transient"]

USER_AGENT = "pandas-async"

# Most specific first: the first match wins.
_ERROR_MAP: tuple[tuple[type[BaseException], type[httpx.TransportError]], ...] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.ServerTimeoutError, httpx.ReadTimeout),
    (TimeoutError, httpx.ReadTimeout),
    (aiohttp.ClientProxyConnectionError, httpx.ProxyError),
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),
    (aiohttp.ClientPayloadError, httpx.ReadError),
    (aiohttp.InvalidURL, httpx.UnsupportedProtocol),
    (aiohttp.ClientOSError, httpx.ReadError),
    (aiohttp.ClientConnectionError, httpx.NetworkError),
    (aiohttp.ClientError, httpx.TransportError),
)


@contextlib.contextmanager
def _map_errors(request: httpx.Request) -> Iterator[None]:
    try:
        yield
    except httpx.HTTPError:
        raise
    except (TimeoutError, aiohttp.ClientError) as exc:
        for source, target in _ERROR_MAP:
            if isinstance(exc, source):
                message = str(exc) or source.__name__
                raise target(message, request=request) from exc
        raise  # pragma: no cover - ClientError is the last entry


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport that sends with one ``aiohttp.ClientSession``.

    The session (and its connection pool, ``limit`` connections) is made on first use, on the
    running loop, and closed by ``aclose``: like any async client, it belongs to one loop.
    """

    def __init__(self, *, limit: int = 100, verify: bool | ssl.SSLContext = True) -> None:
        self._limit = limit
        self._ssl = (
            verify
            if isinstance(verify, ssl.SSLContext)
            else httpx.create_ssl_context(verify=verify)
        )
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._limit, limit_per_host=0, ssl=self._ssl)
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,  # httpx decodes Content-Encoding itself
                cookie_jar=aiohttp.DummyCookieJar(),  # httpx keeps the cookies
                timeout=aiohttp.ClientTimeout(total=None),
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._get_session()
        timeout = request.extensions.get("timeout", {})
        try:
            body: bytes | None = request.content
        except httpx.RequestNotRead:
            body = await request.aread()
        with _map_errors(request):
            async with session.request(
                request.method,
                yarl.URL(str(request.url), encoded=True),  # exactly as httpx encoded it
                headers=request.headers.multi_items(),
                data=body or None,
                allow_redirects=False,  # httpx follows redirects itself
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=timeout.get("pool"),
                    sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"),
                ),
            ) as response:
                content = await response.read()
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=httpx.ByteStream(content),
            request=request,
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": (response.reason or "").encode("ascii", "replace"),
            },
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def default_client(*, concurrency: int, timeout: httpx.Timeout | None) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` on the aiohttp transport, one connection per concurrent request."""
    return httpx.AsyncClient(
        transport=AiohttpTransport(limit=concurrency),
        timeout=timeout if timeout is not None else httpx.Timeout(10.0),
        follow_redirects=True,
        headers={"User-Agent": USER_AGENT},
    )


_TRANSIENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


def is_transient(exc: BaseException) -> bool:
    """A connection error or timeout: worth another attempt."""
    return isinstance(exc, _TRANSIENT)


def describe_exception(exc: BaseException) -> str:
    """A short, stable name for a failure: ``ReadTimeout``, ``ConnectError``..."""
    return type(exc).__name__
