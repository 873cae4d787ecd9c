"""A real HTTP API for the test suite, served by aiohttp on 127.0.0.1 in a daemon thread.

The server runs its own event loop in its own thread, so tests can call the synchronous
``fetch`` (which may start loops of its own) and still reach it. Every request is recorded
in :class:`ServerState`, which tests read through :class:`TestServer` and reset between tests.

Endpoints (all answer JSON unless said otherwise):

``/users/{id}``             a user object with nested keys; 404 unless 1 <= id <= 1000
``/echo``, ``/echo/{tail}`` any method: method, paths, query, headers, JSON or form body
``/record?k=v``             a flat object built from the query (``{"k": "v"}``)
``/slow?delay=0.2``         sleeps, then answers
``/flaky/{key}``            fails the first ``fail`` calls per key with ``status`` (and an
                            optional ``Retry-After``: ``retry_after`` seconds, or
                            ``retry_after_date=1`` for an HTTP date 1-2 s ahead), then 200
``/drop``, ``/drop/{key}``  closes the connection without an answer (``fail=N``: first N per key)
``/status/{code}``          answers with that status
``/redirect?to=/path``      302 to ``to``
``/badjson``                200 with an invalid JSON body
``/list?n=3``               a list of n records
``/nested-list?n=2``        ``{"data": [...records...], "meta": {...}, "total": n}``
``/empty-list``             ``[]``
``/text?value=...``         text/plain
``/csv?n=2``                text/csv with columns a, b
``/blob?id=1&size=2000``    ``{"id": id, "data": "xxx..."}`` with ``size`` bytes of data (big
                            answers from small requests, for memory tests)
``/ratelimited?limit=10&period=1``  200, but counts arrivals breaking a sliding-window limit
``/host-cooldown``          the first call after a reset answers ``status`` (429) with
                            ``Retry-After: retry_after`` (1) and starts a cool-down; any request
                            arriving during it (after a short grace for requests already on
                            their way) is counted in ``cooldown_violations``

Paginated endpoints. Each ``{key}`` has its own dataset of ``n`` records (default 5)
``{"item": i, "label": "<key>:<i>"}`` for i = 1..n, served ``size`` (default 2) at a time:

``/pages/{key}?page=&size=``    a list; pages count from ``first`` (default 1); any method, and
                            ``page``/``size`` may come in a JSON body instead
``/offset/{key}?offset=&limit=`` ``{"items": [...], "meta": {"total": n, "offset": o}}``;
                            ``max_limit=`` caps the page size whatever ``limit`` asks
``/cursor/{key}?cursor=``       ``{"data": [...], "next_cursor": c, "paging": {"next": c}}``,
                            ``c`` null on the last page; ``loop=1`` repeats the cursor it was given
``/link/{key}?page=``           a list, with an RFC 8288 ``Link`` header (``rel="next"`` absent on
                            the last page); ``loop=1``: the last page links back to the first
``/nexturl/{key}?page=``        ``{"results": [...], "next": url, "links": {"next": url}}``; ``url``
                            is a path (default), ``style=absolute`` a full URL, ``style=query``
                            just ``?query``; null on the last page; ``loop=1`` as for ``/link``

Every paginated endpoint also takes ``fail_page=P`` (page P answers ``fail_status``, default 500;
``fail_times=K`` fails only its first K calls) and ``delay=`` seconds per page. Links carry every
query parameter of the request they answer, with ``page`` replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Requests arriving this long before a cool-down ends are not counted as violations: the
# server stamps the arrival a little after the client decided to send.
COOLDOWN_TOLERANCE = 0.05
# Nor are requests arriving this soon after the cool-down started: they were already on their
# way before the client could read the 429.
COOLDOWN_GRACE = 0.05


@dataclass(frozen=True)
class RequestRecord:
    """One request as the server saw it."""

    method: str
    path: str  # decoded path
    raw_path: str  # path as sent on the wire (percent-encoding kept), without the query
    query_string: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    arrival: float  # time.monotonic() when the server started handling it


@dataclass
class ServerState:
    """What the server observed since the last reset. Guarded by ``lock``."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    generation: int = 0
    requests: list[RequestRecord] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    cancelled: int = 0  # handlers cancelled because the client went away
    dropped: int = 0  # connections closed on purpose by /drop
    calls_per_key: dict[str, int] = field(default_factory=dict)
    ratelimit_violations: int = 0
    cooldown_start: float | None = None
    cooldown_until: float | None = None
    cooldown_violations: int = 0
    retry_after_waits: dict[str, float] = field(default_factory=dict)

    def reset(self) -> None:
        with self.lock:
            self.generation += 1
            self.requests = []
            self.in_flight = 0
            self.max_in_flight = 0
            self.cancelled = 0
            self.dropped = 0
            self.calls_per_key = {}
            self.ratelimit_violations = 0
            self.cooldown_start = None
            self.cooldown_until = None
            self.cooldown_violations = 0
            self.retry_after_waits = {}

    def next_call(self, key: str) -> int:
        with self.lock:
            n = self.calls_per_key.get(key, 0) + 1
            self.calls_per_key[key] = n
            return n


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(data, status=status, headers=headers)


def _float(request: web.Request, name: str, default: float) -> float:
    return float(request.query.get(name, default))


def _int(request: web.Request, name: str, default: int) -> int:
    return int(request.query.get(name, default))


def _drop_connection(request: web.Request, state: ServerState) -> web.Response:
    with state.lock:
        state.dropped += 1
    transport = request.transport
    if transport is not None:
        # abort() sends no response bytes at all: the client sees the connection die.
        transport.abort()
    raise _Dropped


class _Dropped(Exception):
    """Raised by a handler after it killed its own connection on purpose."""


def build_app(state: ServerState) -> web.Application:
    @web.middleware
    async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
        arrival = time.monotonic()
        body = await request.read()
        raw = request.raw_path.split("?", 1)[0]
        record = RequestRecord(
            method=request.method,
            path=request.path,
            raw_path=raw,
            query_string=request.query_string,
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            arrival=arrival,
        )
        with state.lock:
            generation = state.generation
            state.requests.append(record)
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
            start, until = state.cooldown_start, state.cooldown_until
            if (
                start is not None
                and until is not None
                and start + COOLDOWN_GRACE < arrival < until - COOLDOWN_TOLERANCE
            ):
                state.cooldown_violations += 1
        try:
            return await handler(request)
        except asyncio.CancelledError:
            with state.lock:
                if generation == state.generation:
                    state.cancelled += 1
            raise
        except _Dropped:
            # The transport is already gone; this stops aiohttp from trying to answer.
            raise asyncio.CancelledError from None
        finally:
            with state.lock:
                if generation == state.generation:
                    state.in_flight -= 1

    async def users(request: web.Request) -> web.Response:
        raw = request.match_info["id"]
        if not raw.isdigit() or not 1 <= int(raw) <= 1000:
            return _json({"detail": "user not found"}, status=404)
        n = int(raw)
        delay = _float(request, "delay", 0.0)
        if delay:
            await asyncio.sleep(delay)
        return _json(
            {
                "id": n,
                "name": f"User {n}",
                "email": f"user{n}@example.com",
                "address": {"city": f"City {n % 7}", "geo": {"lat": n + 0.5, "lng": -n - 0.25}},
            }
        )

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        ctype = request.content_type
        json_body: Any = None
        form: dict[str, str] | None = None
        if body and ctype == "application/json":
            json_body = await request.json()
        elif body and ctype == "application/x-www-form-urlencoded":
            form = dict(parse_qsl(body.decode()))
        return _json(
            {
                "method": request.method,
                "path": request.path,
                "raw_path": request.raw_path.split("?", 1)[0],
                "query_string": request.query_string,
                "query": dict(request.query),
                "headers": {k.lower(): v for k, v in request.headers.items()},
                "json": json_body,
                "form": form,
                "body": body.decode("utf-8", "replace"),
            }
        )

    async def record(request: web.Request) -> web.Response:
        return _json(dict(request.query))

    async def slow(request: web.Request) -> web.Response:
        delay = _float(request, "delay", 0.2)
        await asyncio.sleep(delay)
        return _json({"delay": delay, "id": request.query.get("id")})

    async def trickle(request: web.Request) -> web.StreamResponse:
        """A JSON list sent in ``chunks`` pieces, ``interval`` seconds apart."""
        chunks, interval = _int(request, "chunks", 6), _float(request, "interval", 0.1)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(b"[")
        for i in range(chunks):
            await asyncio.sleep(interval)
            await response.write(f'{"," if i else ""}{{"i": {i}}}'.encode())
        await response.write(b"]")
        await response.write_eof()
        return response

    async def flaky(request: web.Request) -> web.Response:
        key = request.match_info["key"]
        n = state.next_call(key)
        delay = _float(request, "delay", 0.0)
        if delay:
            await asyncio.sleep(delay)
        if n <= _int(request, "fail", 2):
            headers: dict[str, str] = {}
            if "retry_after" in request.query:
                headers["Retry-After"] = request.query["retry_after"]
            if request.query.get("retry_after_date"):
                # A whole second 1-2 s ahead (HTTP dates have a resolution of one second).
                target = float(int(time.time()) + 2)
                headers["Retry-After"] = email.utils.formatdate(target, usegmt=True)
                with state.lock:
                    state.retry_after_waits[key] = target - time.time()
            status = _int(request, "status", 503)
            return _json({"key": key, "call": n, "failed": True}, status=status, headers=headers)
        return _json({"key": key, "call": n, "failed": False})

    async def drop(request: web.Request) -> web.Response:
        key = request.match_info.get("key")
        if key is None:
            return _drop_connection(request, state)
        n = state.next_call(key)
        if n <= _int(request, "fail", 1):
            return _drop_connection(request, state)
        return _json({"key": key, "call": n})

    async def status(request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        return _json({"status": code}, status=code)

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query.get("to", "/users/1"))

    async def badjson(request: web.Request) -> web.Response:
        return web.Response(body=b'{"id": 1, "name": ', content_type="application/json")

    async def list_(request: web.Request) -> web.Response:
        n = _int(request, "n", 3)
        return _json([{"rank": i, "label": f"item {i}"} for i in range(1, n + 1)])

    async def nested_list(request: web.Request) -> web.Response:
        n = _int(request, "n", 2)
        return _json(
            {
                "data": [{"rank": i, "tag": {"color": f"c{i}"}} for i in range(1, n + 1)],
                "meta": {"page": 1, "source": "test"},
                "total": n,
            }
        )

    async def empty_list(request: web.Request) -> web.Response:
        return _json([])

    async def text(request: web.Request) -> web.Response:
        return web.Response(text=request.query.get("value", "hello world"))

    async def blob(request: web.Request) -> web.Response:
        size = _int(request, "size", 2000)
        return _json({"id": _int(request, "id", 0), "data": "x" * size})

    async def csv(request: web.Request) -> web.Response:
        n = _int(request, "n", 2)
        lines = ["a,b", *(f"{i},{chr(ord('w') + i)}" for i in range(1, n + 1))]
        return web.Response(text="\n".join(lines) + "\n", content_type="text/csv")

    async def ratelimited(request: web.Request) -> web.Response:
        limit = _int(request, "limit", 10)
        period = _float(request, "period", 1.0)
        tolerance = _float(request, "tolerance", 0.05)
        now = time.monotonic()
        with state.lock:
            recent = [
                r.arrival
                for r in state.requests
                if r.path == request.path and now - r.arrival < period - tolerance
            ]
            if len(recent) > limit:
                state.ratelimit_violations += 1
        return _json({"ok": True, "window_count": len(recent)})

    async def host_cooldown(request: web.Request) -> web.Response:
        retry_after = _float(request, "retry_after", 1.0)
        code = _int(request, "status", 429)
        with state.lock:
            first = state.cooldown_until is None
            if first:
                state.cooldown_start = time.monotonic()
                state.cooldown_until = state.cooldown_start + retry_after
        if first:
            return _json(
                {"cooldown": retry_after},
                status=code,
                headers={"Retry-After": request.query.get("retry_after", "1")},
            )
        return _json({"ok": True})

    # -- paginated datasets ------------------------------------------------------------------

    def dataset(request: web.Request) -> list[dict[str, Any]]:
        key = request.match_info["key"]
        return [{"item": i, "label": f"{key}:{i}"} for i in range(1, _int(request, "n", 5) + 1)]

    async def page_trouble(request: web.Request, page: int) -> web.Response | None:
        """Sleep ``delay``; answer ``fail_status`` when ``page`` is ``fail_page``."""
        delay = _float(request, "delay", 0.0)
        if delay:
            await asyncio.sleep(delay)
        if _int(request, "fail_page", 0) != page:
            return None
        call = state.next_call(f"{request.path}#page{page}")
        times = _int(request, "fail_times", 0)  # 0: every call
        if times and call > times:
            return None
        code = _int(request, "fail_status", 500)
        return _json({"page": page, "call": call, "failed": True}, status=code)

    def page_link(request: web.Request, page: int | None, *, absolute: bool = True) -> str:
        """This request's URL with ``page`` replaced (removed when ``None``)."""
        query = [(k, v) for k, v in request.query.items() if k != "page"]
        if page is not None:
            query.append(("page", str(page)))
        relative = request.path + ("?" + urlencode(query) if query else "")
        # next_host=localhost:PORT sends the next page to another origin (same server).
        host = request.query.get("next_host", request.host)
        return f"{request.scheme}://{host}{relative}" if absolute else relative

    def next_page(request: web.Request, page: int, size: int, total: int) -> int | None:
        """The page after ``page``; with ``loop=1`` the last page points back to the first."""
        if page * size < total:
            return page + 1
        return 0 if request.query.get("loop") else None  # 0: "the first page"

    async def pages(request: web.Request) -> web.Response:
        first = _int(request, "first", 1)
        body = await request.json() if request.body_exists else {}  # POST {"page": 2}
        page = int(body.get("page", _int(request, "page", first)))
        size = int(body.get("size", _int(request, "size", 2)))
        trouble = await page_trouble(request, page - first + 1)
        if trouble is not None:
            return trouble
        start = max(0, (page - first) * size)
        return _json(dataset(request)[start : start + size])

    async def offset(request: web.Request) -> web.Response:
        start = _int(request, "offset", 0)
        limit = min(_int(request, "limit", 10), _int(request, "max_limit", 1_000_000))
        trouble = await page_trouble(request, start // limit + 1)
        if trouble is not None:
            return trouble
        data = dataset(request)
        return _json(
            {"items": data[start : start + limit], "meta": {"total": len(data), "offset": start}}
        )

    async def cursor(request: web.Request) -> web.Response:
        given = request.query.get("cursor")
        if given is not None and not (given.startswith("c") and given[1:].isdigit()):
            return _json({"detail": f"bad cursor {given!r}"}, status=400)
        start = int(given[1:]) if given else 0
        size = _int(request, "size", 2)
        trouble = await page_trouble(request, start // size + 1)
        if trouble is not None:
            return trouble
        data = dataset(request)
        following: str | None = f"c{start + size}" if start + size < len(data) else None
        if given and request.query.get("loop"):
            following = given  # a broken API: the same cursor again
        return _json(
            {
                "data": data[start : start + size],
                "next_cursor": following,
                "paging": {"next": following},
            }
        )

    async def link(request: web.Request) -> web.Response:
        page = _int(request, "page", 1)
        size = _int(request, "size", 2)
        trouble = await page_trouble(request, page)
        if trouble is not None:
            return trouble
        data = dataset(request)
        last = max(1, -(-len(data) // size))
        links = [
            f'<{page_link(request, 1)}>; rel="first"',
            f'<{page_link(request, last)}>; rel="last"',
        ]
        following = next_page(request, page, size, len(data))
        if following is not None:
            target = page_link(request, following or None)
            links.insert(0, f'<{target}>; rel="next"')
        if page > 1:
            links.append(f'<{page_link(request, page - 1)}>; rel="prev"')
        start = (page - 1) * size
        return _json(data[start : start + size], headers={"Link": ", ".join(links)})

    async def nexturl(request: web.Request) -> web.Response:
        page = _int(request, "page", 1)
        size = _int(request, "size", 2)
        trouble = await page_trouble(request, page)
        if trouble is not None:
            return trouble
        data = dataset(request)
        following = next_page(request, page, size, len(data))
        url: str | None = None
        if following is not None:
            style = request.query.get("style", "path")
            url = page_link(request, following or None, absolute=style == "absolute")
            if style == "query":
                url = url[len(request.path) :] or "?"
        start = (page - 1) * size
        return _json({"results": data[start : start + size], "next": url, "links": {"next": url}})

    app = web.Application(middlewares=[observe])
    app.router.add_get("/users/{id}", users)
    app.router.add_route("*", "/echo", echo)
    app.router.add_route("*", "/echo/{tail:.*}", echo)
    app.router.add_route("*", "/record", record)
    app.router.add_get("/slow", slow)
    app.router.add_get("/trickle", trickle)
    app.router.add_route("*", "/flaky/{key}", flaky)
    app.router.add_get("/drop", drop)
    app.router.add_get("/drop/{key}", drop)
    app.router.add_route("*", "/status/{code:\\d+}", status)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/badjson", badjson)
    app.router.add_get("/list", list_)
    app.router.add_get("/nested-list", nested_list)
    app.router.add_get("/empty-list", empty_list)
    app.router.add_get("/text", text)
    app.router.add_get("/csv", csv)
    app.router.add_get("/blob", blob)
    app.router.add_get("/ratelimited", ratelimited)
    app.router.add_get("/host-cooldown", host_cooldown)
    app.router.add_route("*", "/pages/{key}", pages)
    app.router.add_get("/offset/{key}", offset)
    app.router.add_get("/cursor/{key}", cursor)
    app.router.add_get("/link/{key}", link)
    app.router.add_get("/nexturl/{key}", nexturl)
    return app


class TestServer:
    """The test API running in a daemon thread; read its observations, reset them per test."""

    __test__ = False  # not a pytest test class

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.state = ServerState()
        self.ssl_context = ssl_context  # serves HTTPS when given
        self.host = "127.0.0.1"
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        started = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                runner = web.AppRunner(
                    build_app(self.state), handler_cancellation=True, access_log=None
                )
                loop.run_until_complete(runner.setup())
                site = web.TCPSite(runner, self.host, 0, ssl_context=self.ssl_context)
                loop.run_until_complete(site.start())
                self._runner = runner
                self.port = runner.addresses[0][1]
            except BaseException as exc:
                errors.append(exc)
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="pandas-async-test-server", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("test server did not start")
        if errors:
            raise errors[0]

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

    def reset(self) -> None:
        self.state.reset()

    # -- observations ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def requests(self) -> list[RequestRecord]:
        with self.state.lock:
            return list(self.state.requests)

    def requests_to(self, prefix: str) -> list[RequestRecord]:
        """Requests whose decoded path starts with ``prefix``."""
        return [r for r in self.requests if r.path.startswith(prefix)]

    def count(self, prefix: str = "/") -> int:
        return len(self.requests_to(prefix))

    def arrivals(self, prefix: str = "/") -> list[float]:
        return sorted(r.arrival for r in self.requests_to(prefix))

    @property
    def last(self) -> RequestRecord:
        records = self.requests
        if not records:
            raise LookupError("the server has seen no request")
        return records[-1]

    @property
    def in_flight(self) -> int:
        with self.state.lock:
            return self.state.in_flight

    @property
    def max_in_flight(self) -> int:
        with self.state.lock:
            return self.state.max_in_flight

    @property
    def cancelled(self) -> int:
        with self.state.lock:
            return self.state.cancelled

    @property
    def ratelimit_violations(self) -> int:
        with self.state.lock:
            return self.state.ratelimit_violations

    @property
    def cooldown_violations(self) -> int:
        with self.state.lock:
            return self.state.cooldown_violations

    def retry_after_wait(self, key: str) -> float:
        """Seconds between the moment /flaky sent an HTTP-date Retry-After and that date."""
        with self.state.lock:
            return self.state.retry_after_waits[key]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 2.0) -> bool:
        """Poll ``predicate`` until it holds or ``timeout`` passes; return its last value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.01)
        return predicate()


@contextlib.contextmanager
def serve_in_thread() -> Iterator[TestServer]:
    server = TestServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
