"""A loopback JSON API for the benchmarks, meant to run in its own process.

    python benchmarks/server.py --latency-ms 50 [--port 0] [--no-uvloop]

Binds 127.0.0.1 (port 0 picks a free one) and prints ``READY <port>`` on stdout once it
accepts connections, so a parent process can wait for that line. Stops on SIGTERM/SIGINT.

Endpoints:

``GET /users/{id}``   a user object with nested keys, answered after ``--latency-ms``
                      (``?delay_ms=`` overrides it per request). The JSON body is encoded once
                      per id and cached, so the server spends almost no CPU per request.
``GET /_stats``       ``{"requests": n, "distinct": k}``: /users requests served since the last
                      reset, and how many distinct ids they asked for
``POST /_reset``      zero the counters
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

from aiohttp import web

CITIES = ("Lisbon", "Oslo", "Quito", "Hanoi", "Accra", "Perth", "Lima", "Turin")


def user_body(key: str) -> bytes:
    """The answer for one id: about 300 bytes of JSON with two nested objects and a list."""
    try:
        n = int(key)
    except ValueError:
        n = sum(key.encode())
    doc = {
        "id": n,
        "name": f"User {n}",
        "email": f"user{n}@example.org",
        "active": n % 3 != 0,
        "score": round((n * 7919 % 10000) / 100, 2),
        "address": {
            "city": CITIES[n % len(CITIES)],
            "zip": f"{n % 100000:05d}",
            "geo": {"lat": round(n % 180 - 90 + 0.5, 3), "lng": round(n % 360 - 180 + 0.25, 3)},
        },
        "company": {"name": f"Company {n % 97}", "tier": ("free", "pro", "team")[n % 3]},
        "tags": [f"t{n % 5}", f"t{n % 7}"],
    }
    return json.dumps(doc, separators=(",", ":")).encode()


class State:
    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.requests = 0
        self.ids: set[str] = set()
        self.bodies: dict[str, bytes] = {}


def make_app(state: State) -> web.Application:
    bodies = state.bodies
    ids = state.ids

    async def user(request: web.Request) -> web.Response:
        state.requests += 1
        key = request.match_info["id"]
        ids.add(key)
        delay = state.latency
        if request.query_string:
            raw = request.query.get("delay_ms")
            if raw is not None:
                delay = float(raw) / 1000
        if delay > 0:
            await asyncio.sleep(delay)
        body = bodies.get(key)
        if body is None:
            body = bodies[key] = user_body(key)
        return web.Response(body=body, content_type="application/json")

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({"requests": state.requests, "distinct": len(state.ids)})

    async def reset(request: web.Request) -> web.Response:
        state.requests = 0
        state.ids.clear()
        return web.json_response({"requests": 0, "distinct": 0})

    app = web.Application()
    app.router.add_get("/users/{id}", user)
    app.router.add_get("/_stats", stats)
    app.router.add_post("/_reset", reset)
    return app


async def serve(latency_ms: float, port: int) -> None:
    state = State(latency_ms / 1000)
    runner = web.AppRunner(make_app(state), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=4096, reuse_address=True)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"READY {bound}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before answering")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--no-uvloop", action="store_true", help="plain asyncio even if uvloop")
    args = parser.parse_args(argv)
    runner_factory = None
    if not args.no_uvloop:
        try:
            import uvloop

            runner_factory = uvloop.new_event_loop
        except ImportError:
            pass
    with asyncio.Runner(loop_factory=runner_factory) as runner:
        runner.run(serve(args.latency_ms, args.port))
    sys.exit(0)


if __name__ == "__main__":
    main()
