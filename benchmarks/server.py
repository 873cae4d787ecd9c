"""A loopback JSON API for the benchmarks, meant to run in its own process.

    python benchmarks/server.py --latency-ms 50 [--port 0] [--no-uvloop]

Binds 127.0.0.1 (port 0 picks a free one) and prints ``READY <port>`` on stdout once it
accepts connections, so a parent process can wait for that line. Stops on SIGTERM/SIGINT.

Endpoints:

``GET /users/{id}``   a user object with nested keys, answered after ``--latency-ms``
                      (``?delay_ms=`` overrides it per request). The JSON body is encoded once
                      per id and cached, so the server spends almost no CPU per request.
``GET /pages/{key}?page=p&size=s&n=k``  page ``p`` (from 1) of ``k`` records (default 50), ``s`` a
                      page (default 10), as a JSON list; ``[]`` past the end. Encoded per page.
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


class HttpProtocol(asyncio.Protocol):
    """A bare HTTP/1.1 keep-alive server: parses just enough of each request to answer it.

    aiohttp.web spends ~150-250 us of CPU per request; at 100 requests answered in one burst
    that is 15-25 ms in which the client waits for the server, not for the latency under test.
    This costs a few microseconds, so the benchmark measures the clients.
    """

    def __init__(self, state: State) -> None:
        self.state = state
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip() or 0)
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            method, target, _ = head.split(" ", 2)
            self.handle(method, target)

    def handle(self, method: str, target: str) -> None:
        state = self.state
        path, _, query = target.partition("?")
        if path.startswith("/users/"):
            state.requests += 1
            key = path[len("/users/") :]
            state.ids.add(key)
            body = state.bodies.get(key)
            if body is None:
                body = state.bodies[key] = user_body(key)
            delay = state.latency
            for pair in query.split("&") if query else ():
                name, _, value = pair.partition("=")
                if name == "delay_ms":
                    delay = float(value) / 1000
            if delay > 0:
                asyncio.get_running_loop().call_later(delay, self.respond, 200, body)
            else:
                self.respond(200, body)
        elif path.startswith("/pages/"):
            state.requests += 1
            params = dict(pair.partition("=")[::2] for pair in query.split("&") if pair)
            page, size = int(params.get("page", 1)), int(params.get("size", 10))
            total = int(params.get("n", 50))
            key = f"{path}?{page}/{size}/{total}"
            body = state.bodies.get(key)
            if body is None:
                first = (page - 1) * size
                items = [
                    {"item": i, "label": f"{path[7:]}:{i}", "value": i * 0.5}
                    for i in range(first, min(first + size, total))
                ]
                body = state.bodies[key] = json.dumps(items, separators=(",", ":")).encode()
            if state.latency > 0:
                asyncio.get_running_loop().call_later(state.latency, self.respond, 200, body)
            else:
                self.respond(200, body)
        elif path == "/_stats":
            stats = {"requests": state.requests, "distinct": len(state.ids)}
            self.respond(200, json.dumps(stats).encode())
        elif path == "/_reset" and method == "POST":
            state.requests = 0
            state.ids.clear()
            self.respond(200, b'{"requests":0,"distinct":0}')
        else:
            self.respond(404, b'{"error":"not found"}')

    def respond(self, status: int, body: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        reason = "OK" if status == 200 else "Not Found"
        transport.write(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(latency_ms: float, port: int, warm_ids: int = 0) -> None:
    state = State(latency_ms / 1000)
    for n in range(warm_ids):  # bodies made before READY: no client pays for their first use
        state.bodies[str(n)] = user_body(str(n))
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: HttpProtocol(state), "127.0.0.1", port, backlog=4096, reuse_address=True
    )
    bound = server.sockets[0].getsockname()[1]
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"READY {bound}", flush=True)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before answering")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--no-uvloop", action="store_true", help="plain asyncio even if uvloop")
    parser.add_argument("--warm-ids", type=int, default=0, help="encode /users/0..N-1 up front")
    args = parser.parse_args(argv)
    runner_factory = None
    if not args.no_uvloop:
        try:
            import uvloop

            runner_factory = uvloop.new_event_loop
        except ImportError:
            pass
    with asyncio.Runner(loop_factory=runner_factory) as runner:
        runner.run(serve(args.latency_ms, args.port, args.warm_ids))
    sys.exit(0)


if __name__ == "__main__":
    main()
