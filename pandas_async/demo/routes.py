"""The demo API's endpoints as an aiohttp application: filters, json-server paging, latency.

The endpoints are listed in the docstring of ``pandas_async.demo``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import zlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import orjson
from aiohttp import web

from .data import (
    INTERVALS,
    N_POSTS,
    N_USERS,
    PAIRS,
    POSTS_PER_USER,
    SYMBOLS,
    JSONDict,
    all_comments,
    all_posts,
    all_users,
    candles,
    market,
    post,
    post_comments,
    user,
)

__all__ = ["DEFAULT_LATENCY", "DEFAULT_PAGE_SIZE", "MAX_DELAY", "create_app", "request_count"]

DEFAULT_LATENCY = 0.05
DEFAULT_PAGE_SIZE = 10
MAX_DELAY = 30.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(
    payload: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(payload),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status=status)


class _BadRequest(Exception):
    """A query parameter that cannot be understood; answered with 400."""


def _int_param(request: web.Request, *names: str) -> int | None:
    for name in names:
        raw = request.query.get(name)
        if raw is not None:
            try:
                value = int(raw)
            except ValueError:
                raise _BadRequest(f"{name} must be an integer, got {raw!r}") from None
            if value < 0:
                raise _BadRequest(f"{name} must not be negative, got {value}")
            return value
    return None


def _path_id(request: web.Request, upper: int, kind: str) -> int | web.Response:
    raw = request.match_info["id"]
    try:
        value = int(raw)
    except ValueError:
        return _error(404, f"{kind} {raw!r} not found")
    if not 1 <= value <= upper:
        return _error(404, f"{kind} {value} not found")
    return value


_PAGING_PARAMS = frozenset({"_page", "page", "_limit", "limit", "_start", "_delay"})


def _list_response(
    request: web.Request, items: Sequence[JSONDict], consumed: frozenset[str] = frozenset()
) -> web.Response:
    """Filter ``items`` by the query's field parameters, then paginate them json-server style.

    ``consumed`` names query parameters the endpoint already used, which are not filters.
    """
    skip = _PAGING_PARAMS | consumed
    filters = {k: v for k, v in request.query.items() if k not in skip}
    if filters and items:
        known = {k: v for k, v in filters.items() if k in items[0]}
        items = [it for it in items if all(str(it[k]) == v for k, v in known.items())]

    page = _int_param(request, "_page", "page")
    limit = _int_param(request, "_limit", "limit")
    start = _int_param(request, "_start")
    total = len(items)
    if page is None and limit is None and start is None:
        return _json(list(items), headers={"X-Total-Count": str(total)})

    size = DEFAULT_PAGE_SIZE if limit is None else limit
    links: dict[str, int] = {}
    if start is not None:
        offset = start
        if size:
            links = {"first": 0, "last": max(0, (total - 1) // size * size)}
            if offset > 0:
                links["prev"] = max(0, offset - size)
            if offset + size < total:
                links["next"] = offset + size
        key = "_start"
    else:
        page = 1 if page is None else max(page, 1)
        offset = (page - 1) * size
        if size:
            last = max(1, math.ceil(total / size))
            links = {"first": 1, "last": last}
            if page > 1:
                links["prev"] = min(page - 1, last)
            if page < last:
                links["next"] = page + 1
        key = "_page" if "_page" in request.query or "page" not in request.query else "page"

    headers = {"X-Total-Count": str(total)}
    if links:
        order = ("first", "prev", "next", "last")
        headers["Link"] = ", ".join(
            f'<{request.url.update_query({key: str(links[rel])})}>; rel="{rel}"'
            for rel in order
            if rel in links
        )
    return _json(list(items[offset : offset + size]), headers=headers)


async def _users(request: web.Request) -> web.Response:
    return _list_response(request, all_users())


async def _user(request: web.Request) -> web.Response:
    found = _path_id(request, N_USERS, "user")
    return found if isinstance(found, web.Response) else _json(user(found))


async def _posts(request: web.Request) -> web.Response:
    user_id = request.query.get("userId")
    if user_id is not None and user_id.isdigit() and 1 <= int(user_id) <= N_USERS:
        first = (int(user_id) - 1) * POSTS_PER_USER + 1
        return _list_response(request, [post(i) for i in range(first, first + POSTS_PER_USER)])
    return _list_response(request, all_posts())


async def _post(request: web.Request) -> web.Response:
    found = _path_id(request, N_POSTS, "post")
    return found if isinstance(found, web.Response) else _json(post(found))


async def _post_comments(request: web.Request) -> web.Response:
    found = _path_id(request, N_POSTS, "post")
    if isinstance(found, web.Response):
        return found
    return _list_response(request, post_comments(found))


async def _comments(request: web.Request) -> web.Response:
    post_id = request.query.get("postId")
    if post_id is not None and post_id.isdigit() and 1 <= int(post_id) <= N_POSTS:
        return _list_response(request, post_comments(int(post_id)))
    return _list_response(request, all_comments())


_CANDLE_PARAMS = frozenset({"symbol", "date", "interval"})


async def _candles(request: web.Request) -> web.Response:
    symbol = request.query.get("symbol", "").upper()
    if not symbol:
        return _error(400, "symbol is required, e.g. ?symbol=BTC&date=2024-01-01")
    if market(symbol) is None:
        return _error(
            404,
            f"unknown symbol {symbol!r}; known: {', '.join(SYMBOLS)} and {len(PAIRS)} pairs "
            f"such as {PAIRS[0]} (pandas_async.demo.PAIRS)",
        )
    raw_date = request.query.get("date")
    if raw_date is None:
        return _error(400, "date is required, e.g. ?symbol=BTC&date=2024-01-01")
    try:
        day = dt.date.fromisoformat(raw_date)
    except ValueError:
        return _error(400, f"date must be YYYY-MM-DD, got {raw_date!r}")
    interval = request.query.get("interval", "1h")
    if interval not in INTERVALS:
        return _error(400, f"interval must be one of {', '.join(INTERVALS)}, got {interval!r}")
    return _list_response(request, candles(symbol, day, interval), _CANDLE_PARAMS)


async def _status(request: web.Request) -> web.Response:
    raw = request.match_info["code"]
    if not raw.isdigit() or not 200 <= int(raw) <= 599:
        return _error(400, f"status code must be 200..599, got {raw!r}")
    code = int(raw)
    headers = {}
    retry_after = request.query.get("retry_after")
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    if code in (204, 304):
        return web.Response(status=code, headers=headers)
    return _json({"status": code}, status=code, headers=headers)


def _jitter(path_qs: str) -> float:
    """A deterministic latency factor in [0.75, 1.25) for one URL."""
    return 0.75 + (zlib.crc32(path_qs.encode()) % 1000) / 2000.0


_COUNTER_KEY = web.AppKey("request_counter", list[int])


def create_app(
    latency: Callable[[], float] | float = DEFAULT_LATENCY,
    candle_limit: tuple[int, float] | None = None,
) -> web.Application:
    """The demo API as an aiohttp application; ``latency`` is seconds or a callable giving them.

    ``candle_limit=(n, seconds)``: ``/candles`` answers 429 with ``Retry-After`` to a request
    that would make more than ``n`` arrive in any window of ``seconds`` (an exchange's limit).
    """
    get_latency = latency if callable(latency) else (lambda: float(latency))
    counter = [0]
    candle_arrivals: list[float] = []

    @web.middleware
    async def delay_and_count(request: web.Request, handler: Handler) -> web.StreamResponse:
        counter[0] += 1
        if candle_limit is not None and request.path == "/candles":
            n, seconds = candle_limit
            now = asyncio.get_running_loop().time()
            while candle_arrivals and candle_arrivals[0] <= now - seconds:
                candle_arrivals.pop(0)
            if len(candle_arrivals) >= n:
                wait = max(1, math.ceil(candle_arrivals[0] + seconds - now))
                return _json(
                    {"detail": f"rate limit: {n} requests per {seconds:g} s"},
                    status=429,
                    headers={"Retry-After": str(wait)},
                )
            candle_arrivals.append(now)
        raw_delay = request.query.get("_delay")
        try:
            if raw_delay is not None:
                delay = min(max(float(raw_delay), 0.0), MAX_DELAY)
            else:
                delay = max(get_latency(), 0.0) * _jitter(request.path_qs)
        except ValueError:
            return _error(400, f"_delay must be a number of seconds, got {raw_delay!r}")
        if delay:
            await asyncio.sleep(delay)
        try:
            return await handler(request)
        except _BadRequest as exc:
            return _error(400, str(exc))

    app = web.Application(middlewares=[delay_and_count])
    app[_COUNTER_KEY] = counter
    app.router.add_get("/users", _users)
    app.router.add_get("/users/{id}", _user)
    app.router.add_get("/posts", _posts)
    app.router.add_get("/posts/{id}", _post)
    app.router.add_get("/posts/{id}/comments", _post_comments)
    app.router.add_get("/comments", _comments)
    app.router.add_get("/candles", _candles)
    app.router.add_route("*", "/status/{code}", _status)
    return app


def request_count(app: web.Application) -> int:
    """How many requests an application made by ``create_app`` has received."""
    return app[_COUNTER_KEY][0]
