"""One call through the engine: its sender, and all rows at once or a sink's chunks. No pandas.

``fetch_all(specs, ...)`` sends one request per spec (identical GETs once) and returns one
``Outcome`` per spec, in order; ``fetch_chunks`` does the same over chunks made only when needed.
Without ``client=`` the sender is aiohttp (or httpx with HTTP/2), made on the running loop and
closed with the call; a client of yours is used as is and left open.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import httpx

from ._engine import AnswerStore, Engine, EnginePolicy, OnRows
from ._outcome import Answer, Outcome
from ._requests import RequestSpec
from ._timeline import Timeline
from ._transport import AiohttpSender, Http2Sender, HttpxSender, Sender

__all__ = ["fetch_all", "fetch_chunks"]


async def fetch_all(
    specs: Sequence[RequestSpec],
    *,
    client: httpx.AsyncClient | None,
    policy: EnginePolicy,
    parse: Callable[[Answer], Any],
    on_done: Callable[[int, Outcome], None] | None = None,
    timeline: Timeline | None = None,
    on_rows: OnRows | None = None,
    store: AnswerStore | None = None,
) -> list[Outcome]:
    """One ``Outcome`` per spec, in order, through ``client`` as given or the default sender.

    ``timeline`` (made by the caller, read after) records where the time went.
    ``on_rows(rows, outcome)`` is called as each request completes, with the positions of the
    specs it answered (several when deduped); it may return an awaitable to slow the runners
    down (a sink whose writer is behind). With a ``store``, kept answers are used instead of
    sending, and good answers are kept.
    """
    if not specs:
        return []
    sender = _sender(client, policy)
    try:
        engine = Engine(
            sender, policy, parse, on_done=on_done, timeline=timeline, on_rows=on_rows, store=store
        )
        return await engine.run(specs)
    finally:
        await sender.aclose()


def _sender(client: httpx.AsyncClient | None, policy: EnginePolicy) -> Sender:
    if client is not None:
        return HttpxSender(client, policy.timeout, policy.max_bytes)
    if policy.http2:
        return Http2Sender(
            concurrency=policy.concurrency, timeout=policy.timeout, max_bytes=policy.max_bytes
        )
    return AiohttpSender(
        concurrency=policy.concurrency,
        timeout=policy.timeout,
        max_bytes=policy.max_bytes,
        watch_wire=policy.rate is not None,
    )


async def fetch_chunks(
    chunks: Iterable[Sequence[RequestSpec]],
    *,
    client: httpx.AsyncClient | None,
    policy: EnginePolicy,
    parse: Callable[[Answer], Any],
    on_done: Callable[[int, Outcome], None] | None = None,
    timeline: Timeline | None = None,
    on_rows: OnRows | None = None,
    store: AnswerStore | None = None,
) -> list[Outcome]:
    """``fetch_all`` over consecutive chunks of specs, made only when needed (a sink's batches).

    One engine serves every chunk, so one gate, rate limiter and cool-down hold across them;
    two chunks are under way at a time, so concurrency stays full at a chunk's end while only
    two chunks' specs are in memory. Identical requests are deduped within a chunk.
    ``on_rows`` gets positions counted across the chunks, and the outcomes: none is kept past
    its chunk (a run of any length holds two chunks' outcomes at most) and none is returned.
    """
    sender = _sender(client, policy)
    engine = Engine(sender, policy, parse, on_done=on_done, timeline=timeline, store=store)
    running: list[asyncio.Task[list[Outcome]]] = []

    def shifted(offset: int) -> OnRows | None:
        if on_rows is None:
            return None
        hook = on_rows
        return lambda rows, outcome: hook([offset + i for i in rows], outcome)

    try:
        async with asyncio.TaskGroup() as group:
            offset, made = 0, iter(chunks)
            while True:
                if len(running) >= 2:  # at most two chunks under way, and made: wait first
                    await asyncio.wait({running.pop(0)})
                if (chunk := next(made, None)) is None:
                    break
                running.append(group.create_task(engine.run(chunk, on_rows=shifted(offset))))
                offset += len(chunk)
    finally:
        await sender.aclose()
    return []
