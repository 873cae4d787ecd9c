"""Option value objects and their validation: ``Retry``, rate parsing, defaults in one place.

Everything here is pure: options are checked and normalised before any request is sent, so a
typo or an impossible value surfaces as a clear ``ValueError``/``TypeError`` at the call site.
"""

from __future__ import annotations

import datetime
import difflib
import importlib.util
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Literal, TypedDict

import httpx

from ._checks import check_int, check_meta, check_number, choice, json_problem, short

if TYPE_CHECKING:  # for annotations only: the paginate layer sits above this one
    from ._paginate import Paginator


__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_RETRY_STATUSES",
    "DEFAULT_TIMEOUT",
    "FetchKwargs",
    "FetchOptions",
    "Rate",
    "Retry",
]

DEFAULT_CONCURRENCY = 10
DEFAULT_TIMEOUT = 10.0
# Bytes of one answer after decompression; a larger one fails its row without being held.
DEFAULT_MAX_BYTES = 128 * 1024 * 1024
DEFAULT_RETRY_STATUSES: frozenset[int] = frozenset({408, 425, 429, 500, 502, 503, 504})
PARSE_NAMES = ("json", "text", "bytes", "csv")
HOW_NAMES = ("auto", "columns", "rows")
ERRORS_NAMES = ("raise", "collect")


class _Unset:
    """Tells "not given" from ``None`` (httpx's ``USE_CLIENT_DEFAULT`` idea)."""

    _instance: _Unset | None = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Any = _Unset()


@dataclass(frozen=True, kw_only=True, eq=True)
class Retry:
    """When and how to retry a request.

    ``attempts`` is the number of retries after the first try: ``retries=3`` is
    ``Retry(attempts=3)``.
    Waits grow exponentially with full jitter: before retry *n* (1-based) the wait is drawn
    uniformly from ``[0, min(max_wait, backoff * 2 ** (n - 1))]``. A ``Retry-After`` header
    (seconds or an HTTP date) replaces the drawn wait, capped at ``max_wait``.
    Connection errors and timeouts are always retried; ``statuses`` lists the HTTP statuses
    that are.
    """

    attempts: int = 3
    backoff: float = 0.5
    max_wait: float = 30.0
    statuses: frozenset[int] = field(default=DEFAULT_RETRY_STATUSES)

    def __post_init__(self) -> None:
        check_int("Retry(attempts=)", self.attempts, minimum=0)
        check_number("Retry(backoff=)", self.backoff, minimum=0.0)
        check_number("Retry(max_wait=)", self.max_wait, minimum=0.0)
        statuses = self.statuses
        if isinstance(statuses, int | str) or not isinstance(statuses, Iterable):
            raise TypeError(
                f"Retry(statuses=) expects a collection of HTTP status codes, got {statuses!r}"
            )
        codes = frozenset(statuses)
        bad = [
            s for s in codes if not isinstance(s, int) or isinstance(s, bool) or not 100 <= s <= 599
        ]
        if bad:
            raise ValueError(f"Retry(statuses=) holds values that are not HTTP statuses: {bad!r}")
        object.__setattr__(self, "statuses", codes)

    def __repr__(self) -> str:
        return (
            f"Retry(attempts={self.attempts}, backoff={self.backoff}, max_wait={self.max_wait}, "
            f"statuses={tuple(sorted(self.statuses))})"
        )


# Beyond these, a rate is a typo (or 1e300): refuse it rather than overflow a limiter.
MAX_RATE_PER_SECOND = 1_000_000
MAX_RATE_LIMIT = 1_000_000_000

_RATE_UNITS = {
    "s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0,
    "m": 60.0, "min": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hr": 3600.0, "hour": 3600.0, "hours": 3600.0,
    "d": 86400.0, "day": 86400.0, "days": 86400.0,
}  # fmt: skip
_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d*\.?\d*)\s*([a-z]+)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Rate:
    """At most ``limit`` requests start in any window of ``period`` seconds."""

    limit: int
    period: float

    @classmethod
    def parse(cls, value: str | float | Rate) -> Rate:
        """``"120/min"``, ``"10/s"``, ``"5000/h"``, ``"3/2s"`` or a number per second."""
        if isinstance(value, Rate):
            return value
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise TypeError(
                f"rate= expects a string like '120/min' or a number per second, got {value!r}"
            )
        if isinstance(value, str):
            match = _RATE_RE.match(value)
            unit = _RATE_UNITS.get(match.group(3).lower()) if match else None
            if match is None or unit is None:
                raise ValueError(
                    f"rate={value!r} is not a rate; expected 'N/s', 'N/min' or 'N/h' "
                    "(for example '120/min') or a number of requests per second"
                )
            multiple = float(match.group(2)) if match.group(2) else 1.0
            limit, period = int(match.group(1)), multiple * unit
        else:
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"rate= must be a positive number per second, got {value!r}")
            if value > MAX_RATE_PER_SECOND:
                raise ValueError(
                    f"rate={value!r} is beyond any API's limit (at most "
                    f"{MAX_RATE_PER_SECOND:,} requests per second); for no rate limit, leave "
                    "rate= out"
                )
            # 2.5/s is 5 per 2 s: keep the limit a whole number of requests.
            fraction = Fraction(value).limit_denominator(1000)
            limit, period = fraction.numerator, float(fraction.denominator)
        if limit < 1 or period <= 0:
            raise ValueError(f"rate={value!r} must allow at least one request per period")
        if limit > MAX_RATE_LIMIT or limit / period > MAX_RATE_PER_SECOND:
            raise ValueError(
                f"rate={value!r} is beyond any API's limit (at most {MAX_RATE_PER_SECOND:,} "
                "requests per second); for no rate limit, leave rate= out"
            )
        return cls(limit, period)

    def __str__(self) -> str:
        return f"{self.limit}/{self.period:g}s"


class FetchKwargs(TypedDict, total=False):
    """The keyword options of ``fetch``/``afetch`` (see the README for each)."""

    method: str
    params: Mapping[str, Any] | Sequence[str] | Callable[[Any], Any] | None
    headers: Mapping[str, str] | Callable[[Any], Any] | None
    json: Any
    data: Any
    client: httpx.AsyncClient | None
    concurrency: int
    rate: str | float | None
    burst: int | None
    timeout: float | httpx.Timeout | None
    retries: int | Retry
    dedupe: bool
    max_bytes: int | None
    parse: Literal["json", "text", "bytes", "csv"] | Callable[[httpx.Response], Any]
    how: Literal["auto", "columns", "rows"]
    record_path: str | list[str] | None
    meta: str | list[str | list[str]] | None
    max_level: int | None
    sep: str
    prefix: str | None
    errors: Literal["raise", "collect"]
    progress: bool | None
    paginate: Paginator | None
    schema: Mapping[str, Any] | Any | None  # {column: dtype} or a pyarrow.Schema
    cache: bool | str | os.PathLike[str] | None
    cache_ttl: float | datetime.timedelta | None
    http2: bool


@dataclass(frozen=True, kw_only=True)
class FetchOptions:
    """Validated options of one ``fetch`` call (the request-shaping ones live in ``_requests``)."""

    method: str = "GET"
    # Left out of the repr: they may carry secrets (API keys, tokens, a client's auth).
    params: Any = field(default=None, repr=False)
    headers: Any = field(default=None, repr=False)
    json: Any = field(default=UNSET, repr=False)
    data: Any = field(default=None, repr=False)
    client: httpx.AsyncClient | None = field(default=None, repr=False)
    concurrency: int = DEFAULT_CONCURRENCY
    rate: Rate | None = None
    burst: int | None = None
    timeout: float | httpx.Timeout | None = None  # None: the client's own timeout
    retry: Retry = field(default_factory=Retry)
    dedupe: bool = True
    max_bytes: int | None = DEFAULT_MAX_BYTES
    http2: bool = False
    parse: str | Callable[[httpx.Response], Any] = "json"
    how: str = "auto"
    record_path: str | list[str] | None = None
    meta: str | list[str | list[str]] | None = None
    max_level: int | None = None
    sep: str = "."
    prefix: str | None = None
    errors: str = "raise"
    progress: bool | None = None
    paginate: Paginator | None = None
    schema: Any = None  # checked by _schema.parse_schema (it needs pandas) in the accessor
    cache: bool | str | os.PathLike[str] | None = None  # the folder is resolved in _cache
    cache_ttl: float | None = None  # seconds

    @classmethod
    def build(cls, caller: str, options: Mapping[str, Any]) -> FetchOptions:
        """Check every option; raise ``TypeError``/``ValueError`` naming the one at fault."""
        unknown = [name for name in options if name not in FetchKwargs.__annotations__]
        if unknown:
            name = unknown[0]
            close = difflib.get_close_matches(name, FetchKwargs.__annotations__, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise TypeError(f"{caller}() got an unexpected option {name!r}{hint}")
        o = dict(options)

        method = o.pop("method", "GET")
        if not isinstance(method, str) or not method.strip().isalpha():
            raise ValueError(f"method= expects an HTTP method such as 'GET', got {method!r}")
        client = o.pop("client", None)
        if client is not None and not isinstance(client, httpx.AsyncClient):
            raise TypeError(
                f"client= expects an httpx.AsyncClient, got {type(client).__name__}"
                + (
                    " (use httpx.AsyncClient, not httpx.Client)"
                    if isinstance(client, httpx.Client)
                    else ""
                )
            )
        concurrency = o.pop("concurrency", DEFAULT_CONCURRENCY)
        check_int("concurrency=", concurrency, minimum=1)
        rate = None if (given_rate := o.pop("rate", None)) is None else Rate.parse(given_rate)
        burst = _burst(o.pop("burst", None), rate)
        timeout = _timeout(o.pop("timeout", UNSET), client)
        retries = o.pop("retries", 3)
        if isinstance(retries, Retry):
            retry = retries
        else:
            check_int("retries=", retries, minimum=0, extra=" or a pandas_async.Retry")
            retry = Retry(attempts=retries)
        parse = o.pop("parse", "json")
        if not callable(parse) and parse not in PARSE_NAMES:
            raise ValueError(f"parse= expects one of {PARSE_NAMES} or a callable, got {parse!r}")
        how = choice("how=", o.pop("how", "auto"), HOW_NAMES)
        errors = choice("errors=", o.pop("errors", "raise"), ERRORS_NAMES)
        max_level = o.pop("max_level", None)
        if max_level is not None:
            check_int("max_level=", max_level, minimum=0)
        sep = o.pop("sep", ".")
        if not isinstance(sep, str):
            raise TypeError(f"sep= expects a string, got {sep!r}")
        prefix = o.pop("prefix", None)
        if prefix is not None and not isinstance(prefix, str):
            raise TypeError(f"prefix= expects a string, got {prefix!r}")
        record_path = o.pop("record_path", None)
        if record_path is not None and not (
            isinstance(record_path, str)
            or (isinstance(record_path, list) and all(isinstance(p, str) for p in record_path))
        ):
            raise TypeError(f"record_path= expects a key or a list of keys, got {record_path!r}")
        progress = o.pop("progress", None)
        if progress is not None and not isinstance(progress, bool):
            raise TypeError(f"progress= expects True, False or None, got {progress!r}")
        # paginate= is checked by _paginate.check_paginate: options need not know paginators.
        paginate = o.pop("paginate", None)
        _check_body("json=", o.get("json", UNSET))
        _check_body("data=", o.get("data"))
        check_meta(o.get("meta"))
        dedupe = o.pop("dedupe", True)
        if not isinstance(dedupe, bool):
            raise TypeError(f"dedupe= expects True or False, got {dedupe!r}")
        cache = o.pop("cache", None)
        if not (cache is None or isinstance(cache, bool | str | os.PathLike)):
            raise TypeError(
                "cache= expects True (the user's cache folder), a folder path, or None/False, "
                f"got {cache!r}"
            )
        if cache == "":
            raise ValueError("cache= got an empty folder path; pass True for the user's cache")
        cache_ttl = _cache_ttl(o.pop("cache_ttl", None))
        max_bytes = o.pop("max_bytes", DEFAULT_MAX_BYTES)
        if max_bytes is not None:
            check_int("max_bytes=", max_bytes, minimum=1, extra=" of bytes or None")
        http2 = _http2(o.pop("http2", False), client)
        return cls(
            method=method.upper(),
            client=client,
            concurrency=concurrency,
            rate=rate,
            burst=burst,
            timeout=timeout,
            retry=retry,
            parse=parse,
            how=how,
            errors=errors,
            max_level=max_level,
            sep=sep,
            prefix=prefix,
            record_path=record_path,
            progress=progress,
            dedupe=dedupe,
            max_bytes=max_bytes,
            http2=http2,
            paginate=paginate,
            cache=cache,
            cache_ttl=cache_ttl,
            **o,  # params, headers, json, data, meta: checked against the frame in _requests
        )


def _burst(value: Any, rate: Rate | None) -> int | None:
    """``burst=``: how many of ``rate``'s N may start at once (None: all N, a sliding window)."""
    if value is None:
        return None
    check_int("burst=", value, minimum=1, extra=" (or None)")
    if rate is None:
        raise ValueError(
            f"burst={value!r} shapes the starts of rate=; give a rate too (for example "
            f"rate='10/s', burst={value!r})"
        )
    if value > rate.limit:
        raise ValueError(
            f"burst={value!r} is more than rate={str(rate)!r} lets start in one period "
            f"({rate.limit}); use at most {rate.limit}"
        )
    return int(value)


def _http2(value: Any, client: httpx.AsyncClient | None) -> bool:
    """``http2=True``: pandas_async's own ``httpx.AsyncClient(http2=True)``; needs h2."""
    if not isinstance(value, bool):
        raise TypeError(f"http2= expects True or False, got {value!r}")
    if value and client is not None:
        raise ValueError(
            "http2=True sends through a client pandas_async makes, and client= gives your own: "
            "pass one of them (for HTTP/2 through your client, make it with "
            "httpx.AsyncClient(http2=True))"
        )
    if value and importlib.util.find_spec("h2") is None:
        raise ImportError(
            "http2=True needs the h2 package, which is not installed: "
            "pip install 'pandas-async[http2]'"
        )
    return value


def _timeout(value: Any, client: httpx.AsyncClient | None) -> float | httpx.Timeout | None:
    """Seconds per attempt (a float), per phase (an ``httpx.Timeout``), or None: the client's."""
    if value is UNSET:
        return None if client is not None else DEFAULT_TIMEOUT
    if value is None:
        return httpx.Timeout(None)
    if isinstance(value, httpx.Timeout):
        return value
    check_number("timeout=", value, minimum=0.0, strict=True, extra=" or an httpx.Timeout")
    return float(value)


def _cache_ttl(value: Any) -> float | None:
    """Seconds an answer kept on disk stays usable: a number or a ``timedelta``; None: always."""
    if value is None:
        return None
    if isinstance(value, datetime.timedelta):  # pandas.Timedelta is one too
        value = value.total_seconds()
    check_number("cache_ttl=", value, minimum=0.0, strict=True, extra=" or a timedelta")
    return float(value)


def _check_body(name: str, value: Any) -> None:
    """``json=``: JSON-ready data or a callable; ``data=``: form fields, text, bytes, a callable."""
    if value is None or value is UNSET or callable(value):
        return
    if name == "json=":
        problem = json_problem(value)
        if problem is not None:
            raise TypeError(f"json= {problem}")
        return
    if isinstance(value, Mapping | str | bytes | bytearray):
        return
    if isinstance(value, list | tuple) and all(
        isinstance(p, tuple | list) and len(p) == 2 for p in value
    ):
        return  # form fields as (name, value) pairs
    raise TypeError(
        "data= expects a dict of form fields (values may hold '{column}' fields), text, bytes "
        f"or a callable row -> dict, got {short(value)}"
    )
