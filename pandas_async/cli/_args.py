"""The command line's arguments: the parser, and the types that check each flag's value."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pandas_async import Cursor, LinkHeader, NextUrl, Offset, PageNumber, Paginator, __version__

__all__ = ["PROG", "ParserExit", "build_parser", "paginator"]

PROG = "pandas-async"

PAGINATE_HELP = """\
pagination styles for --paginate (each row's pages become rows; --max-pages caps them):
  page:PARAM[:SIZE_PARAM=SIZE][:start=N]
                  ?PARAM=1,2,3... e.g. page:page:per_page=100
  offset:PARAM:LIMIT_PARAM=LIMIT[:total=PATH]
                  ?PARAM=0,LIMIT,2*LIMIT... e.g. offset:offset:limit=50:total=meta.total
  cursor:PARAM:NEXT_PATH
                  ?PARAM=<the value at NEXT_PATH in the answer> e.g. cursor:cursor:next_cursor
  link            follow the Link: <...>; rel="next" header
  next:PATH       follow the URL at PATH in the answer, e.g. next:links.next
PATH is a key, with dots for nested keys (meta.total)."""


def _whole_number(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


positive_int = _whole_number(1)
non_negative_int = _whole_number(0)


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value >= 0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


NO_LIMIT = "none"
_BYTE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9,
               "kib": 2**10, "mib": 2**20, "gib": 2**30}  # fmt: skip


def max_bytes(text: str) -> int | str:
    """``--max-bytes``: ``1000000``, ``64MiB``, ``1GB``, or ``none`` (no limit)."""
    cleaned = text.strip().lower().replace(" ", "").replace("_", "")
    if cleaned == NO_LIMIT:
        return NO_LIMIT
    digits = cleaned.rstrip("kmgib")
    unit = _BYTE_UNITS.get(cleaned[len(digits) :])
    if not digits.isdigit() or unit is None or int(digits) * unit < 1:
        raise argparse.ArgumentTypeError(
            f"expected a size such as 1000000, 64MiB or 1GB, or 'none', got {text!r}"
        )
    return int(digits) * unit


def positive_float(text: str) -> float:
    value = non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def _rate(text: str) -> str | float:
    """``"120/min"`` stays a string for the library to parse; ``"20"`` becomes 20.0 per second."""
    try:
        return float(text)
    except ValueError:
        return text


def _name_value(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), value


def _json_body(text: str) -> Any:
    """A JSON document, or ``@file.json``; string values may hold ``{column}`` fields."""
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text()
        except OSError as exc:
            raise argparse.ArgumentTypeError(f"cannot read {text[1:]}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(
            f"not valid JSON ({exc.msg} at character {exc.pos}); quote it for the shell, e.g. "
            """--json '{"id": "{user_id}"}'"""
        ) from None


def _columns(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected column names separated by commas: {text!r}")
    return names


def paginator(text: str, max_pages: int | None = None) -> Paginator:
    """``--paginate`` syntax (see ``PAGINATE_HELP``) -> a paginator."""
    style, *parts = text.split(":")
    style = style.strip().lower()
    options: dict[str, str] = {}
    plain: list[str] = []
    for part in parts:
        name, sep, value = part.partition("=")
        if sep:
            options[name] = value
        else:
            plain.append(part)

    def number(name: str, value: str) -> int:
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"{style}: {name} must be a whole number, got {value!r}") from None

    try:
        if style == "page" and len(plain) == 1:
            start = options.pop("start", "1")
            size = next(iter(options.items()), None)
            return PageNumber(
                plain[0],
                size_param=size[0] if size else None,
                size=number(size[0], size[1]) if size else None,
                start=number("start", start),
                max_pages=max_pages,
            )
        if style == "offset" and len(plain) == 1 and options:
            total = options.pop("total", None)
            if len(options) == 1:
                (limit_param, limit), *_ = options.items()
                return Offset(
                    plain[0],
                    limit_param,
                    number(limit_param, limit),
                    total_path=total,
                    max_pages=max_pages,
                )
        if style == "cursor" and len(plain) == 2 and not options:
            return Cursor(plain[0], plain[1], max_pages=max_pages)
        if style == "link" and not parts:
            return LinkHeader(max_pages=max_pages)
        if style == "next" and len(plain) == 1 and not options:
            return NextUrl(plain[0], max_pages=max_pages)
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"--paginate {text!r}: {exc}") from None
    raise argparse.ArgumentTypeError(
        f"--paginate {text!r} is not a pagination style; expected one of page:PARAM, "
        "offset:PARAM:LIMIT_PARAM=LIMIT, cursor:PARAM:NEXT_PATH, link, next:PATH "
        "(see pandas-async fetch --help)"
    )


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises instead of exiting, so ``main`` can return the code."""

    def exit(self, status: int = 0, message: str | None = None) -> None:  # type: ignore[override]
        if message:
            self._print_message(message, sys.stderr)
        raise ParserExit(status)


class ParserExit(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description=(
            "Enrich tables from HTTP APIs: one concurrent, rate-limited, retried request per row, "
            "answers joined back as columns or rows."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    demo = commands.add_parser(
        "demo",
        help="run the main job against a bundled local demo API (no internet needed)",
        description=(
            "Start a local demo JSON API on 127.0.0.1, enrich a table of customers from it "
            "concurrently, and compare with sending the same requests one at a time."
        ),
    )
    demo.add_argument("--rows", type=positive_int, default=200, help="rows to enrich (200)")
    demo.add_argument(
        "--concurrency", type=positive_int, default=50, help="requests in flight (50)"
    )
    demo.add_argument(
        "--latency",
        type=non_negative_float,
        default=0.05,
        help="seconds the demo API takes per answer (0.05)",
    )
    demo.add_argument(
        "--serve", action="store_true", help="only run the demo API and print its URL, until Ctrl-C"
    )
    demo.add_argument(
        "--port", type=non_negative_int, default=0, help="port for --serve (default: any free)"
    )

    fetch = commands.add_parser(
        "fetch",
        help="enrich a CSV, Parquet or JSON-lines file, one request per row",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Read INPUT, send one request per row and write the table with the answers as new\n"
            "columns (or rows) to OUTPUT. Formats follow the extensions: .csv (.csv.gz, ...),\n"
            ".tsv, .parquet/.pq, .jsonl/.ndjson. An OUTPUT folder (no extension, or a trailing /)\n"
            "is a Parquet dataset written in batches as rows complete; run the same command\n"
            "again to fetch only the rows not written yet (give --key columns that identify rows)."
        ),
        epilog=PAGINATE_HELP + "\n\nexamples:\n"
        "  pandas-async fetch users.csv --url 'https://api.example.com/users/{id}' \\\n"
        "      --concurrency 20 --rate 10/s --prefix user. -o users_enriched.parquet\n"
        "  pandas-async fetch pairs.csv --url 'https://api.example.com/candles' \\\n"
        "      --param 'symbol={symbol}' --param 'date={date}' --rate 20/s \\\n"
        "      -o candles/ --key symbol,date --partition-by symbol,date",
    )
    fetch.add_argument("input", metavar="INPUT", type=Path, help="the table to enrich")
    fetch.add_argument(
        "--url",
        required=True,
        metavar="TEMPLATE",
        help="URL template filled from each row, e.g. 'https://h/users/{user_id}', "
        "or the name of a column holding URLs",
    )
    fetch.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUTPUT",
        help="a file to write, or a folder for a resumable Parquet dataset",
    )
    body = fetch.add_argument_group("request")
    body.add_argument("--method", default="GET", help="HTTP method (GET)")
    body.add_argument(
        "--param",
        action="append",
        type=_name_value,
        default=[],
        metavar="NAME=TEMPLATE",
        help="a query parameter, may use {column} fields; repeatable",
    )
    body.add_argument(
        "--header",
        action="append",
        type=_name_value,
        default=[],
        metavar="NAME=TEMPLATE",
        help="a request header, may use {column} fields; repeatable",
    )
    body.add_argument(
        "--json",
        type=_json_body,
        metavar="JSON",
        help="a JSON body; string values may hold {column} fields (a lone "
        '"{col}" keeps the value\'s type), e.g. \'{"id": "{user_id}"}\'; '
        "or @file.json",
    )
    body.add_argument(
        "--paginate",
        metavar="STYLE",
        help="follow each row's pages: page:PARAM, offset:PARAM:LIMIT_PARAM=N, "
        "cursor:PARAM:NEXT_PATH, link, next:PATH (details below)",
    )
    body.add_argument("--max-pages", type=positive_int, metavar="N", help="pages per row at most")
    policy = fetch.add_argument_group("pace and retries")
    policy.add_argument(
        "--concurrency", type=positive_int, default=10, help="requests in flight (10)"
    )
    policy.add_argument(
        "--rate",
        type=_rate,
        default=None,
        help="at most this many request starts per period: '10/s', '120/min', "
        "'5000/h', or a number per second (no limit)",
    )
    policy.add_argument(
        "--burst",
        type=positive_int,
        default=None,
        metavar="N",
        help="how many of a period's requests may start at once; 1 spaces them "
        "evenly (what nginx limit_req accepts); default: up to --rate's N",
    )
    policy.add_argument(
        "--timeout", type=positive_float, default=10.0, help="seconds per attempt (10)"
    )
    policy.add_argument(
        "--max-bytes",
        type=max_bytes,
        metavar="SIZE",
        help="largest answer read, after decompression: 1000000, 64MiB, 1GB, or 'none' "
        "(128MiB); a larger one fails its row as 'answer too large'",
    )
    policy.add_argument(
        "--retries", type=non_negative_int, default=3, help="extra attempts on transient errors (3)"
    )
    policy.add_argument(
        "--cache",
        nargs="?",
        const=True,
        default=None,
        metavar="FOLDER",
        help="keep successful GET answers on disk (in FOLDER, or the user cache "
        "folder) so a re-run sends no request for them",
    )
    policy.add_argument(
        "--cache-ttl",
        type=positive_float,
        metavar="SECONDS",
        help="cached answers older than this are fetched again (never expire)",
    )
    shape = fetch.add_argument_group("answers")
    shape.add_argument(
        "--parse",
        choices=("json", "text", "bytes", "csv"),
        default="json",
        help="how to read each answer (json)",
    )
    shape.add_argument(
        "--how",
        choices=("auto", "columns", "rows"),
        default="auto",
        help="object answers become columns, lists become rows (auto)",
    )
    shape.add_argument(
        "--record-path",
        metavar="PATH",
        help="where the records are in each answer; dots separate levels",
    )
    shape.add_argument("--prefix", help="prefix for every new column, e.g. 'user.'")
    shape.add_argument(
        "--schema",
        action="append",
        type=_name_value,
        default=[],
        metavar="COLUMN=DTYPE",
        help="keep only these new columns, with these types (float64, Int64, "
        "string, datetime64[ns, UTC]...); a row whose value does not fit fails; "
        "repeatable",
    )
    shape.add_argument(
        "--errors",
        choices=("raise", "collect"),
        default="raise",
        help="raise: exit with status 1 if any row failed; collect: keep failed "
        "rows with _status/_error columns and exit 0 (in a folder, failed rows "
        "are never written: a re-run retries them)",
    )
    folder = fetch.add_argument_group("OUTPUT folder (a resumable Parquet dataset)")
    folder.add_argument(
        "--key",
        type=_columns,
        metavar="COLS",
        help="columns that identify each input row (comma-separated); a re-run "
        "skips rows whose key is written (default: the row number)",
    )
    folder.add_argument(
        "--partition-by",
        type=_columns,
        metavar="COLS",
        help="lay the folder out as COL=value/ subfolders (comma-separated)",
    )
    folder.add_argument(
        "--batch-size",
        type=positive_int,
        default=10_000,
        metavar="N",
        help="input rows per written batch (10000)",
    )
    progress = fetch.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress",
        dest="progress",
        action="store_const",
        const=True,
        default=None,
        help="always show a progress bar (default: long jobs)",
    )
    progress.add_argument(
        "--no-progress", dest="progress", action="store_const", const=False, help="never show one"
    )
    return parser
