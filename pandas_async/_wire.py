"""When a request goes on the wire: the hooks that tell the limiter (``Sender.send``'s
``on_wire``). A request may wait for a connection (TCP, TLS, a free one in the pool) after the
limiter let it go; a window or an even pace counted from that moment would let the next ones
reach the server closer together than allowed. aiohttp says it through a trace, httpx (httpcore)
through its ``trace`` extension; both call ``on_wire`` as the headers go out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp

__all__ = ["HttpcoreWatch", "OnWire", "wire_trace"]

OnWire = Callable[[], None]


def wire_trace() -> aiohttp.TraceConfig:
    """A trace that calls a request's ``on_wire`` (its trace context) as its headers go out."""

    async def headers_sent(_session: Any, context: Any, _params: Any) -> None:
        if context.trace_request_ctx is not None:
            context.trace_request_ctx()

    trace = aiohttp.TraceConfig()
    trace.on_request_headers_sent.append(headers_sent)
    return trace


class HttpcoreWatch:
    """httpcore's ``trace`` extension, calling ``on_wire`` as the request's headers go out."""

    __slots__ = ("on_wire",)

    def __init__(self, on_wire: OnWire) -> None:
        self.on_wire = on_wire

    async def __call__(self, event: str, _info: Any) -> None:
        if event.endswith("send_request_headers.started"):
            self.on_wire()
