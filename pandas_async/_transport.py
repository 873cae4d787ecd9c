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

import functools
import re
import ssl
import urllib.request
from typing import Any

import aiohttp
import httpx
import yarl
from aiohttp.helpers import get_env_proxy_for_url

from ._options import UNSET
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

__all__ = ["AiohttpSender", "Answer", "HttpxSender", "Sender", "describe_exception", "is_transient"]

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
_CLEAN_URL = re.compile(r"https?://(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})*\Z")


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
    """Through the user's own ``httpx.AsyncClient``, which we neither configure nor close."""

    def __init__(self, client: httpx.AsyncClient, timeout: float | httpx.Timeout | None) -> None:
        self.client = client
        self._timeout: Any = httpx.USE_CLIENT_DEFAULT if timeout is None else httpx.Timeout(timeout)

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
        client = self.client
        if not client.follow_redirects:
            return Answer.from_httpx(await client.send(request))
        # The client follows redirects: do it here, hop by hop as httpx would, but drop every
        # secret header (not only Authorization) and cookie on the way to another origin.
        response = await client.send(request, follow_redirects=False)
        hops = 0
        while response.next_request is not None:
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
            response = await client.send(following, follow_redirects=False, auth=None)
        return Answer.from_httpx(response)


class AiohttpSender(Sender):
    """The default: one aiohttp session for the call, ``concurrency`` connections, TLS verified.

    Follows redirects, takes proxies from the environment (HTTP(S)_PROXY, NO_PROXY), keeps
    cookies for the call, and is closed at the end of it. It is made on the running loop, the
    one it belongs to.
    """

    def __init__(self, *, concurrency: int, timeout: float | httpx.Timeout | None) -> None:
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
        # Redirects are followed here, not by aiohttp: see _redirects for why.
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
                ) as response:
                    location = (
                        response.headers.get("Location")
                        if response.status in REDIRECT_STATUSES
                        else None
                    )
                    if location is None:
                        content = await response.read()
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
        raise httpx.TooManyRedirects(
            f"more than {MAX_REDIRECTS} redirects", request=httpx.Request(spec.method, url)
        )

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
    """A short, stable name for a failure: ``ReadTimeout``, ``ConnectError``..."""
    return type(exc).__name__
