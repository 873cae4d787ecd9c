"""A small JSON API served by hypercorn over TLS, speaking HTTP/2 (ALPN h2) and HTTP/1.1.

Used by tests/test_http2.py (in a thread) and benchmarks/bench_http2.py (as a process:
``python tests/h2_server.py CERTFILE KEYFILE [--latency-ms N]`` prints ``READY <port>``).

``GET /users/{id}``       ``{"id", "name", "http_version"}`` after ``latency`` (``?delay_ms=``)
``GET /flaky/{key}``      503 on the first call per key, then 200
``GET /redirect?to=P``    302 to path P on this server
Every request's HTTP version is recorded in ``versions``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from hypercorn.asyncio import serve
from hypercorn.config import Config

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class H2App:
    def __init__(self, latency: float = 0.0) -> None:
        self.latency = latency
        self.versions: list[str] = []
        self.calls: Counter[str] = Counter()

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        version = scope["http_version"]
        self.versions.append(version)
        query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
        parts = scope["path"].strip("/").split("/")
        status, headers, doc = 200, [], {}  # type: ignore[var-annotated]
        if parts[0] == "users" and len(parts) == 2:
            delay = float(query.get("delay_ms", self.latency * 1000)) / 1000
            if delay:
                await asyncio.sleep(delay)
            doc = {"id": parts[1], "name": f"User {parts[1]}", "http_version": version}
        elif parts[0] == "flaky" and len(parts) == 2:
            self.calls[parts[1]] += 1
            status = 503 if self.calls[parts[1]] == 1 else 200
            doc = {"key": parts[1], "call": self.calls[parts[1]], "http_version": version}
        elif parts[0] == "redirect":
            status, headers = 302, [(b"location", query.get("to", "/users/1").encode())]
        else:
            status, doc = 404, {"error": "not found"}
        body = json.dumps(doc).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    *headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class H2Server:
    """Hypercorn on a free 127.0.0.1 port, in a daemon thread with its own loop."""

    def __init__(self, certfile: str, keyfile: str, latency: float = 0.0) -> None:
        self.app = H2App(latency)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.url = f"https://127.0.0.1:{self.port}"
        self.config = Config()
        self.config.bind = [f"fd://{self._sock.fileno()}"]
        self.config.certfile = certfile
        self.config.keyfile = keyfile
        self.config.accesslog = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="h2-server", daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._ready.set()
            await serve(self.app, self.config, shutdown_trigger=self._stop.wait)  # type: ignore[arg-type]

        asyncio.run(main())

    def start(self) -> H2Server:
        self._thread.start()
        self._ready.wait(10)
        _wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        with contextlib.suppress(OSError):  # hypercorn closes the socket it was given
            self._sock.close()


def _wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"the HTTP/2 test server did not start on port {port}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("certfile")
    parser.add_argument("keyfile")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    server = H2Server(args.certfile, args.keyfile, args.latency_ms / 1000).start()
    print(f"READY {server.port}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
