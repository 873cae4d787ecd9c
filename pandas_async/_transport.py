"""Sending requests: through the user's ``httpx.AsyncClient``, or through aiohttp by default.

httpx is the public face: ``client=`` takes an ``httpx.AsyncClient`` (auth, base_url, proxies,
cookies, event hooks), ``timeout=`` an ``httpx.Timeout``, failures are httpx exceptions, and
``parse=`` callables and paginators receive an ``httpx.Response``.

Without ``client=``, requests go straight to one ``aiohttp.ClientSession``. Measured on 5,000
requests (benchmarks/), sending through ``httpx.AsyncClient`` costs ~670 us of CPU per request
with its default transport's pool growing O(connections x queued), and still ~350 us on an
aiohttp transport, against ~150 us for aiohttp alone: httpx's request/response models, header
handling and client machinery dominate. So the default path builds the URL with httpx (same
encoding of params as a user client gets) and hands it to aiohttp *as encoded* (a plain string
would let yarl decode ``%2E%2E`` and resolve it); an ``httpx.Response`` is built only when
something asks for one. aiohttp errors are mapped to their httpx counterparts once, here.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import re
import ssl
import time
import urllib.request
import zlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
import yarl
from aiohttp.helpers import get_env_proxy_for_url

from ._options import DEFAULT_MAX_BYTES, UNSET
from ._outcome import Answer
from ._redirects import (
    MAX_REDIRECTS,
    REDIRECT_STATUSES,
    keeps_secrets,
    origin,
    redirect_headers,
    redirect_method,
)
from ._requests import RequestSpec, url_with_params
from ._secrets import is_secret_name
from ._values import encode_json

__all__ = [
    "AiohttpSender",
    "Answer",
    "Http2Sender",
    "HttpxSender",
    "Sender",
    "Unrecoverable",
    "describe_exception",
    "is_transient",
]

USER_AGENT = "pandas-async"

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
# An absolute URL made only of characters that need no encoding (RFC 3986), and valid escapes.
# Possessive runs (++, *+): the engine takes a run of plain characters in one step and never
# backtracks into it (the two branches share no character), 3-24x less CPU than one character
# per iteration (0.6 against 1.8 us on a 34-character URL).
_CLEAN_URL = re.compile(r"https?://(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]++|%[0-9A-Fa-f]{2})*+\Z")


def _redirect_target(current: yarl.URL, location: str, url: str) -> yarl.URL:
    """Where a ``Location`` header points, resolved against the URL that answered."""
    try:
        target = current.join(yarl.URL(location))
    except (ValueError, TypeError):
        target = None
    if target is None or target.scheme not in ("http", "https") or not target.host:
        raise httpx.RemoteProtocolError(
            "redirect to an unusable location (not an http(s) URL)",
            request=httpx.Request("GET", url),
        )
    return target


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


async def read_capped(chunks: AsyncIterator[bytes], limit: int, status: int) -> bytes:
    """The whole body, or ``Unrecoverable`` as soon as it passes ``limit`` bytes: what was read
    so far is dropped, never the whole answer held."""
    parts: list[bytes] = []
    total = 0
    async for chunk in chunks:
        total += len(chunk)
        if total > limit:
            # Drop what was read now: the exception's traceback keeps this frame alive for as
            # long as anyone holds the exception (measured: peaks of 1.3 to 2.4 GB without it).
            parts.clear()
            raise too_large(limit, status)
        parts.append(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


async def _aiohttp_chunks(response: aiohttp.ClientResponse, first: bytes) -> AsyncIterator[bytes]:
    """The decoded body as it arrives, ``first`` already read (aiohttp inflates gzip in bounded
    steps)."""
    yield first
    while chunk := await response.content.readany():
        yield chunk


# Inflating one network read at once can make 64 MiB of a 64 KiB gzip read: inflate in steps.
_INFLATE_STEP = 1 << 20


async def _inflated(raw: AsyncIterator[bytes], encoding: str, status: int) -> AsyncIterator[bytes]:
    """A gzip or deflate body, inflated at most ``_INFLATE_STEP`` bytes at a time (httpx's own
    decoder inflates each network read whole)."""
    inflater: Any = None
    try:
        async for data in raw:
            if inflater is None:
                if encoding == "deflate" and data[:1] and data[0] & 0x0F != 8:
                    inflater = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate, as servers send
                else:
                    gzip = encoding in ("gzip", "x-gzip")
                    inflater = zlib.decompressobj(zlib.MAX_WBITS | (16 if gzip else 0))
            while True:
                out = inflater.decompress(data, _INFLATE_STEP)
                if out:
                    yield out
                data = inflater.unconsumed_tail
                if not data and len(out) < _INFLATE_STEP:
                    break
        if inflater is not None and (tail := inflater.flush()):
            yield tail
    except zlib.error:
        raise undecodable(encoding, status) from None


def _httpx_decoders() -> frozenset[str]:
    try:
        from httpx._decoders import SUPPORTED_DECODERS  # brotli/zstd only when installed
    except ImportError:  # pragma: no cover - a future httpx
        return frozenset({"identity", "gzip", "deflate"})
    return frozenset(SUPPORTED_DECODERS)


def _as_httpx_error(exc: BaseException, url: str) -> httpx.RequestError | None:
    """The httpx counterpart of an aiohttp failure (None: not a transport failure)."""
    for source, target in _ERROR_MAP:
        if isinstance(exc, source):
            return target(str(exc) or source.__name__, request=httpx.Request("GET", url))
    return None


class Sender:
    """Sends one ``RequestSpec`` (one attempt) and returns its ``Answer``."""

    async def send(self, spec: RequestSpec) -> Answer:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


class HttpxSender(Sender):
    """Through the user's own ``httpx.AsyncClient``, which we neither configure nor close.

    A number ``timeout=`` bounds the whole attempt (httpx's own timeouts bound each read, so a
    trickling body could go on for ever); the body is read in pieces and cut at ``max_bytes``.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        timeout: float | httpx.Timeout | None,
        max_bytes: int | None = DEFAULT_MAX_BYTES,
    ) -> None:
        self.client = client
        self._timeout: Any = httpx.USE_CLIENT_DEFAULT if timeout is None else httpx.Timeout(timeout)
        self._whole = None if timeout is None or isinstance(timeout, httpx.Timeout) else timeout
        self._max_bytes = max_bytes
        self._decoders = _httpx_decoders()

    async def send(self, spec: RequestSpec) -> Answer:
        headers = spec.headers
        content: bytes | None = None
        if spec.json is not UNSET and spec.json is not None:
            # Our JSON, not httpx's json.dumps: NaN as null, Decimal exact, as the default sender.
            content = encode_json(spec.json)
            headers = {"Content-Type": "application/json", **(headers or {})}
        request = self.client.build_request(
            spec.method,
            spec.url,
            params=spec.params,
            headers=headers,
            content=content,
            data=spec.data,
            timeout=self._timeout,
        )
        try:
            if self._whole is None:
                return await self._exchange(request)
            try:
                async with asyncio.timeout(self._whole):
                    return await self._exchange(request)
            except TimeoutError:
                raise httpx.ReadTimeout(
                    f"no complete answer within timeout={self._whole:g} s", request=request
                ) from None
        except (httpx.TransportError, httpx.DecodingError) as exc:
            explained = explain(exc)
            if explained is None:
                raise
            raise explained from exc

    async def _exchange(self, request: httpx.Request) -> Answer:
        client = self.client
        if not client.follow_redirects:
            return await self._read(await client.send(request, stream=True))
        # The client follows redirects: do it here, hop by hop as httpx would, but drop every
        # secret header (not only Authorization) and cookie on the way to another origin.
        response = await client.send(request, follow_redirects=False, stream=True)
        hops = 0
        while response.next_request is not None:
            await response.aclose()  # a redirect's own body is not wanted
            if hops >= client.max_redirects:
                raise httpx.TooManyRedirects(
                    f"more than {client.max_redirects} redirects", request=response.request
                )
            hops += 1
            following = response.next_request
            here, there = response.request.url, following.url
            if not keeps_secrets(
                origin(here.scheme, here.host, here.port),
                origin(there.scheme, there.host, there.port),
            ):
                for name in [k for k in following.headers if is_secret_name(k)]:
                    del following.headers[name]
            # auth=None: the client's auth was for the first request, as in httpx's own loop.
            response = await client.send(following, follow_redirects=False, auth=None, stream=True)
        return await self._read(response)

    async def _read(self, response: httpx.Response) -> Answer:
        """Read a streamed answer whole, at most ``max_bytes`` of it (after decoding)."""
        try:
            if self._max_bytes is None:
                await response.aread()
            else:
                # What httpx's own aread() does, with a ceiling: parse= callables read
                # response.content as usual.
                encoding = response.headers.get("content-encoding", "").strip().lower()
                length = response.headers.get("content-length", "")
                if not encoding and length.isdigit() and int(length) > self._max_bytes:
                    raise too_large(self._max_bytes, response.status_code)  # before a byte
                body = (
                    _inflated(response.aiter_raw(), encoding, response.status_code)
                    if encoding in ("gzip", "x-gzip", "deflate")
                    else response.aiter_bytes()
                )
                response._content = await read_capped(body, self._max_bytes, response.status_code)
        finally:
            await response.aclose()
        encodings = response.headers.get("content-encoding", "")
        for encoding in (e.strip().lower() for e in encodings.split(",")):
            if encoding and encoding not in self._decoders:  # httpx passed it through as is
                raise undecodable(encoding, response.status_code)
        return Answer.from_httpx(response)


class Http2Sender(HttpxSender):
    """``http2=True``: an ``httpx.AsyncClient(http2=True)`` of our own, made for one call on the
    loop that runs it and closed with the call. HTTP/2 is negotiated over TLS (ALPN); an
    ``http://`` URL or a server without HTTP/2 gets HTTP/1.1. Like the default sender: TLS verified
    (certifi's CAs, or ``SSL_CERT_FILE``), redirects followed (secrets dropped across origins, as
    for a client of yours), proxies and cookies as httpx takes them, ``concurrency`` connections,
    answers cut at ``max_bytes``.
    """

    def __init__(
        self,
        *,
        concurrency: int,
        timeout: float | httpx.Timeout | None,
        max_bytes: int | None = DEFAULT_MAX_BYTES,
    ) -> None:
        client = httpx.AsyncClient(
            http2=True,
            verify=tls_context(),
            follow_redirects=True,
            headers={"User-Agent": USER_AGENT},
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )
        super().__init__(client, 10.0 if timeout is None else timeout, max_bytes)

    async def aclose(self) -> None:
        await self.client.aclose()


class AiohttpSender(Sender):
    """The default: one aiohttp session for the call, ``concurrency`` connections, TLS verified.

    Follows redirects, takes proxies from the environment (HTTP(S)_PROXY, NO_PROXY), keeps
    cookies for the call, and is closed at the end of it. It is made on the running loop, the
    one it belongs to.
    """

    def __init__(
        self,
        *,
        concurrency: int,
        timeout: float | httpx.Timeout | None,
        max_bytes: int | None = DEFAULT_MAX_BYTES,
    ) -> None:
        self._max_bytes = max_bytes
        if isinstance(timeout, httpx.Timeout):  # per phase, as httpx means it
            self._timeout = aiohttp.ClientTimeout(
                total=None, connect=timeout.pool, sock_connect=timeout.connect,
                sock_read=timeout.read,
            )  # fmt: skip
        else:  # seconds for the whole attempt, first byte sent to last byte read
            seconds = 10.0 if timeout is None else timeout
            self._timeout = aiohttp.ClientTimeout(total=seconds, sock_connect=seconds)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=concurrency, limit_per_host=0),
            headers={"User-Agent": USER_AGENT},
            timeout=self._timeout,
            # Cookies are kept for the call on IP hosts too (127.0.0.1, an intranet address),
            # as on named ones; aiohttp's default jar drops them.
            cookie_jar=aiohttp.CookieJar(unsafe=True),
            # aiohttp's trust_env looks up proxies and .netrc in a thread on every request;
            # the environment's proxies are looked up here instead, once per scheme and host.
            trust_env=False,
        )
        self._env_proxies = bool(urllib.request.getproxies())
        self._proxies: dict[tuple[str, str | None], tuple[yarl.URL | None, Any]] = {}

    def _proxy_for(self, url: yarl.URL) -> tuple[yarl.URL | None, Any]:
        if not self._env_proxies:
            return None, None
        key = (url.scheme, url.host)
        if key not in self._proxies:
            try:
                self._proxies[key] = get_env_proxy_for_url(url)
            except LookupError:  # no proxy for this scheme, or the host is in NO_PROXY
                self._proxies[key] = (None, None)
        return self._proxies[key]

    async def send(self, spec: RequestSpec) -> Answer:
        url = spec.url
        clean = _CLEAN_URL.match(url) is not None
        quick = url_with_params(url, spec.params) if clean and spec.params else None
        if quick is not None:
            url = quick
        elif spec.params or not clean:
            # httpx encodes params and unsafe characters exactly as it would for a user's client.
            target = httpx.URL(url)
            url = str(target.copy_merge_params(spec.params) if spec.params else target)
        body: Any = None
        headers = spec.headers
        if spec.json is not UNSET and spec.json is not None:
            body = encode_json(spec.json)
            headers = {"Content-Type": "application/json", **(headers or {})}
        elif spec.data is not None:
            body = spec.data
        method = spec.method
        target_url = yarl.URL(url, encoded=True)  # exactly as encoded: no re-normalising
        # Redirects are followed here, not by aiohttp: see _redirects for why. A number timeout=
        # still bounds the whole attempt, every hop included: later hops get what is left of it.
        total = self._timeout.total
        deadline = None if total is None else time.monotonic() + total
        hop_timeout: dict[str, Any] = {}
        for _ in range(MAX_REDIRECTS + 1):
            proxy, proxy_auth = self._proxy_for(target_url)
            tls: ssl.SSLContext | bool = tls_context() if target_url.scheme == "https" else True
            try:
                async with self._session.request(
                    method,
                    target_url,
                    headers=headers,
                    data=body,
                    proxy=proxy,
                    proxy_auth=proxy_auth,
                    ssl=tls,
                    allow_redirects=False,
                    **hop_timeout,
                ) as response:
                    location = (
                        response.headers.get("Location")
                        if response.status in REDIRECT_STATUSES
                        else None
                    )
                    if location is None:
                        content = await self._read(response)
                        return Answer(
                            response.status,
                            response.reason or "",
                            response.headers,
                            content,
                            method,
                            response.url,
                        )
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                explained = explain(exc)
                if explained is not None:
                    raise explained from exc
                mapped = _as_httpx_error(exc, url)
                if mapped is None:  # pragma: no cover - ClientError is the last entry of the map
                    raise
                raise mapped from exc
            next_url = _redirect_target(target_url, location, url)
            new_method = redirect_method(status, method)
            dropped = new_method != method and body is not None
            headers = redirect_headers(
                headers,
                origin(target_url.scheme, target_url.host, target_url.port),
                origin(next_url.scheme, next_url.host, next_url.port),
                body_dropped=dropped,
            )
            if dropped:
                body = None
            method, target_url = new_method, next_url
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise httpx.ReadTimeout(
                        "timed out following redirects", request=httpx.Request(spec.method, url)
                    )
                hop_timeout = {
                    "timeout": aiohttp.ClientTimeout(
                        total=left, sock_connect=min(left, self._timeout.sock_connect or left)
                    )
                }
        raise httpx.TooManyRedirects(
            f"more than {MAX_REDIRECTS} redirects", request=httpx.Request(spec.method, url)
        )

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        limit = self._max_bytes
        if limit is None:
            return await response.read()
        length = response.content_length
        if length is not None and length > limit and "Content-Encoding" not in response.headers:
            response.close()  # known too large before a byte is read
            raise too_large(limit, response.status)
        try:
            first = await response.content.readany()
            if response.content.at_eof():  # the usual small answer: all there in one piece
                if len(first) > limit:
                    raise too_large(limit, response.status)
                return first
            return await read_capped(_aiohttp_chunks(response, first), limit, response.status)
        except Unrecoverable:
            response.close()  # the rest of the body is not wanted: drop the connection
            raise

    async def aclose(self) -> None:
        await self._session.close()


@functools.cache
def tls_context() -> ssl.SSLContext:
    """certifi's CAs, as httpx uses, verified. Made once per process, on the first https request:
    loading the CA bundle costs ~20 ms of CPU, which a call to an http:// API never pays."""
    return httpx.create_ssl_context()


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
