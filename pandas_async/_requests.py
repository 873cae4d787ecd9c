"""Rows -> request specs: templates, percent-encoding, dedupe keys. Pure: no I/O.

Every column a template, list or option names is checked against the frame before anything is
built, so a typo raises ``KeyError`` naming the column before a single request is sent.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlencode

import pandas as pd

from ._options import UNSET
from ._outcome import Outcome
from ._secrets import MASK, is_secret_name, mask_headers, mask_url, query_pairs
from ._templates import Template, fields_of, fill, host_of, is_template
from ._values import ValueProblem, outgoing, text_of

__all__ = ["RequestOptions", "RequestSpec", "Template", "build_requests", "url_with_params"]


def url_with_params(url: str, params: Any) -> str | None:
    """``url`` with ``params`` as its query, encoded exactly as httpx encodes them (``true``,
    ``false``, ``""`` for None, a list as repeated keys, ``urlencode``'s quoting), or None when
    only httpx can say: the URL already has a query or fragment, or a value is not plain.

    Parsing the URL with httpx costs ~60 µs; a page loop sends a new query on every page, so
    this is most of its CPU when done by httpx.
    """
    if not isinstance(params, dict) or "?" in url or "#" in url:
        return None
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        if not isinstance(key, str):
            return None
        values = value if isinstance(value, list | tuple) else (value,)
        if not values:
            return None
        for v in values:
            if v is None:
                text = ""
            elif v is True or v is False:
                text = "true" if v else "false"
            elif isinstance(v, str | int | float):
                text = str(v)
            else:
                return None
            pairs.append((key, text))
    return f"{url}?{urlencode(pairs)}"


@dataclass(slots=True, eq=False, repr=False)
class RequestSpec:
    """One HTTP request, as built from one row (or a page of it)."""

    method: str
    url: str
    params: Any = None
    headers: Mapping[str, str] | None = None
    json: Any = UNSET
    data: Any = None
    # Set when the row's request could not be built (a callable raised, a value cannot be sent):
    # the row's outcome, sent as is by the engine, so only that row fails.
    problem: Outcome | None = None
    _host: str | None = dataclasses.field(
        default=None, init=False, repr=False
    )  # worked out on first use

    def __repr__(self) -> str:  # secrets masked: a spec can end up in a user's log
        params = [(k, MASK if is_secret_name(k) else v) for k, v in query_pairs(self.params)]
        return (
            f"RequestSpec({self.method} {mask_url(self.url)}, params={params or None}, "
            f"headers={mask_headers(self.headers) or None})"
        )

    def dedupe_key(self) -> Hashable | None:
        """Identical GET/HEAD requests share one answer; other methods are never merged.

        The body is part of the key: search APIs take a GET with a JSON body, and two rows with
        different bodies asked different questions.
        """
        if self.method not in ("GET", "HEAD") or self.problem is not None:
            return None
        plain = self.params is None and self.headers is None and self.data is None
        if plain and self.json is UNSET:
            return (self.method, self.url)  # the usual GET: nothing else to tell it apart
        body = None if self.json is UNSET else ("json", freeze(self.json))
        return (
            self.method,
            self.url,
            freeze(self.params),
            freeze(self.headers),
            body,
            freeze(self.data),
        )

    @property
    def host(self) -> str:
        """The URL's authority (``host:port``), the key of the per-host cool-down."""
        host = self._host
        if host is None:
            host = self._host = host_of(self.url)
        return host


def freeze(value: Any) -> Hashable:
    """A hashable stand-in for params/headers/bodies, equal for equal contents."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        return tuple(sorted(((str(k), freeze(v)) for k, v in value.items()), key=_first))
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return repr(value)


def _first(pair: tuple[str, Hashable]) -> str:
    return pair[0]


class _RowFailure(Exception):
    """This row's request cannot be built; the others can."""

    def __init__(self, cause: str, text: str) -> None:
        super().__init__(text)
        self.cause = cause
        self.text = text


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text if len(text) <= 200 else text[:197] + "..."


def _call(fn: Callable[[Any], Any], name: str, row: Any) -> Any:
    """A user's callable, whose failure fails this row only."""
    try:
        return fn(row)
    except Exception as exc:
        cause = f"{name}= callable error"
        raise _RowFailure(cause, f"{name}= callable raised {_short(exc)}") from exc


class _CompiledOption:
    """One of url/params/headers/json/data, ready to produce a value per row."""

    __slots__ = ("constant", "fn", "name")

    def __init__(self, name: str, constant: Any = None, fn: Callable[..., Any] | None = None):
        self.name = name
        self.constant = constant
        self.fn = fn


class RequestOptions(Protocol):
    """The options a request is built from (``FetchOptions`` has them): no more is needed here."""

    @property
    def method(self) -> str: ...
    @property
    def params(self) -> Any: ...
    @property
    def headers(self) -> Any: ...
    @property
    def json(self) -> Any: ...
    @property
    def data(self) -> Any: ...
    @property
    def client(self) -> object: ...


def build_requests(
    frame: pd.DataFrame, url: Any, options: RequestOptions, *, url_is_column: bool | None = None
) -> list[RequestSpec]:
    """One ``RequestSpec`` per row of ``frame``, in order. Raises before building on bad input."""
    columns = {str(c): c for c in frame.columns}

    def need(col: str, where: str) -> None:
        if col not in columns:
            shown = ", ".join(map(repr, list(columns)[:20]))
            raise KeyError(
                f"{where} names column {col!r}, which the frame does not have (columns: {shown})"
            )
        if not frame.columns.is_unique and isinstance(frame[columns[col]], pd.DataFrame):
            raise ValueError(f"{where} names column {col!r}, which appears more than once")

    # -- url ---------------------------------------------------------------------------------
    url_template: Template | None = None
    url_column: str | None = None
    url_fn: Callable[[pd.Series], Any] | None = None
    if callable(url):
        url_fn = url
    elif isinstance(url, str):
        if url_is_column or (url_is_column is None and url in columns):
            url_column = url
        elif is_template(url) or "://" in url or url.startswith("/"):
            url_template = Template(url)
            for f in url_template.fields:
                need(f, f"url template {url!r}")
        else:
            raise KeyError(
                f"url={url!r} is neither a column of the frame nor a URL or template "
                "(expected a column name, 'https://host/path/{column}' or a callable)"
            )
    else:
        raise TypeError(
            f"url= expects a column name, a URL template or a callable row -> str, got {url!r}"
        )

    # -- params / headers / json / data -------------------------------------------------------
    compiled: dict[str, _CompiledOption] = {}
    params = options.params
    if isinstance(params, list | tuple) and all(isinstance(p, str) for p in params):
        for p in params:
            need(p, "params list")
        params = {p: "{" + p + "}" for p in params}
    for name, value in (
        ("params", params),
        ("headers", options.headers),
        ("json", options.json),
        ("data", options.data),
    ):
        if value is None or value is UNSET:
            continue
        if callable(value):
            compiled[name] = _CompiledOption(name, fn=value)
            continue
        if name in ("params", "headers") and not isinstance(value, Mapping):
            raise TypeError(
                f"{name}= expects a dict (values may hold '{{column}}' fields), a callable row -> "
                f"dict{' or a list of column names' if name == 'params' else ''}, got {value!r}"
            )
        for f in fields_of(value):
            need(f, f"{name}= template")
        compiled[name] = _CompiledOption(name, constant=value)

    # -- missing values in URL fields would build a wrong URL: refuse up front ------------------
    used: set[str] = set()
    if url_template is not None:
        used.update(url_template.fields)
    if url_column is not None:
        used.add(url_column)
    for col in sorted(used):
        missing = frame[columns[col]].isna()
        if missing.any():
            labels = list(frame.index[missing.to_numpy()][:5])
            raise ValueError(
                f"column {col!r} has {int(missing.sum())} missing value(s) used in the URL "
                f"(rows {labels}{'...' if missing.sum() > 5 else ''}); drop or fill them first"
            )

    # -- build -------------------------------------------------------------------------------
    n = len(frame)
    needs_series = url_fn is not None or any(c.fn is not None for c in compiled.values())
    templated = {f for opt in compiled.values() if opt.fn is None for f in fields_of(opt.constant)}
    if url_template is not None:
        templated.update(url_template.fields)
    values = {f: frame[columns[f]].tolist() for f in templated}
    url_values = frame[columns[url_column]].tolist() if url_column is not None else None
    series_rows = _iter_series(frame) if needs_series else None
    method = options.method
    static = {
        name: opt
        for name, opt in compiled.items()
        if opt.fn is None and not list(fields_of(opt.constant))
    }

    cleaned_static = {name: outgoing(name, opt.constant) for name, opt in static.items()}

    urls = url_template.render_all(values, n) if url_template is not None else None
    host = url_template.fixed_host if url_template is not None else None
    if urls is not None and not compiled and None not in urls:  # a URL and nothing else per row
        plain = [RequestSpec(method, url) for url in urls if url is not None]
        if host is not None:
            for spec in plain:
                spec._host = host
        return _checked(plain, frame, options)

    def one(i: int, row: dict[str, Any], series: Any) -> RequestSpec:
        if url_fn is not None:
            target = _call(url_fn, "url", series)
            if not isinstance(target, str):
                raise _RowFailure(
                    "url= callable error",
                    f"url= callable returned a {type(target).__name__}, expected a str",
                )
        elif url_column is not None:
            target = text_of(url_values[i], f"column {url_column!r}")  # type: ignore[index]
        elif urls is not None and (url := urls[i]) is not None:
            target = url
        else:
            target = url_template.render(row, encode=True)  # type: ignore[union-attr]
        kwargs: dict[str, Any] = {}
        for name, opt in compiled.items():
            if opt.fn is not None:
                kwargs[name] = outgoing(name, _call(opt.fn, name, series))
            elif name in static:
                kwargs[name] = cleaned_static[name]
            else:
                kwargs[name] = outgoing(name, fill(opt.constant, row, whole=name != "json"))
        return RequestSpec(method, target, **kwargs)

    specs: list[RequestSpec] = []
    for i in range(n):
        row = {f: col[i] for f, col in values.items()}
        series: Any = next(series_rows) if series_rows is not None else None
        try:
            specs.append(one(i, row, series))
        except ValueProblem as exc:
            specs.append(_failed_spec(method, "bad value", f"bad value: {exc}"))
        except _RowFailure as exc:
            specs.append(_failed_spec(method, exc.cause, exc.text))
    return _checked(specs, frame, options)


def _checked(
    specs: list[RequestSpec], frame: pd.DataFrame, options: RequestOptions
) -> list[RequestSpec]:
    """``specs``, once every URL is known to be absolute when no client gives a base URL."""
    if options.client is None:
        for label, spec in zip(frame.index, specs, strict=True):
            scheme = spec.url[:8].lower()  # HTTP:// is http:// too
            if spec.problem is None and not scheme.startswith(("http://", "https://")):
                raise ValueError(
                    f"row {label!r}: {spec.url[:80]!r} is not an http(s) URL; a relative URL "
                    "needs client=httpx.AsyncClient(base_url=...)"
                )
    return specs


def _failed_spec(method: str, cause: str, text: str) -> RequestSpec:
    return RequestSpec(method, "", problem=Outcome(None, None, text, cause))


def _iter_series(frame: pd.DataFrame) -> Iterator[pd.Series]:
    """Rows as Series (``row.name`` is the label), as ``DataFrame.apply(axis=1)`` gives them."""
    for _, row in frame.iterrows():
        yield row
