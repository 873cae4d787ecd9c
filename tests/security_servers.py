"""Small real HTTP servers for the security and value tests (two origins, HTTPS, odd answers).

Each ``EchoServer`` is an aiohttp app on 127.0.0.1 in a daemon thread. Endpoints:

``/echo``                   any method: method, query string (as sent), headers, body (as text)
``/to?url=U&status=302``    redirects to ``U`` (absolute or relative) with that status, after
                            ``delay`` seconds if given
``/loop``                   redirects to itself, keeping its query string, forever
``/deep?n=1000``            an object nested ``n`` levels deep: ``{"a": {"a": ... 1}}``
``/bigint``                 ``{"id": 123456789012345678901234567890, "small": 7}``
``/fail?status=500``        answers that status with a JSON body naming nothing secret
                            (and ``Retry-After: retry_after`` when given)
``/items?owner=x``          ``{"items": [{"n": 1}, {"n": 2}], "owner": x}`` (no ``owner`` when
                            the query has none)

Every request is recorded in ``requests`` (method, path, query string, lower-cased headers, body).
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from dataclasses import dataclass
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query_string: str
    headers: dict[str, str]
    body: bytes


class EchoServer:
    __test__ = False

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.ssl_context = ssl_context
        self.port = 0
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def reset(self) -> None:
        with self._lock:
            self.requests = []

    def seen(self, path: str) -> list[Seen]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def _app(self) -> web.Application:
        @web.middleware
        async def record(request: web.Request, handler: Any) -> web.StreamResponse:
            body = await request.read()
            seen = Seen(
                request.method,
                request.path,
                request.raw_path.partition("?")[2],
                {k.lower(): v for k, v in request.headers.items()},
                body,
            )
            with self._lock:
                self.requests.append(seen)
            result: web.StreamResponse = await handler(request)
            return result

        async def echo(request: web.Request) -> web.Response:
            body = await request.read()
            return web.json_response(
                {
                    "method": request.method,
                    "query_string": request.raw_path.partition("?")[2],  # as sent
                    "headers": {k.lower(): v for k, v in request.headers.items()},
                    "body": body.decode("utf-8", "replace"),
                }
            )

        async def to(request: web.Request) -> web.Response:
            await asyncio.sleep(float(request.query.get("delay", "0")))
            status = int(request.query.get("status", "302"))
            return web.Response(status=status, headers={"Location": request.query["url"]})

        async def loop(request: web.Request) -> web.Response:
            return web.Response(status=302, headers={"Location": str(request.rel_url)})

        async def deep(request: web.Request) -> web.Response:
            n = int(request.query.get("n", "1000"))
            return web.Response(
                body=b'{"a": ' * n + b"1" + b"}" * n, content_type="application/json"
            )

        async def bigint(request: web.Request) -> web.Response:
            return web.Response(
                body=b'{"id": 123456789012345678901234567890, "small": 7, "neg": '
                b"-98765432109876543210987}",
                content_type="application/json",
            )

        async def items(request: web.Request) -> web.Response:
            answer: dict[str, Any] = {"items": [{"n": 1}, {"n": 2}]}
            if "owner" in request.query:
                answer["owner"] = request.query["owner"]
            return web.json_response(answer)

        async def fail(request: web.Request) -> web.Response:
            headers = {}
            if "retry_after" in request.query:
                headers["Retry-After"] = request.query["retry_after"]
            status = int(request.query["status"])
            return web.json_response({"detail": "no"}, status=status, headers=headers)

        app = web.Application(middlewares=[record])
        app.router.add_route("*", "/fail", fail)
        app.router.add_route("*", "/echo", echo)
        app.router.add_route("*", "/to", to)
        app.router.add_route("*", "/loop", loop)
        app.router.add_get("/deep", deep)
        app.router.add_get("/bigint", bigint)
        app.router.add_get("/items", items)
        return app

    def start(self) -> EchoServer:
        started = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            runner = web.AppRunner(self._app(), access_log=None)
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
            loop.run_until_complete(site.start())
            self.port = runner.addresses[0][1]
            started.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="pandas-async-echo", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("echo server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
