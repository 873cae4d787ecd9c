"""A bundled demo JSON API, and the demo job that ``pandas-async demo`` runs against it.

The server imitates a public placeholder API (users, posts, comments) plus a synthetic market-data
endpoint, with deterministic data and a realistic per-request latency, so that examples, tests and
notebooks run offline and give the same answers every time. It only ever listens on 127.0.0.1.

Endpoints (every answer is JSON)::

    GET /users                     list of users (1..1000), filterable and paginated
    GET /users/{id}                one user, with nested ``address`` (``address.geo``), ``company``
    GET /posts                     list of posts (1..3000, three per user); ``?userId=`` filters
    GET /posts/{id}                one post
    GET /posts/{id}/comments       the post's five comments (a list)
    GET /comments?postId=          comments, filtered by post
    GET /candles?symbol=BTC&date=2024-01-01[&interval=1h]
                                   synthetic OHLCV candles for one UTC day (a list of records)
    GET /status/{code}[?retry_after=S]
                                   answers with that status code (for trying retries and errors)

List endpoints filter on any top-level field given as a query parameter (``/posts?userId=3``) and
paginate json-server style: ``?_page=2&_limit=20`` (``page``/``limit`` also accepted; the size
defaults to 10 when only a page is given) or ``?_start=40&_limit=20``. A paginated answer carries
an ``X-Total-Count`` header and an RFC 5988 ``Link`` header (``first``, ``prev``, ``next``,
``last``); a page past the end is an empty list. Any endpoint takes ``?_delay=S`` to override the
latency of that one request (capped at 30 s). Unknown ids answer 404 with ``{"error": ...}``.

Use it from Python::

    from pandas_async import demo

    with demo.serve(latency=0.05) as server:
        users = pd.DataFrame({"user_id": [1, 2, 3]})
        users.aapi.fetch(f"{server.url}/users/{{user_id}}")
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import math
import random
import sys
import threading
import time
import zlib
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import orjson
from aiohttp import web

__all__ = ["DemoReport", "DemoServer", "run_demo", "serve"]

HOST = "127.0.0.1"
DEFAULT_LATENCY = 0.05

N_USERS = 1000
POSTS_PER_USER = 3
N_POSTS = N_USERS * POSTS_PER_USER
COMMENTS_PER_POST = 5
N_COMMENTS = N_POSTS * COMMENTS_PER_POST

DEFAULT_PAGE_SIZE = 10
MAX_DELAY = 30.0

JSONDict = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# --------------------------------------------------------------------------------------------
# Deterministic synthetic data. Every record is a pure function of its id (string seeds are
# hashed with SHA-512 by ``random.Random``, so they do not depend on PYTHONHASHSEED).
# --------------------------------------------------------------------------------------------

_FIRST_NAMES = (
    "Ada", "Alan", "Barbara", "Boris", "Chen", "Clara", "Dmitri", "Edsger", "Elena", "Fatima",
    "Frances", "Grace", "Hedy", "Ines", "Ivan", "Jean", "Kenji", "Katherine", "Leslie", "Linus",
    "Margaret", "Mei", "Niklaus", "Olga", "Priya", "Radia", "Rosalind", "Sofia", "Tim", "Yusuf",
)  # fmt: skip
_LAST_NAMES = (
    "Lovelace", "Turing", "Liskov", "Hopper", "Hamilton", "Dijkstra", "Knuth", "Wirth", "Perlman",
    "Lamarr", "Allen", "Johnson", "Franklin", "Nakamura", "Okafor", "Petrov", "Rossi", "Silva",
    "Tanaka", "Novak", "Haddad", "Kowalski", "Larsen", "Moreau", "Nguyen", "Schmidt", "Varga",
)  # fmt: skip
_CITIES = (
    ("Lisbon", 38.7223, -9.1393), ("Nairobi", -1.2921, 36.8219), ("Osaka", 34.6937, 135.5023),
    ("Montreal", 45.5019, -73.5674), ("Krakow", 50.0647, 19.945),
    ("Valparaiso", -33.0472, -71.6127), ("Pune", 18.5204, 73.8567),
    ("Tromso", 69.6492, 18.9553), ("Austin", 30.2672, -97.7431),
    ("Cape Town", -33.9249, 18.4241), ("Tbilisi", 41.7151, 44.8271),
    ("Hobart", -42.8821, 147.3272),
)  # fmt: skip
_STREETS = (
    "Kulas Light", "Victor Plains", "Douglas Extension", "Hoeger Mall", "Skiles Walks",
    "Norberto Crossing", "Rex Trail", "Ellsworth Summit", "Dayna Park", "Kattie Turnpike",
)  # fmt: skip
_COMPANY_WORDS = (
    "Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark", "Wayne", "Tyrell",
    "Cyberdyne", "Soylent", "Wonka", "Aperture", "Oscorp", "Gringotts", "Monarch",
)  # fmt: skip
_COMPANY_SUFFIXES = ("Group", "LLC", "Inc", "and Sons", "Labs", "Partners", "Systems")
_CATCH_ADJ = (
    "Multi-layered", "Proactive", "Face to face", "Synchronised", "Configurable", "Decentralized",
    "Ergonomic", "Robust", "Seamless", "Adaptive",
)  # fmt: skip
_CATCH_NOUN = (
    "client-server neural-net", "didactic contingency", "bandwidth-monitored extranet",
    "tertiary hub", "stochastic middleware", "zero tolerance throughput", "local architecture",
)  # fmt: skip
_BS = (
    "harness real-time e-markets", "synergize scalable supply-chains",
    "e-enable strategic applications", "transition cutting-edge web services",
    "revolutionize end-to-end systems", "aggregate vertical paradigms",
)  # fmt: skip
_DOMAINS = ("example.org", "example.net", "example.com")
_LOREM = (
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut "
    "labore et dolore magna aliqua enim ad minim veniam quis nostrud exercitation ullamco laboris "
    "nisi aliquip ex ea commodo consequat duis aute irure in reprehenderit voluptate velit esse "
    "cillum eu fugiat nulla pariatur excepteur sint occaecat cupidatat non proident sunt culpa qui "
    "officia deserunt mollit anim id est laborum"
)
_WORDS = tuple(_LOREM.split())

# Reference prices (USD) and hourly volatility of the synthetic market.
_SYMBOLS: Mapping[str, tuple[float, float]] = {
    "BTC": (42_000.0, 0.006),
    "ETH": (2_300.0, 0.008),
    "SOL": (100.0, 0.012),
    "ADA": (0.55, 0.010),
    "XRP": (0.60, 0.009),
    "DOGE": (0.08, 0.014),
}
_INTERVALS: Mapping[str, int] = {"1m": 1, "5m": 5, "15m": 15, "1h": 60, "4h": 240, "1d": 1440}


def _sentence(rng: random.Random, low: int, high: int) -> str:
    words = rng.choices(_WORDS, k=rng.randint(low, high))
    return " ".join(words).capitalize()


@functools.lru_cache(maxsize=4096)
def user(user_id: int) -> JSONDict:
    """The demo user ``user_id`` (1..N_USERS), as ``/users/{id}`` answers it."""
    rng = random.Random(f"pandas-async-demo:user:{user_id}")
    first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
    city, lat, lng = rng.choice(_CITIES)
    company = f"{rng.choice(_COMPANY_WORDS)} {rng.choice(_COMPANY_SUFFIXES)}"
    username = f"{first[0]}{last}{user_id}".lower()
    return {
        "id": user_id,
        "name": f"{first} {last}",
        "username": username,
        "email": f"{username}@{rng.choice(_DOMAINS)}",
        "address": {
            "street": rng.choice(_STREETS),
            "suite": f"Apt. {rng.randint(1, 999)}",
            "city": city,
            "zipcode": f"{rng.randint(10000, 99999)}-{rng.randint(1000, 9999)}",
            "geo": {
                "lat": round(lat + rng.uniform(-0.05, 0.05), 4),
                "lng": round(lng + rng.uniform(-0.05, 0.05), 4),
            },
        },
        "phone": f"+1-{rng.randint(200, 999)}-{rng.randint(200, 999)}-{rng.randint(1000, 9999)}",
        "website": f"{first.lower()}{last.lower()}.example.com",
        "company": {
            "name": company,
            "catchPhrase": f"{rng.choice(_CATCH_ADJ)} {rng.choice(_CATCH_NOUN)}",
            "bs": rng.choice(_BS),
        },
    }


@functools.lru_cache(maxsize=8192)
def post(post_id: int) -> JSONDict:
    """The demo post ``post_id`` (1..N_POSTS); posts 1-3 belong to user 1, 4-6 to user 2, ..."""
    rng = random.Random(f"pandas-async-demo:post:{post_id}")
    return {
        "userId": (post_id - 1) // POSTS_PER_USER + 1,
        "id": post_id,
        "title": _sentence(rng, 3, 8).lower(),
        "body": "\n".join(_sentence(rng, 6, 14) for _ in range(rng.randint(2, 4))),
    }


def comment(comment_id: int) -> JSONDict:
    """The demo comment ``comment_id`` (1..N_COMMENTS); five per post."""
    rng = random.Random(f"pandas-async-demo:comment:{comment_id}")
    first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
    return {
        "postId": (comment_id - 1) // COMMENTS_PER_POST + 1,
        "id": comment_id,
        "name": _sentence(rng, 3, 7).lower(),
        "email": f"{first}.{last}@{rng.choice(_DOMAINS)}".lower(),
        "body": _sentence(rng, 8, 20),
    }


def post_comments(post_id: int) -> list[JSONDict]:
    """The five comments of post ``post_id``."""
    first = (post_id - 1) * COMMENTS_PER_POST + 1
    return [comment(i) for i in range(first, first + COMMENTS_PER_POST)]


@functools.cache
def _all_users() -> tuple[JSONDict, ...]:
    return tuple(user(i) for i in range(1, N_USERS + 1))


@functools.cache
def _all_posts() -> tuple[JSONDict, ...]:
    return tuple(post(i) for i in range(1, N_POSTS + 1))


@functools.cache
def _all_comments() -> tuple[JSONDict, ...]:
    return tuple(comment(i) for i in range(1, N_COMMENTS + 1))


def _noise(symbol: str, minute: int) -> float:
    """A deterministic pseudo-random number in [-1, 1) for ``symbol`` at ``minute``."""
    return zlib.crc32(f"{symbol}:{minute}".encode()) / 2**31 - 1.0


def _price(symbol: str, minute: int) -> float:
    """The synthetic price of ``symbol`` at ``minute`` since the Unix epoch.

    A smooth, multi-scale wave around the reference price plus a little per-minute noise: it is
    continuous in time, so consecutive candles and candles of different intervals agree.
    """
    base, vol = _SYMBOLS[symbol]
    phase = (zlib.crc32(symbol.encode()) % 1000) / 100.0
    hours = minute / 60.0
    log_move = (
        18 * vol * math.sin(hours / 211.0 + phase)
        + 9 * vol * math.sin(hours / 37.0 + 2 * phase)
        + 3 * vol * math.sin(hours / 5.3 + 3 * phase)
        + 0.15 * vol * _noise(symbol, minute)
    )
    return base * math.exp(log_move)


def _round_price(value: float) -> float:
    digits = max(2, 4 - math.floor(math.log10(abs(value))))
    return round(value, digits)


def candles(symbol: str, day: dt.date, interval: str = "1h") -> list[JSONDict]:
    """Synthetic OHLCV candles of ``symbol`` for the UTC day ``day``, as ``/candles`` answers."""
    base, vol = _SYMBOLS[symbol]
    step = _INTERVALS[interval]
    start = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()) // 60
    records = []
    for minute in range(start, start + 1440, step):
        open_, close = _price(symbol, minute), _price(symbol, minute + step)
        wick = vol * math.sqrt(step / 60.0)
        rng = random.Random(f"pandas-async-demo:candle:{symbol}:{minute}:{step}")
        high = max(open_, close) * (1 + wick * rng.uniform(0.05, 0.6))
        low = min(open_, close) * (1 - wick * rng.uniform(0.05, 0.6))
        notional = 2.5e7 * math.sqrt(step) * rng.lognormvariate(0.0, 0.35)
        time_ = dt.datetime.fromtimestamp(minute * 60, tz=dt.UTC)
        records.append(
            {
                "symbol": symbol,
                "time": time_.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "open": _round_price(open_),
                "high": _round_price(high),
                "low": _round_price(low),
                "close": _round_price(close),
                "volume": round(notional / base, 4),
            }
        )
    return records


# --------------------------------------------------------------------------------------------
# HTTP layer
# --------------------------------------------------------------------------------------------


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
    return _list_response(request, _all_users())


async def _user(request: web.Request) -> web.Response:
    found = _path_id(request, N_USERS, "user")
    return found if isinstance(found, web.Response) else _json(user(found))


async def _posts(request: web.Request) -> web.Response:
    user_id = request.query.get("userId")
    if user_id is not None and user_id.isdigit() and 1 <= int(user_id) <= N_USERS:
        first = (int(user_id) - 1) * POSTS_PER_USER + 1
        return _list_response(request, [post(i) for i in range(first, first + POSTS_PER_USER)])
    return _list_response(request, _all_posts())


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
    return _list_response(request, _all_comments())


_CANDLE_PARAMS = frozenset({"symbol", "date", "interval"})


async def _candles(request: web.Request) -> web.Response:
    symbol = request.query.get("symbol", "").upper()
    if not symbol:
        return _error(400, "symbol is required, e.g. ?symbol=BTC&date=2024-01-01")
    if symbol not in _SYMBOLS:
        return _error(404, f"unknown symbol {symbol!r}; known: {', '.join(_SYMBOLS)}")
    raw_date = request.query.get("date")
    if raw_date is None:
        return _error(400, "date is required, e.g. ?symbol=BTC&date=2024-01-01")
    try:
        day = dt.date.fromisoformat(raw_date)
    except ValueError:
        return _error(400, f"date must be YYYY-MM-DD, got {raw_date!r}")
    interval = request.query.get("interval", "1h")
    if interval not in _INTERVALS:
        return _error(400, f"interval must be one of {', '.join(_INTERVALS)}, got {interval!r}")
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


_COUNTER_KEY = web.AppKey("request_counter", list)


def create_app(latency: Callable[[], float] | float = DEFAULT_LATENCY) -> web.Application:
    """The demo API as an aiohttp application; ``latency`` is seconds or a callable giving them."""
    get_latency = latency if callable(latency) else (lambda: float(latency))
    counter = [0]

    @web.middleware
    async def delay_and_count(request: web.Request, handler: Handler) -> web.StreamResponse:
        counter[0] += 1
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


class DemoServer:
    """The demo API served on 127.0.0.1 by a daemon thread with its own event loop.

    ``latency`` (seconds, about +-25% per URL, deterministic) can be changed while it runs.
    ``request_count`` counts the requests it has received. Use it as a context manager, or
    ``start()`` / ``stop()``.
    """

    def __init__(self, *, port: int = 0, latency: float = DEFAULT_LATENCY) -> None:
        if latency < 0:
            raise ValueError(f"latency must be >= 0 seconds, got {latency!r}")
        self.latency = float(latency)
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
        return self._app[_COUNTER_KEY][0] if self._app is not None else 0

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
        self._app = create_app(lambda: self.latency)
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


# --------------------------------------------------------------------------------------------
# The demo job
# --------------------------------------------------------------------------------------------

SEQUENTIAL_SAMPLE = 40


@dataclass(frozen=True)
class DemoReport:
    """What :func:`run_demo` measured."""

    rows: int
    concurrency: int
    latency: float
    concurrent_seconds: float
    sequential_seconds: float
    sequential_rows: int
    frame: Any  # the enriched pandas DataFrame

    @property
    def sequential_extrapolated(self) -> bool:
        """True when only the first ``sequential_rows`` rows were fetched one at a time."""
        return self.sequential_rows < self.rows

    @property
    def speedup(self) -> float:
        return self.sequential_seconds / self.concurrent_seconds


def _customers(rows: int) -> Any:
    import pandas as pd

    rng = random.Random("pandas-async-demo:customers")
    ids = [(i % N_USERS) + 1 for i in range(rows)]
    return pd.DataFrame(
        {
            "user_id": ids,
            "segment": [rng.choice(("retail", "pro", "enterprise")) for _ in ids],
            "orders": [rng.randint(1, 40) for _ in ids],
            "spend": [round(rng.lognormvariate(5.0, 0.8), 2) for _ in ids],
        },
        index=pd.Index([f"C{i:05d}" for i in range(1, rows + 1)], name="customer"),
    )


def _fetch_one_at_a_time(urls: Sequence[str], timeout: float) -> list[JSONDict]:
    """The loop the demo compares against: one blocking request after another."""
    import httpx

    answers = []
    with httpx.Client(timeout=timeout) as client:
        for url in urls:
            response = client.get(url)
            response.raise_for_status()
            answers.append(response.json())
    return answers


def run_demo(
    rows: int = 200,
    concurrency: int = 50,
    stream: TextIO | None = None,
    *,
    latency: float = DEFAULT_LATENCY,
    sequential_sample: int = SEQUENTIAL_SAMPLE,
) -> DemoReport:
    """Enrich a table of ``rows`` customers from the demo API, and compare with a plain loop.

    Starts the demo server, runs ``customers.aapi.fetch(".../users/{user_id}", ...)`` with
    ``concurrency`` requests in flight, prints the head of the result, then times the same
    requests sent one at a time. To stay quick, only the first ``sequential_sample`` rows are
    sent one at a time and the time for all rows is extrapolated (and labelled so).
    Writes to ``stream`` (default: ``sys.stdout``) and returns the measurements.
    """
    import pandas as pd

    import pandas_async  # noqa: F401  (registers DataFrame.aapi)

    if rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows!r}")
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency!r}")
    if sequential_sample < 1:
        raise ValueError(f"sequential_sample must be >= 1, got {sequential_sample!r}")
    out = sys.stdout if stream is None else stream

    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    customers = _customers(rows)
    with serve(latency=latency) as server:
        template = f"{server.url}/users/{{user_id}}"
        say(
            f"pandas-async demo: a local JSON API at {server.url} "
            f"(latency ~{latency * 1000:.0f} ms)"
        )
        say(f"Enriching {rows} customers, one GET per row, {concurrency} in flight:")
        if rows > N_USERS:
            say(f"(the demo has {N_USERS} users, so ids repeat; a repeated request is sent once)")
        say()
        say(f'    customers.aapi.fetch("{server.url}/users/{{user_id}}",')
        say(f'                         concurrency={concurrency}, prefix="user.")')
        say()

        started = time.perf_counter()
        enriched = customers.aapi.fetch(
            template, concurrency=concurrency, prefix="user.", progress=False
        )
        concurrent_seconds = time.perf_counter() - started

        shown = [
            c
            for c in (
                "user_id",
                "segment",
                "user.name",
                "user.email",
                "user.address.city",
                "user.company.name",
            )
            if c in enriched.columns
        ]
        with pd.option_context("display.width", 120, "display.max_colwidth", 28):
            say(enriched[shown].head().to_string())
        new_columns = [c for c in enriched.columns if c not in customers.columns]
        say(
            f"[{len(enriched)} rows x {len(enriched.columns)} columns; {len(new_columns)} new: "
            f"{', '.join(new_columns[:6])}{', ...' if len(new_columns) > 6 else ''}]"
        )
        say()

        sample = min(rows, sequential_sample)
        urls = [f"{server.url}/users/{user_id}" for user_id in customers["user_id"].iloc[:sample]]
        started = time.perf_counter()
        _fetch_one_at_a_time(urls, timeout=max(10.0, 20 * latency))
        sample_seconds = time.perf_counter() - started
        sequential_seconds = sample_seconds * rows / sample

    report = DemoReport(
        rows=rows,
        concurrency=concurrency,
        latency=latency,
        concurrent_seconds=concurrent_seconds,
        sequential_seconds=sequential_seconds,
        sequential_rows=sample,
        frame=enriched,
    )
    fast_label = f"pandas-async, {concurrency} in flight:"
    slow_label = "one request at a time:"
    width = max(len(fast_label), len(slow_label))
    say(f"{fast_label:<{width}} {concurrent_seconds:8.2f} s for {rows} rows")
    note = f" (extrapolated: {sample} rows took {sample_seconds:.2f} s)"
    say(
        f"{slow_label:<{width}} {sequential_seconds:8.2f} s for {rows} rows"
        f"{note if report.sequential_extrapolated else ''}"
    )
    say(f"speed-up: {report.speedup:.1f}x")
    return report
