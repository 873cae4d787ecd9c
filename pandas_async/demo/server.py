"""The demo API served on 127.0.0.1 by a daemon thread with its own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

from aiohttp import web

from .routes import DEFAULT_LATENCY, create_app, request_count

__all__ = ["HOST", "DemoServer", "serve"]

HOST = "127.0.0.1"


class DemoServer:
    """The demo API served on 127.0.0.1 by a daemon thread with its own event loop.

    ``latency`` (seconds, about +-25% per URL, deterministic) can be changed while it runs.
    ``request_count`` counts the requests it has received. Use it as a context manager, or
    ``start()`` / ``stop()``.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        latency: float = DEFAULT_LATENCY,
        candle_limit: tuple[int, float] | None = None,
    ) -> None:
        if latency < 0:
            raise ValueError(f"latency must be >= 0 seconds, got {latency!r}")
        self.latency = float(latency)
        self.candle_limit = candle_limit  # (n, seconds): /candles answers 429 beyond it
        self._requested_port = port
        self._port: int | None = None
        self._app: web.Application | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None

    @property
    def host(self) -> str:
        return HOST

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the demo server is not running")
        return self._port

    @property
    def url(self) -> str:
        """The base URL, without a trailing slash, e.g. ``http://127.0.0.1:53817``."""
        return f"http://{HOST}:{self.port}"

    @property
    def request_count(self) -> int:
        return request_count(self._app) if self._app is not None else 0

    def __repr__(self) -> str:
        where = self.url if self._port is not None else "not running"
        return f"DemoServer({where}, latency={self.latency})"

    def start(self) -> DemoServer:
        if self._thread is not None:
            raise RuntimeError("the demo server is already running")
        self._ready.clear()
        self._startup_error = None
        self._thread = threading.Thread(target=self._run, name="pandas-async-demo", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=15):
            raise RuntimeError("the demo server did not start within 15 seconds")
        if self._startup_error is not None:
            self._thread.join(timeout=5)
            self._thread = None
            raise RuntimeError(
                f"could not start the demo server on {HOST}:{self._requested_port}: "
                f"{self._startup_error}"
            ) from self._startup_error
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
        self._thread = None
        self._port = None

    def __enter__(self) -> DemoServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        self._app = create_app(lambda: self.latency, self.candle_limit)
        runner = web.AppRunner(self._app, access_log=None, shutdown_timeout=0.5)
        try:
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, HOST, self._requested_port)
            loop.run_until_complete(site.start())
            self._port = int(runner.addresses[0][1])
        except BaseException as exc:
            self._startup_error = exc
            loop.run_until_complete(runner.cleanup())
            loop.close()
            self._ready.set()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()


@contextlib.contextmanager
def serve(port: int = 0, latency: float = DEFAULT_LATENCY) -> Iterator[DemoServer]:
    """Run the demo API on 127.0.0.1 for the duration of a ``with`` block.

    ``port=0`` picks a free port; read it from ``server.url``. ``latency`` is the mean delay of
    each answer in seconds.
    """
    server = DemoServer(port=port, latency=latency)
    server.start()
    try:
        yield server
    finally:
        server.stop()
