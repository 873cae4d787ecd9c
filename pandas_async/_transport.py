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
something asks for one. aiohttp errors are mapped to their httpx counterparts once, by
``_failures``; bodies are read within ``max_bytes`` by ``_bodies``.
"""

from __future__ import annotations

import asyncio
import functools
import re
import ssl
import time
import urllib.request
from typing import Any

import aiohttp
import httpx
import yarl
from aiohttp.helpers import get_env_proxy_for_url

from ._bodies import aiohttp_chunks, httpx_decoders, inflated, read_capped
from ._failures import Unrecoverable, as_httpx_error, explain, too_large, undecodable
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
from ._wire import HttpcoreWatch, OnWire, wire_trace

__all__ = [
    "AiohttpSender",
    "Answer",
    "Http2Sender",
    "HttpxSender",
    "Sender",
    "tls_context",
]

USER_AGENT = "pandas-async"

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


class Sender:
    """Sends one ``RequestSpec`` (one attempt) and returns its ``Answer``.

    ``on_wire`` (if given) is called once, as the request's headers go out: after the wait for a
    connection (TCP, TLS), so the limiter counts the request from when the server may see it.
    """

    async def send(self, spec: RequestSpec, on_wire: OnWire | None = None) -> Answer:
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
        self._decoders = httpx_decoders()

    async def send(self, spec: RequestSpec, on_wire: OnWire | None = None) -> Answer:
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
            extensions=None if on_wire is None else {"trace": HttpcoreWatch(on_wire)},
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
                    inflated(response.aiter_raw(), encoding, response.status_code)
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
        watch_wire: bool = False,
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
            # Only a paced call is told when requests go out: a trace costs every request.
            trace_configs=[wire_trace()] if watch_wire else None,
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

    async def send(self, spec: RequestSpec, on_wire: OnWire | None = None) -> Answer:
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
                    trace_request_ctx=on_wire,
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
                mapped = as_httpx_error(exc, url)
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
            return await read_capped(aiohttp_chunks(response, first), limit, response.status)
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
