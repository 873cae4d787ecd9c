"""Per-row pagination: five paginator value objects, and the loop that follows a row's pages.

A paginator answers one question: given the request just sent and its answer, which request
fetches the next page (or ``None`` when there is none). The loop in ``fetch_pages`` does the rest
for every style alike: it stops on an empty page or after ``max_pages``, refuses a page it has
already fetched (a loop), and keeps the records of the pages before a failure.

Write your own by subclassing ``Paginator`` and implementing ``next_request``; see the README.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

import httpx
import pandas as pd

from ._outcome import Answer, Outcome
from ._requests import RequestSpec, freeze, url_with_params
from ._secrets import is_secret_name, redact, secret_values

__all__ = [
    "Cursor",
    "LinkHeader",
    "NextUrl",
    "Offset",
    "PageNumber",
    "Paginator",
    "check_paginate",
    "fetch_pages",
]

Path = str | Sequence[str]


@dataclass(frozen=True, kw_only=True)
class Page:
    """What a paginator knows about the page just fetched."""

    number: int  # 1 for the first page fetched
    records: int  # records on this page
    records_so_far: int  # on every page fetched, this one included
    value: Any  # the parsed answer
    answer: Answer = dataclasses.field(repr=False, compare=False)

    @property
    def response(self) -> httpx.Response:
        """The page's ``httpx.Response``, built on first use: PageNumber, Offset and Cursor never
        ask for it, and building one per page cost more CPU than the rest of the page's work."""
        return self.answer.response


class Paginator:
    """Base class: ``first_request`` shapes the first page's request, ``next_request`` the next.

    A ``max_pages`` attribute, when a subclass has one, caps the pages fetched per row (``None``:
    until the API says there are no more). Not a dataclass itself, so a subclass may be a plain
    class, a ``@dataclass`` or a ``@dataclass(frozen=True)``.
    """

    def first_request(self, spec: RequestSpec) -> RequestSpec:
        return spec

    def next_request(self, spec: RequestSpec, page: Page) -> RequestSpec | None:
        raise NotImplementedError

    @property
    def page_limit(self) -> int | None:
        return getattr(self, "max_pages", None)


def check_paginate(paginate: object, how: str) -> Paginator | None:
    """The ``paginate=`` option, checked before any request (``how=`` is already checked)."""
    if paginate is None:
        return None
    if not isinstance(paginate, Paginator):
        raise TypeError(
            "paginate= expects a paginator such as pandas_async.PageNumber('page'), "
            f"got {paginate!r}"
        )
    if how == "columns":
        raise ValueError("paginate= gives each row's records as rows: use how='rows' or 'auto'")
    return paginate


def _with_params(spec: RequestSpec, **updates: Any) -> RequestSpec:
    params = dict(spec.params or {})
    params.update(updates)
    return dataclasses.replace(spec, params=params)


def _with_url(spec: RequestSpec, page: Page, link: str) -> RequestSpec:
    """The request for a next link. The link already carries the query, so the row's params are
    dropped (not sent twice); a link to another origin loses the secret headers, as httpx does
    with redirects, so that an API cannot send the row's credentials to a third party.
    """
    here = page.response.url
    url = urljoin(str(here), link)
    target = urlsplit(url)
    headers = spec.headers
    if headers and (target.scheme, target.netloc) != (here.scheme, here.netloc.decode()):
        headers = {k: v for k, v in headers.items() if not is_secret_name(k)}
    return dataclasses.replace(spec, url=url, params=None, headers=headers)


def _check_max_pages(max_pages: int | None) -> None:
    if max_pages is not None and (
        isinstance(max_pages, bool) or not isinstance(max_pages, int) or max_pages < 1
    ):
        raise ValueError(f"max_pages= must be a whole number >= 1 or None, got {max_pages!r}")


def _check_name(owner: str, name: str, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise TypeError(f"{owner}({name}=) expects a parameter name, got {value!r}")


def _check_path(owner: str, name: str, value: Any) -> None:
    ok = (isinstance(value, str) and value) or (
        isinstance(value, list | tuple) and value and all(isinstance(k, str) for k in value)
    )
    if not ok:
        raise TypeError(
            f"{owner}({name}=) expects a key such as 'next' or 'meta.total', or a list of keys, "
            f"got {value!r}"
        )


def get_path(value: Any, path: Path) -> Any:
    """``value["a"]["b"]`` for ``"a.b"`` or ``["a", "b"]``; ``None`` when any step is missing."""
    keys = path.split(".") if isinstance(path, str) else path
    for key in keys:
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    return value


@dataclass(frozen=True)
class PageNumber(Paginator):
    """``?page=1``, ``?page=2``... (plus ``size_param=size`` on every page if given).

    Stops on an empty page, on a page shorter than ``size``, or after ``max_pages``.
    """

    param: str
    size_param: str | None = None
    size: int | None = None
    start: int = 1
    max_pages: int | None = None

    def __post_init__(self) -> None:
        _check_name("PageNumber", "param", self.param)
        if (self.size_param is None) != (self.size is None):
            raise ValueError("PageNumber: give size_param= and size= together, or neither")
        if self.size is not None and (
            isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1
        ):
            raise ValueError(f"PageNumber(size=) must be a whole number >= 1, got {self.size!r}")
        if isinstance(self.start, bool) or not isinstance(self.start, int):
            raise TypeError(f"PageNumber(start=) expects a whole number, got {self.start!r}")
        _check_max_pages(self.max_pages)

    def first_request(self, spec: RequestSpec) -> RequestSpec:
        extra = {self.size_param: self.size} if self.size_param else {}
        return _with_params(spec, **{self.param: self.start}, **extra)

    def next_request(self, spec: RequestSpec, page: Page) -> RequestSpec | None:
        if self.size is not None and page.records < self.size:
            return None  # a short page is the last one
        return _with_params(spec, **{self.param: self.start + page.number})


@dataclass(frozen=True)
class Offset(Paginator):
    """``?offset=0&limit=100``, ``?offset=100&limit=100``...

    Stops on an empty page, after ``max_pages``, and once ``total_path`` (a key such as
    ``"meta.total"`` in each answer) says every record was fetched. The next offset is the last
    one plus the records received. Without a total, a page shorter than ``limit`` is the last;
    with one, a short page is not (an API may cap ``limit`` lower than asked).
    """

    param: str
    limit_param: str
    limit: int
    total_path: Path | None = None
    max_pages: int | None = None

    def __post_init__(self) -> None:
        _check_name("Offset", "param", self.param)
        _check_name("Offset", "limit_param", self.limit_param)
        if self.total_path is not None:
            _check_path("Offset", "total_path", self.total_path)
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1:
            raise ValueError(f"Offset(limit=) must be a whole number >= 1, got {self.limit!r}")
        _check_max_pages(self.max_pages)

    def first_request(self, spec: RequestSpec) -> RequestSpec:
        return _with_params(spec, **{self.param: 0, self.limit_param: self.limit})

    def next_request(self, spec: RequestSpec, page: Page) -> RequestSpec | None:
        total = None if self.total_path is None else get_path(page.value, self.total_path)
        if isinstance(total, int | float) and not isinstance(total, bool):
            if page.records_so_far >= total:
                return None
        elif page.records < self.limit:
            return None  # no total known: a short page is the last one
        offset = int((spec.params or {}).get(self.param, 0)) + page.records
        return _with_params(spec, **{self.param: offset})


@dataclass(frozen=True)
class Cursor(Paginator):
    """``?cursor=<value at next_path in the last answer>`` until that value is missing or empty."""

    param: str
    next_path: Path
    max_pages: int | None = None

    def __post_init__(self) -> None:
        _check_name("Cursor", "param", self.param)
        _check_path("Cursor", "next_path", self.next_path)
        _check_max_pages(self.max_pages)

    def next_request(self, spec: RequestSpec, page: Page) -> RequestSpec | None:
        cursor = get_path(page.value, self.next_path)
        if cursor is None or cursor == "" or cursor is False:
            return None
        return _with_params(spec, **{self.param: cursor})


@dataclass(frozen=True)
class LinkHeader(Paginator):
    """Follows the RFC 8288 ``Link: <...>; rel="next"`` header (GitHub style)."""

    max_pages: int | None = None

    def __post_init__(self) -> None:
        _check_max_pages(self.max_pages)

    def next_request(self, spec: RequestSpec, page: Page) -> RequestSpec | None:
        link = page.response.links.get("next", {}).get("url")
        if not link:
            return None
        return _with_url(spec, page, link)


@dataclass(frozen=True)
class NextUrl(Paginator):
    """Follows the URL at ``path`` in each answer (``"next"``, ``"links.next"``) until empty."""

    path: Path
    max_pages: int | None = None

    def __post_init__(self) -> None:
        _check_path("NextUrl", "path", self.path)
        _check_max_pages(self.max_pages)

    def next_request(self, spec: RequestSpec, page: Page) -> RequestSpec | None:
        link = get_path(page.value, self.path)
        if not link or not isinstance(link, str):
            return None
        return _with_url(spec, page, link)


def page_records(value: Any, record_path: str | list[str] | None) -> list[Any] | None:
    """The records of one page, or ``None`` when they cannot be found."""
    if isinstance(value, list):
        return value
    if isinstance(value, pd.DataFrame):  # parse="csv"
        return value.to_dict("records")
    if value is None:
        return []
    if record_path is None:
        return None
    found = get_path(value, [record_path] if isinstance(record_path, str) else record_path)
    return found if isinstance(found, list) else None


def _page_key(spec: RequestSpec) -> Hashable:
    """The page a request asks for: everything that can tell one page from another (a cursor
    may travel in the query, a header or the body). The query compares the same whether it is
    in ``url`` or ``params``, as a next link carries the query the first request sent as params.
    """
    body = (freeze(spec.headers), freeze(spec.json), freeze(spec.data))
    # Without httpx when the params are plain (nearly always): parsing a URL with httpx costs
    # more than the rest of a page's work. A params key replaces the URL's own, as in httpx.
    base, _, query = spec.url.partition("#")[0].partition("?")
    pairs = parse_qsl(query, keep_blank_values=True)
    extra = url_with_params("", spec.params) if spec.params else "?"
    if extra is not None:
        if spec.params:
            pairs = [pair for pair in pairs if pair[0] not in spec.params]
            pairs += parse_qsl(extra[1:], keep_blank_values=True)
        return (spec.method, base, tuple(sorted(pairs)), body)
    try:
        url = httpx.URL(spec.url)
        if spec.params:
            url = url.copy_merge_params(spec.params)
        merged = tuple(sorted(url.params.multi_items()))
        return (spec.method, str(url.copy_with(query=None, fragment=None)), merged, body)
    except (TypeError, ValueError, httpx.InvalidURL):  # a value httpx cannot send: compare as is
        return (spec.method, spec.url, freeze(spec.params), body)


async def fetch_pages(
    fetch: Callable[[RequestSpec], Awaitable[tuple[Outcome, Answer | None]]],
    spec: RequestSpec,
    paginator: Paginator,
    record_path: str | list[str] | None,
) -> Outcome:
    """Every page of one row. The outcome's value holds the records of all pages, in order
    (a list of records, or a list of page objects when ``record_path`` points into them); when a
    page fails, the outcome is that failure, still carrying the records of the pages before it.
    A paginator that raises fails its row (cause ``"paginator error"``), like a failed page.

    Two guards against an API that never says "last page": a request for a page already fetched,
    and a page whose records are the previous page's (an API that ignores ``?page=`` answers
    the same page for ever). Either stops the row as ``"pagination loop"``, the records fetched
    before kept (the repeated page not added again).
    """
    try:
        spec = _checked(paginator.first_request(spec), "first_request")
    except Exception as exc:
        return _paginator_failed(spec, exc, None, 0, None, 0.0, 0)
    seen = {_page_key(spec)}
    collected: list[Any] = []
    previous: list[Any] | None = None  # the records of the page before
    attempts, elapsed, so_far, number = 0, 0.0, 0, 0
    limit = paginator.page_limit
    while True:
        outcome, answer = await fetch(spec)
        number += 1
        attempts += outcome.attempts
        elapsed += outcome.elapsed
        if not outcome.ok or answer is None:
            return Outcome(collected or None, outcome.status, outcome.error, outcome.cause,
                           elapsed, attempts, number)  # fmt: skip
        records = page_records(outcome.value, record_path)
        if records is None:
            cause = "unexpected answer"
            error = (
                f"{cause}: page {number} is a {type(outcome.value).__name__}, not a list of "
                "records; give record_path= to say where its records are"
            )
            return Outcome(
                collected or None, outcome.status, error, cause, elapsed, attempts, number
            )
        if records and records == previous:
            cause = "pagination loop"
            error = (
                f"{cause}: page {number} has the same records as page {number - 1}; stopped "
                "(does the API ignore the paginator's parameter?)"
            )
            return Outcome(collected, outcome.status, error, cause, elapsed, attempts, number)
        previous = records
        so_far += len(records)
        if records:
            if record_path is None:
                collected.extend(records)
            else:
                collected.append(outcome.value)
        done = Outcome(collected, outcome.status, None, None, elapsed, attempts, number)
        if not records or (limit is not None and number >= limit):
            return done
        page = Page(number=number, records=len(records), records_so_far=so_far,
                    value=outcome.value, answer=answer)  # fmt: skip
        try:
            following = paginator.next_request(spec, page)
            if following is not None:
                following = _checked(following, "next_request")
        except Exception as exc:
            return _paginator_failed(
                spec, exc, collected, number, outcome.status, elapsed, attempts
            )
        if following is None:
            return done
        key = _page_key(following)
        if key in seen:
            cause = "pagination loop"
            error = f"{cause}: page {number + 1} would repeat an earlier page; stopped"
            return Outcome(collected, outcome.status, error, cause, elapsed, attempts, number)
        seen.add(key)
        spec = following


def _checked(spec: Any, method: str) -> RequestSpec:
    """A custom paginator's answer, refused (failing its row only) unless it is a request spec."""
    if not isinstance(spec, RequestSpec):
        raise TypeError(
            f"{method}() returned a {type(spec).__name__}, expected a RequestSpec (or None to "
            "stop); build it with dataclasses.replace(spec, ...)"
        )
    return spec


def _paginator_failed(
    spec: RequestSpec,
    exc: Exception,
    collected: list[Any] | None,
    number: int,
    status: int | None,
    elapsed: float,
    attempts: int,
) -> Outcome:
    cause = "paginator error"
    where = f" after page {number}" if number else ""
    detail = redact(
        f"{type(exc).__name__}: {exc}", secret_values(spec.headers, spec.params, spec.url)
    )
    error = f"{cause}{where}: {detail[:200]}"
    return Outcome(collected or None, status, error, cause, elapsed, attempts, max(number, 1))
