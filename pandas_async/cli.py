"""The ``pandas-async`` command line (also ``python -m pandas_async``).

Subcommands::

    pandas-async demo [--rows N] [--concurrency N] [--latency S] [--serve [--port P]]
    pandas-async fetch INPUT --url TEMPLATE -o OUTPUT [options]

``fetch`` reads INPUT, sends one request per row with ``DataFrame.aapi.fetch`` and writes the
enriched table to OUTPUT. Files are CSV (``.csv``, optionally compressed: ``.csv.gz`` ...),
Parquet (``.parquet``, ``.pq``; needs pyarrow) or JSON lines (``.jsonl``, ``.ndjson``),
chosen by extension.

Exit status: 0 on success, 1 when some rows failed (see ``--errors``), 2 for a usage or input
error, 130 when interrupted. User errors are reported in one line on stderr, without a traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["main"]

PROG = "pandas-async"

EXIT_OK = 0
EXIT_FAILED_ROWS = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
_COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst", ".zip")


class UserError(Exception):
    """A problem with what the user asked for; reported on stderr without a traceback."""


# --------------------------------------------------------------------------------------------
# Argument parsing
# --------------------------------------------------------------------------------------------


def _whole_number(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


_positive_int = _whole_number(1)
_non_negative_int = _whole_number(0)


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value >= 0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = _non_negative_float(text)
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


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises instead of exiting, so ``main`` can return the code."""

    def exit(self, status: int = 0, message: str | None = None) -> None:  # type: ignore[override]
        if message:
            self._print_message(message, sys.stderr)
        raise _ParserExit(status)


class _ParserExit(Exception):
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
    from pandas_async import __version__

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
    demo.add_argument("--rows", type=_positive_int, default=200, help="rows to enrich (200)")
    demo.add_argument(
        "--concurrency", type=_positive_int, default=50, help="requests in flight (50)"
    )
    demo.add_argument(
        "--latency",
        type=_non_negative_float,
        default=0.05,
        help="seconds the demo API takes per answer (0.05)",
    )
    demo.add_argument(
        "--serve",
        action="store_true",
        help="only run the demo API and print its URL, until Ctrl-C",
    )
    demo.add_argument(
        "--port", type=_non_negative_int, default=0, help="port for --serve (default: any free)"
    )

    fetch = commands.add_parser(
        "fetch",
        help="enrich a CSV, Parquet or JSON-lines file, one request per row",
        description=(
            "Read INPUT, send one request per row and write the table with the answers as new "
            "columns (or rows) to OUTPUT. Formats follow the extensions: .csv (.csv.gz, ...), "
            ".tsv, .parquet/.pq, .jsonl/.ndjson."
        ),
        epilog=(
            "example: pandas-async fetch users.csv --url 'https://api.example.com/users/{id}' "
            "--concurrency 20 --rate 10/s --prefix user. -o users_enriched.parquet"
        ),
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
        "-o", "--output", required=True, type=Path, metavar="OUTPUT", help="where to write"
    )
    fetch.add_argument("--method", default="GET", help="HTTP method (GET)")
    fetch.add_argument(
        "--param",
        action="append",
        type=_name_value,
        default=[],
        metavar="NAME=TEMPLATE",
        help="a query parameter, may use {column} fields; repeatable",
    )
    fetch.add_argument(
        "--header",
        action="append",
        type=_name_value,
        default=[],
        metavar="NAME=TEMPLATE",
        help="a request header, may use {column} fields; repeatable",
    )
    fetch.add_argument(
        "--concurrency", type=_positive_int, default=10, help="requests in flight (10)"
    )
    fetch.add_argument(
        "--rate",
        type=_rate,
        default=None,
        help="at most this many request starts per period: '10/s', '120/min', '5000/h', "
        "or a number per second (no limit)",
    )
    fetch.add_argument(
        "--timeout", type=_positive_float, default=10.0, help="seconds per attempt (10)"
    )
    fetch.add_argument(
        "--retries",
        type=_non_negative_int,
        default=3,
        help="extra attempts on transient errors (3)",
    )
    fetch.add_argument(
        "--how",
        choices=("auto", "columns", "rows"),
        default="auto",
        help="object answers become columns, lists become rows (auto)",
    )
    fetch.add_argument(
        "--record-path",
        metavar="PATH",
        help="where the records are in each answer; dots separate levels ('data.items')",
    )
    fetch.add_argument("--prefix", help="prefix for every new column, e.g. 'user.'")
    fetch.add_argument(
        "--errors",
        choices=("raise", "collect"),
        default="raise",
        help="raise: exit with status 1 if any row failed (the output is still written, with "
        "_status/_error columns); collect: keep failed rows with _status/_error and exit 0",
    )
    progress = fetch.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress",
        dest="progress",
        action="store_const",
        const=True,
        default=None,
        help="always show a progress bar (default: only for long jobs)",
    )
    progress.add_argument(
        "--no-progress", dest="progress", action="store_const", const=False, help="never show one"
    )
    return parser


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def _format_of(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSIONS:
        suffixes = suffixes[:-1]
    fmt = _FORMATS.get(suffixes[-1]) if suffixes else None
    if fmt is None:
        known = ", ".join(_FORMATS)
        raise UserError(f"{path}: unknown file type; use one of {known} (CSV may be compressed)")
    if fmt == "parquet" and path.suffixes[-1].lower() in _COMPRESSIONS:
        raise UserError(f"{path}: Parquet files are compressed internally; drop the extra suffix")
    return fmt


def _need_pyarrow(path: Path) -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise UserError(
            f"{path}: reading or writing Parquet needs pyarrow "
            "(install it, or the 'pandas-async[parquet]' extra)"
        ) from None


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV, TSV, Parquet or JSON-lines file, chosen by extension."""
    import pandas as pd

    fmt = _format_of(path)
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if path.is_dir():
        raise UserError(f"{path}: is a directory, not a file")
    try:
        if fmt == "csv":
            return pd.read_csv(path)
        if fmt == "tsv":
            return pd.read_csv(path, sep="\t")
        if fmt == "parquet":
            _need_pyarrow(path)
            return pd.read_parquet(path)
        return pd.read_json(path, lines=True)
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: the file is empty") from None
    except (ValueError, OSError, UnicodeDecodeError) as exc:  # parser errors are ValueErrors
        raise UserError(f"{path}: cannot read it as {fmt}: {_one_line(exc)}") from None
    except Exception as exc:  # pyarrow's own errors (ArrowInvalid...) are not ValueErrors
        if type(exc).__module__.startswith("pyarrow"):
            raise UserError(f"{path}: cannot read it as {fmt}: {_one_line(exc)}") from None
        raise


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` in the format its extension names. The index is written only if named."""
    fmt = _format_of(path)
    if frame.index.name is not None or any(n is not None for n in frame.index.names):
        frame = frame.reset_index()
    try:
        if fmt == "csv":
            frame.to_csv(path, index=False)
        elif fmt == "tsv":
            frame.to_csv(path, sep="\t", index=False)
        elif fmt == "parquet":
            _need_pyarrow(path)
            frame.to_parquet(path, index=False)
        else:
            frame.to_json(path, orient="records", lines=True, force_ascii=False, date_format="iso")
    except OSError as exc:
        raise UserError(f"{path}: cannot write it: {_one_line(exc)}") from None
    except Exception as exc:
        if type(exc).__module__.startswith("pyarrow"):
            raise UserError(f"{path}: cannot write it as {fmt}: {_one_line(exc)}") from None
        raise


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _check_output(path: Path) -> None:
    _format_of(path)
    parent = path.parent
    if not parent.is_dir():
        raise UserError(f"{path}: folder {parent} does not exist")
    if path.is_dir():
        raise UserError(f"{path}: is a directory, not a file")


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------


def _fetch_options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {
        "method": args.method.upper(),
        "concurrency": args.concurrency,
        "timeout": args.timeout,
        "retries": args.retries,
        "how": args.how,
        "errors": args.errors,
        "progress": args.progress,
    }
    if args.rate is not None:
        options["rate"] = args.rate
    if args.param:
        options["params"] = dict(args.param)
    if args.header:
        options["headers"] = dict(args.header)
    if args.record_path:
        parts = args.record_path.split(".")
        options["record_path"] = parts[0] if len(parts) == 1 else parts
    if args.prefix is not None:
        options["prefix"] = args.prefix
    return options


def _run_fetch(args: argparse.Namespace) -> int:
    from pandas_async import FetchError

    _format_of(args.input)
    _check_output(args.output)
    table = read_table(args.input)
    options = _fetch_options(args)

    started = time.perf_counter()
    try:
        result = table.aapi.fetch(args.url, **options)
    except FetchError as exc:
        write_table(exc.frame, args.output)
        _err(f"{exc}")
        _err(
            f"wrote all {len(exc.frame)} rows to {args.output}; see its _status and _error columns"
        )
        return EXIT_FAILED_ROWS
    except KeyError as exc:
        column = exc.args[0] if exc.args else exc
        raise UserError(f"{column}") from None
    except (ValueError, TypeError) as exc:
        raise UserError(_one_line(exc)) from None
    seconds = time.perf_counter() - started

    write_table(result, args.output)
    failed = ""
    if "_error" in result.columns and args.errors == "collect":
        n_failed = int(result["_error"].notna().sum())
        if n_failed:
            failed = f"; {n_failed} failed (see the _status and _error columns)"
    print(
        f"{len(table)} input rows done in {seconds:.2f} s{failed}; "
        f"wrote {len(result)} rows x {len(result.columns)} columns to {args.output}"
    )
    return EXIT_OK


def _run_demo(args: argparse.Namespace) -> int:
    from pandas_async import demo

    if args.serve:
        try:
            with demo.serve(port=args.port, latency=args.latency) as server:
                print(f"demo API running at {server.url} (latency ~{args.latency * 1000:.0f} ms)")
                print(
                    f"try: {server.url}/users/1  {server.url}/posts/1/comments  "
                    f"{server.url}/candles?symbol=BTC&date=2024-01-01"
                )
                print("press Ctrl-C to stop", flush=True)
                while True:
                    time.sleep(3600)
        except KeyboardInterrupt:
            print("stopped")
            return EXIT_OK
        except RuntimeError as exc:  # e.g. the port is taken
            raise UserError(str(exc)) from None
    demo.run_demo(rows=args.rows, concurrency=args.concurrency, latency=args.latency)
    return EXIT_OK


def _err(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _ParserExit as exc:
        return exc.status
    try:
        if args.command == "demo":
            return _run_demo(args)
        return _run_fetch(args)
    except UserError as exc:
        _err(f"error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _err("interrupted")
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
