"""The demo API's data: users, posts, comments and market candles, all synthetic.

Every record is a pure function of its id (string seeds are hashed with SHA-512 by
``random.Random``, so they do not depend on PYTHONHASHSEED): the same id gives the same answer on
every machine and every run.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import random
import zlib
from collections.abc import Mapping
from typing import Any

__all__ = [
    "COMMENTS_PER_POST",
    "INTERVALS",
    "N_COMMENTS",
    "N_POSTS",
    "N_USERS",
    "PAIRS",
    "POSTS_PER_USER",
    "SYMBOLS",
    "JSONDict",
    "all_comments",
    "all_posts",
    "all_users",
    "candles",
    "comment",
    "market",
    "post",
    "post_comments",
    "user",
]

N_USERS = 1000
POSTS_PER_USER = 3
N_POSTS = N_USERS * POSTS_PER_USER
COMMENTS_PER_POST = 5
N_COMMENTS = N_POSTS * COMMENTS_PER_POST

JSONDict = dict[str, Any]


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
SYMBOLS: Mapping[str, tuple[float, float]] = {
    "BTC": (42_000.0, 0.006),
    "ETH": (2_300.0, 0.008),
    "SOL": (100.0, 0.012),
    "ADA": (0.55, 0.010),
    "XRP": (0.60, 0.009),
    "DOGE": (0.08, 0.014),
}
# 300 trading pairs (100 base coins x 3 quotes): the six above and 94 made-up coins, each with
# a price and volatility drawn from its name. /candles serves them as it serves the six.
_QUOTES = ("USDT", "USDC", "EUR")


def _made_up_coins(n: int) -> list[str]:
    rng = random.Random("pandas-async-demo:coins")
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    coins: list[str] = []
    while len(coins) < n:
        name = "".join(rng.choices(letters, k=rng.choice((3, 4))))
        if name not in SYMBOLS and name not in coins:
            coins.append(name)
    return coins


PAIRS: tuple[str, ...] = tuple(
    f"{coin}-{quote}" for coin in [*SYMBOLS, *_made_up_coins(94)] for quote in _QUOTES
)
_PAIR_SET = frozenset(PAIRS)


def market(symbol: str) -> tuple[float, float] | None:
    """Reference price and hourly volatility of a symbol (``BTC``) or pair (``BTC-USDT``)."""
    if symbol in SYMBOLS:
        return SYMBOLS[symbol]
    if symbol not in _PAIR_SET:
        return None
    coin, quote = symbol.split("-")
    if coin in SYMBOLS:
        price, vol = SYMBOLS[coin]
    else:
        rng = random.Random(f"pandas-async-demo:coin:{coin}")
        price, vol = 10 ** rng.uniform(-3, 3), rng.uniform(0.005, 0.02)
    return (price * 0.92 if quote == "EUR" else price), vol


INTERVALS: Mapping[str, int] = {"1m": 1, "5m": 5, "15m": 15, "1h": 60, "4h": 240, "1d": 1440}


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
def all_users() -> tuple[JSONDict, ...]:
    return tuple(user(i) for i in range(1, N_USERS + 1))


@functools.cache
def all_posts() -> tuple[JSONDict, ...]:
    return tuple(post(i) for i in range(1, N_POSTS + 1))


@functools.cache
def all_comments() -> tuple[JSONDict, ...]:
    return tuple(comment(i) for i in range(1, N_COMMENTS + 1))


def _noise(symbol: str, minute: int) -> float:
    """A deterministic pseudo-random number in [-1, 1) for ``symbol`` at ``minute``."""
    return zlib.crc32(f"{symbol}:{minute}".encode()) / 2**31 - 1.0


def _price(symbol: str, minute: int) -> float:
    """The synthetic price of ``symbol`` at ``minute`` since the Unix epoch.

    A smooth, multi-scale wave around the reference price plus a little per-minute noise: it is
    continuous in time, so consecutive candles and candles of different intervals agree.
    """
    base, vol = market(symbol) or SYMBOLS["BTC"]
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
    base, vol = market(symbol) or SYMBOLS["BTC"]
    step = INTERVALS[interval]
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
