"""A call with ``cache=``: the rows whose answer is kept on disk are answered first, in bulk.

Before any row enters the engine, every row's key is looked up, a chunk of rows at a time (one
hash per row, one ``SELECT ... IN`` per 500 keys), and each kept body is parsed straight from the
bytes SQLite returns (``parse="json"``: orjson, big integers kept exact). Those rows never wait
for a concurrency slot, the rate limiter or a cool-down, and nothing is sent for them. Only the
rest go through the engine, which keeps their good answers.

Parsing 100,000 kept answers makes some 500,000 containers (dicts, lists) in a second, and the
garbage collector would walk all of them, and all of pandas' objects, several times over: a
third of the parse time. JSON values hold no reference cycles, so the collector is paused while
one chunk (2,000 rows, milliseconds) is read, and runs as usual between chunks.

A kept answer that ``parse=`` cannot read (a ``parse=`` changed between runs) is not an error: the
row is sent again, and a good answer replaces the entry.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import httpx

from ._cache import AnswerCache, keepable
from ._outcome import Answer, Outcome
from ._parsers import make_parser, read_json
from ._requests import RequestSpec
from ._timeline import Timeline

__all__ = ["fetch_kept_first"]

_CHUNK = 2_000  # rows looked up and parsed between two turns of the event loop

Send = Callable[[list[RequestSpec], Any], Awaitable[list[Outcome]]]


class _PutOnly:
    """The store the engine gets for the rows left: nothing to look up, good answers kept."""

    def __init__(self, cache: AnswerCache) -> None:
        self._cache = cache

    def get(self, spec: RequestSpec) -> Answer | None:
        return None

    def get_many(self, specs: Sequence[RequestSpec]) -> list[Answer | None]:
        return [None] * len(specs)

    def put(self, spec: RequestSpec, answer: Answer) -> None:
        self._cache.put(spec, answer)


async def fetch_kept_first(
    specs: Sequence[RequestSpec],
    cache: AnswerCache,
    send: Send,
    *,
    parse: str | Callable[[httpx.Response], Any],
    dedupe: bool,
    timeline: Timeline,
    on_done: Callable[[int, Outcome], None],
) -> list[Outcome]:
    """One outcome per spec, in order: kept answers read here, the others ``send(left, store)``.

    With ``dedupe``, rows asking the same thing share one outcome (one hit), as the engine's
    dedupe makes them share one request.
    """
    reader = _Reader(cache, parse)
    outcomes: list[Outcome | None] = [None] * len(specs)
    where: dict[bytes, list[int]] = {}  # key -> the rows asking for it
    for i, spec in enumerate(specs):
        if keepable(spec):
            where.setdefault(cache.key(spec), []).append(i)
    if cache.scan_pays(len(where)):  # most of the file is wanted: read it in order
        found: Iterable[list[tuple[Any, ...]]] = cache.scan(where, _CHUNK)
    else:
        keys = list(where)
        found = (
            list(cache.rows(keys[start : start + _CHUNK]).values())
            for start in range(0, len(keys), _CHUNK)
        )
    for rows in found:
        collecting = gc.isenabled()
        gc.disable()  # see the module's docstring
        try:
            hits, answered = _serve(rows, where, specs, reader, outcomes, timeline, dedupe)
        finally:
            if collecting:
                gc.enable()
        cache.hits += hits
        if answered:
            on_done(answered, Outcome(None, 200))
        await asyncio.sleep(0)  # a turn for the loop: progress, Ctrl-C, other tasks
    left = [i for i, outcome in enumerate(outcomes) if outcome is None]
    if left:
        sent = await send([specs[i] for i in left], _PutOnly(cache))
        for i, outcome in zip(left, sent, strict=True):
            outcomes[i] = outcome
    return outcomes  # type: ignore[return-value]  # every position is filled


def _serve(
    rows: list[tuple[Any, ...]],
    where: dict[bytes, list[int]],
    specs: Sequence[RequestSpec],
    reader: _Reader,
    outcomes: list[Outcome | None],
    timeline: Timeline,
    dedupe: bool,
) -> tuple[int, int]:
    """Fill ``outcomes`` for the rows asking for these kept entries: (answers read, rows)."""
    hits = answered = 0
    for row in rows:
        outcome = None
        for n, i in enumerate(where[row[0]]):
            if n == 0 or not dedupe:
                outcome = reader.read(specs[i], row)
                if outcome is None:  # parse= cannot read it: the row is sent again
                    continue
                hits += 1
                timeline.cache_hit(specs[i])
            outcomes[i] = outcome
            answered += outcome is not None
    return hits, answered


class _Reader:
    """A kept row -> the row's outcome, as the engine would make it from the answer."""

    def __init__(self, cache: AnswerCache, parse: str | Callable[[httpx.Response], Any]) -> None:
        self._cache = cache
        self._json = parse == "json"
        self._parse = make_parser(parse)

    def read(self, spec: RequestSpec, row: tuple[Any, ...]) -> Outcome | None:
        status, body = row[2], row[6]
        try:
            if self._json:  # the body as stored is all "json" reads of a 2xx answer
                value = read_json(body) if body.strip() else None
            else:
                value = self._parse(self._cache.answer(spec, row))
        except Exception:
            return None
        return Outcome(value, status, None, None, 0.0, 0)
