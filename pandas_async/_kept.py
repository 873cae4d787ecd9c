"""A call with ``cache=``: the rows whose answer is kept on disk are answered first, in bulk.

Before any row enters the engine, every row's key is looked up, a chunk of rows at a time (one
hash per row, one ``SELECT ... IN`` per 500 keys), and each kept body is parsed straight from the
bytes SQLite returns (``parse="json"``: orjson, big integers kept exact). Those rows never wait
for a concurrency slot, the rate limiter or a cool-down, and nothing is sent for them. Only the
rest go through the engine, which keeps their good answers.

Reading 100,000 kept answers makes some 500,000 containers (dicts, lists) in a second, and the
garbage collector would walk them, again and again as they pile up: measured in a session that
already holds two such results, 1.5 of the 3.1 s this part took. JSON values hold no reference
cycles, so the collector is paused while the kept rows are read (about 1 s per 100,000 rows;
nothing is sent meanwhile), and runs as usual from the first request on.

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
from ._heap import set_aside_now
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
    collecting = gc.isenabled()
    gc.disable()  # see the module's docstring
    try:
        first: dict[bytes, int] = {}  # key -> the first row asking for it
        more: dict[bytes, list[int]] = {}  # key -> the other rows asking for it, if any
        for i, spec in enumerate(specs):
            if keepable(spec):
                key = cache.key(spec)
                if first.setdefault(key, i) != i:
                    more.setdefault(key, []).append(i)
        if cache.scan_pays(len(first)):  # most of the file is wanted: read it in order
            found: Iterable[list[tuple[Any, ...]]] = cache.scan(first, _CHUNK)
        else:
            keys = list(first)
            found = (
                list(cache.rows(keys[start : start + _CHUNK]).values())
                for start in range(0, len(keys), _CHUNK)
            )
        for rows in found:
            hits, answered = _serve(rows, (first, more), specs, reader, outcomes, timeline, dedupe)
            cache.hits += hits
            if answered:
                on_done(answered, Outcome(None, 200))
            await asyncio.sleep(0)  # a turn for the loop: progress, Ctrl-C, other tasks
    finally:
        if collecting:
            set_aside_now()  # the answers just read are not walked again during the call
            gc.enable()
    left = [i for i, outcome in enumerate(outcomes) if outcome is None]
    if left:
        sent = await send([specs[i] for i in left], _PutOnly(cache))
        for i, outcome in zip(left, sent, strict=True):
            outcomes[i] = outcome
    return outcomes  # type: ignore[return-value]  # every position is filled


def _serve(
    rows: list[tuple[Any, ...]],
    where: tuple[dict[bytes, int], dict[bytes, list[int]]],
    specs: Sequence[RequestSpec],
    reader: _Reader,
    outcomes: list[Outcome | None],
    timeline: Timeline,
    dedupe: bool,
) -> tuple[int, int]:
    """Fill ``outcomes`` for the rows asking for these kept entries: (answers read, rows)."""
    first, more = where
    hits = answered = 0
    for row in rows:
        key = row[0]
        i = first[key]
        outcome = reader.read(specs[i], row)
        if outcome is not None:  # None: parse= cannot read it, the row is sent again
            hits += 1
            answered += 1
            timeline.cache_hit(specs[i])
            outcomes[i] = outcome
        for j in more.get(key, ()):
            if not dedupe:  # each row its own answer, as each would have its own request
                outcome = reader.read(specs[j], row)
                if outcome is not None:
                    hits += 1
                    timeline.cache_hit(specs[j])
            if outcome is not None:
                answered += 1
                outcomes[j] = outcome
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
