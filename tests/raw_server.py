"""A bare asyncio HTTP/1.1 server on 127.0.0.1 for answers aiohttp.web will not make on cue:
huge bodies streamed without being held, gzip bombs, trickles, undecodable encodings, raw
redirects, cookies, odd charsets. It runs its own loop in a daemon thread (or a child process,
for the memory cases), answers one request per connection and closes it.

Routes (query parameters in brackets):

``/big[size]``            a JSON document of ``size`` bytes (``[`` + spaces + ``]``), streamed
                          in 1 MiB pieces with a Content-Length; ``chunked=1``: chunked instead
``/bomb[size]``           the same document gzip-compressed (Content-Encoding: gzip); the
                          compressed body is made once per size and kept
``/trickle[bytes,every]`` a Content-Length of ``bytes``, then one byte every ``every`` seconds
``/br``                   ``Content-Encoding: br`` over bytes that are not brotli
``/redirect[to,status]``  ``status`` (302) with ``Location: to``
``/cookie/set``           sets ``sid=s3``; ``/cookie/get`` answers ``{"cookie": <Cookie header>}``
``/latin1.csv``           ``text/csv; charset=iso-8859-1`` with a non-ASCII name
``/bom.json``             a JSON object behind a UTF-8 byte-order mark
``/same[page]``           the same two records whatever ``page`` asks (an API ignoring it)
``/echo``                 ``{"path": <raw request target>}``
"""

from __future__ import annotations

import asyncio
import json
import struct
import threading
import zlib
from urllib.parse import parse_qs, urlsplit

__all__ = ["RawServer", "bomb"]

PIECE = 1 << 20
_bombs: dict[int, bytes] = {}
_bomb_lock = threading.Lock()


def bomb(size: int) -> bytes:
    """``[`` + spaces + ``]`` (``size`` bytes, a multiple of 1 MiB) gzip-compressed, made once
    per size. Each 1 MiB piece is deflated after a full flush, which resets the compressor, so
    every piece of spaces compresses to the same bytes: compress one, repeat it (seconds saved
    for a 1 GiB bomb, which would take ~7 s to compress)."""
    if size % PIECE or size < 2 * PIECE:
        raise ValueError("bomb(size) takes a multiple of 1 MiB, at least 2 MiB")
    with _bomb_lock:
        if size not in _bombs:
            spaces = b" " * PIECE
            first, last = b"[" + spaces[1:], spaces[:-1] + b"]"
            z = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)  # raw deflate
            parts = [z.compress(first) + z.flush(zlib.Z_FULL_FLUSH)]
            middle = z.compress(spaces) + z.flush(zlib.Z_FULL_FLUSH)
            again = z.compress(spaces) + z.flush(zlib.Z_FULL_FLUSH)
            assert again == middle, "a full flush should make pieces compress alike"
            count = size // PIECE - 2
            parts.append(middle * count)
            parts.append(z.compress(last) + z.flush(zlib.Z_FINISH))
            crc = zlib.crc32(first)
            for _ in range(count):
                crc = zlib.crc32(spaces, crc)
            crc = zlib.crc32(last, crc)
            header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
            trailer = struct.pack("<II", crc, size & 0xFFFFFFFF)
            _bombs[size] = header + b"".join(parts) + trailer
        return _bombs[size]


def _head(status: str, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status}", "Connection: close", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _json(data: object, status: str = "200 OK", **headers: str) -> bytes:
    body = json.dumps(data).encode()
    head = {"Content-Type": "application/json", "Content-Length": str(len(body)), **headers}
    return _head(status, head) + body


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        writer.close()
        return
    lines = head.decode("latin-1").split("\r\n")
    _, target, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
    split = urlsplit(target)
    query = {k: v[-1] for k, v in parse_qs(split.query).items()}
    path = split.path
    try:
        await _answer(path, query, headers, target, writer)
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def _answer(
    path: str, query: dict[str, str], headers: dict[str, str], target: str,
    writer: asyncio.StreamWriter,
) -> None:  # fmt: skip
    write = writer.write
    if path == "/big":
        size = int(query.get("size", PIECE))
        chunked = query.get("chunked") == "1"
        head = {"Content-Type": "application/json"}
        head["Transfer-Encoding" if chunked else "Content-Length"] = (
            "chunked" if chunked else str(size)
        )
        write(_head("200 OK", head))
        spaces = b" " * PIECE
        sent = 0
        while sent < size:
            n = min(PIECE, size - sent)
            piece = bytearray(spaces[:n])
            if sent == 0:
                piece[0:1] = b"["
            if sent + n == size:
                piece[-1:] = b"]"
            sent += n
            write(b"%x\r\n%s\r\n" % (n, bytes(piece)) if chunked else bytes(piece))
            await writer.drain()  # the client reads as it goes: nothing piles up here
        if chunked:
            write(b"0\r\n\r\n")
    elif path == "/bomb":
        body = bomb(int(query.get("size", PIECE)))
        write(_head("200 OK", {
            "Content-Type": "application/json", "Content-Encoding": "gzip",
            "Content-Length": str(len(body)),
        }))  # fmt: skip
        for i in range(0, len(body), 65536):
            write(body[i : i + 65536])
            await writer.drain()
    elif path == "/trickle":
        n, every = int(query.get("bytes", 100)), float(query.get("every", 0.1))
        write(_head("200 OK", {"Content-Type": "application/json", "Content-Length": str(n)}))
        for _ in range(n):
            write(b" ")
            await writer.drain()
            await asyncio.sleep(every)
    elif path == "/br":
        body = b"\x8b\x02\x80not brotli at all"
        write(_head("200 OK", {
            "Content-Type": "application/json", "Content-Encoding": "br",
            "Content-Length": str(len(body)),
        }) + body)  # fmt: skip
    elif path == "/redirect":
        status = int(query.get("status", 302))
        write(
            _head(f"{status} Found", {"Location": query.get("to", "/echo"), "Content-Length": "0"})
        )
    elif path == "/cookie/set":
        write(_json({"set": True}, **{"Set-Cookie": "sid=s3; Path=/"}))
    elif path == "/cookie/get":
        write(_json({"cookie": headers.get("cookie")}))
    elif path == "/latin1.csv":
        body = "name,city\nJosé,Málaga\n".encode("iso-8859-1")
        write(_head("200 OK", {
            "Content-Type": "text/csv; charset=iso-8859-1", "Content-Length": str(len(body)),
        }) + body)  # fmt: skip
    elif path == "/bom.json":
        body = b"\xef\xbb\xbf" + json.dumps({"name": "Zoë"}).encode()
        write(_head("200 OK", {
            "Content-Type": "application/json", "Content-Length": str(len(body)),
        }) + body)  # fmt: skip
    elif path == "/same":
        write(_json([{"id": 1}, {"id": 2}]))
    elif path == "/echo":
        write(_json({"path": target}))
    else:
        write(_json({"error": "not found"}, "404 Not Found"))
    await writer.drain()


class RawServer:
    """``with RawServer() as server: server.url``: the routes above on a free port."""

    def __init__(self) -> None:
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> RawServer:
        started = threading.Event()

        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()
            server = loop.run_until_complete(asyncio.start_server(_handle, "127.0.0.1", 0))
            self.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
            started.set()
            loop.run_forever()
            server.close()
            loop.close()

        self._thread = threading.Thread(target=run, name="raw-test-server", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("raw test server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)


if __name__ == "__main__":  # a child process may serve too: prints its URL, serves until killed
    with RawServer() as running:
        print(running.url, flush=True)
        threading.Event().wait()
