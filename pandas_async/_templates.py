"""URL and value templates: ``"/users/{user_id}"`` filled from a row's values. Pure: no I/O.

A URL template percent-encodes each value as one path segment; it is filled a column at a time
for a whole frame (``Template.render_all``), or row by row. Templated strings inside params,
headers and bodies (``{"q": "{name}"}``) are filled per row by ``fill``.
"""

from __future__ import annotations

import string
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from ._values import MISSING, ValueProblem, is_missing, json_ready, text_of

__all__ = ["Template", "fields_of", "fill", "host_of", "is_template"]

_FORMATTER = string.Formatter()


def host_of(url: str) -> str:
    """The URL's authority (``host:port``), never its user info: it names hosts in reports."""
    authority = url.partition("://")[2]
    for end in "/?#":
        authority = authority.partition(end)[0]
    return authority.rpartition("@")[2]


class Template:
    """A ``str.format``-style template whose fields name columns: ``"/users/{user_id}"``.

    ``encode=True`` (URLs) percent-encodes each value as one path segment, so ``../`` or ``?``
    in the data cannot change the target.
    """

    __slots__ = ("fields", "parts", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.parts: list[tuple[str, str | None, str, str | None]] = []
        for literal, field, spec, conversion in _FORMATTER.parse(source):
            self.parts.append((literal, field, spec or "", conversion))
        self.fields = [f for _, f, _, _ in self.parts if f is not None]
        for f in self.fields:
            if f == "":  # "{0}" names column 0 (a frame read with header=None); "{}" names none
                raise ValueError(
                    f"template {source!r} has an empty field {{}}; name a column instead, "
                    "like '{user_id}'"
                )

    @property
    def is_single_field(self) -> bool:
        """``"{col}"`` alone: the value is used as is (keeps ints as ints in a JSON body)."""
        return len(self.parts) == 1 and self.parts[0][0] == "" and self.parts[0][1] is not None

    def render(self, row: Mapping[str, Any], *, encode: bool = False) -> str:
        out: list[str] = []
        for literal, field, spec, conversion in self.parts:
            out.append(literal)
            if field is None:
                continue
            value = _whole(row[field])
            if conversion == "r":
                value = repr(value)
            elif conversion == "a":
                value = ascii(value)
            text = format(value, spec) if spec else text_of(value, f"column {field!r}")
            if encode:
                # "." and ".." are dot-segments a URL parser would resolve: encode them too.
                text = "%2E" * len(text) if text in (".", "..") else quote(text, safe="")
            out.append(text)
        return "".join(out)

    def render_all(self, columns: Mapping[str, list[Any]], n: int) -> list[str | None] | None:
        """Every row's URL at once, encoded as ``render(row, encode=True)`` encodes it, a column
        at a time (~4x less CPU than row by row). None in a row whose value is not text (the
        row path says why); None for all when a field has a format spec or a conversion."""
        if any(spec or conversion for _, _, spec, conversion in self.parts):
            return None
        pieces: list[list[str | None] | str] = []
        for literal, field, _, _ in self.parts:
            if literal:
                pieces.append(literal)
            if field is not None:
                pieces.append(_encoded(columns[field]))
        if len(pieces) <= 3 and sum(isinstance(p, list) for p in pieces) == 1:
            # The usual "https://host/users/{id}" (maybe with a constant tail): one field.
            head = pieces[0] if isinstance(pieces[0], str) else ""
            tail = pieces[-1] if isinstance(pieces[-1], str) and len(pieces) > 1 else ""
            (texts,) = [p for p in pieces if isinstance(p, list)]
            return [None if t is None else f"{head}{t}{tail}" for t in texts]
        out: list[str | None] = []
        for i in range(n):
            parts = [p if isinstance(p, str) else p[i] for p in pieces]
            out.append(None if None in parts else "".join(parts))  # type: ignore[arg-type]
        return out

    @property
    def fixed_host(self) -> str | None:
        """The host of every URL this template makes, when no field is in the authority."""
        head = self.parts[0][0] if self.parts else ""
        _, sep, rest = head.partition("://")
        if not sep or not any(end in rest for end in "/?#"):
            return None
        return host_of(head)


def _encoded(values: list[Any]) -> list[str | None]:
    """A column's values as URL path segments (see ``Template.render``); None: not text."""
    if all(type(v) is int for v in values):  # digits and "-": nothing to encode
        return list(map(str, values))
    out: list[str | None] = []
    for value in values:
        try:
            text = text_of(_whole(value), "")
        except ValueProblem:
            out.append(None)
            continue
        out.append("%2E" * len(text) if text in (".", "..") else quote(text, safe=""))
    return out


def is_template(text: str) -> bool:
    return "{" in text


@lru_cache(maxsize=256)
def _cached(source: str) -> Template:
    return Template(source)


def fields_of(value: Any) -> Iterator[str]:
    """Column names referenced by templated strings inside a dict/list option."""
    if isinstance(value, str):
        if is_template(value):
            yield from _cached(value).fields
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from fields_of(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from fields_of(v)


def fill(value: Any, row: Mapping[str, Any], *, whole: bool = False) -> Any:
    """Fill every templated string in a dict/list/str with the row's values.

    A string whose fields hold a missing value becomes ``MISSING``: the caller leaves that param,
    header or form field out (a JSON body gets null), rather than send "None" or "nan".
    ``whole``: a lone field's whole-number float goes in as an integer (params, headers, form
    data; a JSON body keeps the float).
    """
    if isinstance(value, str):
        if not is_template(value):
            return value
        template = _cached(value)
        if template.is_single_field:
            field = template.fields[0]
            cell = _plain(row[field], f"column {field!r}")
            return _whole(cell) if whole else cell
        if any(is_missing(row[f]) for f in template.fields):
            return MISSING
        return template.render(row)
    if isinstance(value, Mapping):
        return {k: fill(v, row, whole=whole) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [fill(v, row, whole=whole) for v in value]
    return value


def _whole(value: Any) -> Any:
    """``1.0`` -> ``1``: a whole-number float in text is nearly always an id column that pandas
    widened to float because of a gap; ``/users/1.0`` would miss. Other values as they are."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _plain(value: Any, where: str) -> Any:
    """A cell as a JSON-ready value: missing -> MISSING, timestamps -> ISO text, numpy -> Python,
    bytes -> text."""
    if value is None or isinstance(value, str | bool | int):
        return MISSING if value is None else value
    if is_missing(value):
        return MISSING
    if isinstance(value, bytes | bytearray):
        return text_of(value, where)
    try:
        return json_ready(value, where)
    except ValueProblem:
        return value  # a JSON body refuses it later; a param or header sends its text
