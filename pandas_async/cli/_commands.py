"""What ``pandas-async fetch`` and ``pandas-async demo`` do, once their arguments are parsed."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

import pandas_async  # registers .aapi
from pandas_async._dataset import written_rows

from ._args import NO_LIMIT, PROG, paginator
from ._files import UserError, check_output, format_of, is_folder, one_line, read_table, write_table

__all__ = ["EXIT_FAILED_ROWS", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "err", "run_demo",
           "run_fetch"]  # fmt: skip

EXIT_OK = 0
EXIT_FAILED_ROWS = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def err(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def fetch_options(args: argparse.Namespace) -> dict[str, Any]:
    """The library's options for the flags given; unset flags leave the library's defaults."""
    options: dict[str, Any] = {
        "method": args.method.upper(),
        "concurrency": args.concurrency,
        "timeout": args.timeout,
        "retries": args.retries,
        "how": args.how,
        "parse": args.parse,
        "errors": args.errors,
        "progress": args.progress,
    }
    given = {
        "rate": args.rate,
        "burst": args.burst,  # passed on only when given: the library names any it lacks
        "cache": args.cache,
        "cache_ttl": args.cache_ttl,
        "json": args.json,
        "prefix": args.prefix,
        "params": dict(args.param) or None,
        "headers": dict(args.header) or None,
        "schema": dict(args.schema) or None,
    }
    options.update({name: value for name, value in given.items() if value is not None})
    if args.max_bytes is not None:
        options["max_bytes"] = None if args.max_bytes == NO_LIMIT else args.max_bytes
    if args.cache_ttl is not None and args.cache is None:
        raise UserError("--cache-ttl needs --cache")
    if args.record_path:
        parts = args.record_path.split(".")
        options["record_path"] = parts[0] if len(parts) == 1 else parts
    if args.paginate:
        try:
            options["paginate"] = paginator(args.paginate, args.max_pages)
        except argparse.ArgumentTypeError as exc:
            raise UserError(str(exc)) from None
    elif args.max_pages is not None:
        raise UserError("--max-pages needs --paginate")
    return options


def _causes(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {cause}" for cause, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def _failed_name(path: Path) -> Path:
    """``out.csv.gz`` -> ``out.failed.csv.gz``: where a failed run writes beside a kept file."""
    suffixes = "".join(path.suffixes)
    stem = path.name[: len(path.name) - len(suffixes)] if suffixes else path.name
    return path.with_name(f"{stem}.failed{suffixes}")


def run_fetch(args: argparse.Namespace) -> int:
    format_of(args.input)
    folder = is_folder(args.output)
    output = Path(args.output)
    if not folder:
        check_output(output)
        if args.key or args.partition_by:
            raise UserError(
                "--key and --partition-by write a resumable dataset: give a folder as OUTPUT "
                f"(e.g. -o {output.with_suffix('')}/)"
            )
    table = read_table(args.input)
    options = fetch_options(args)
    try:
        if folder:
            return _fetch_to_folder(args, table, output, options)
        return _fetch_to_file(args, table, output, options)
    except KeyError as exc:
        column = exc.args[0] if exc.args else exc
        raise UserError(f"{column}") from None
    except (ValueError, TypeError) as exc:
        raise UserError(one_line(exc)) from None


def _fetch_to_file(
    args: argparse.Namespace, table: pd.DataFrame, output: Path, options: dict[str, Any]
) -> int:
    started = time.perf_counter()
    try:
        result = table.aapi.fetch(args.url, **options)
    except pandas_async.FetchError as exc:
        n_failed = sum(exc.counts.values())
        err(f"{n_failed} of {exc.total} rows failed ({_causes(exc.counts)})")
        target = _failed_name(output) if output.exists() else output
        write_table(exc.frame, target)
        kept = f"; {output} was left as it was" if target != output else ""
        err(f"wrote all {len(exc.frame)} rows, with _status and _error columns, to {target}{kept}")
        err(
            "to fetch only what is missing when you run again, write to a folder: "
            f"-o {output.with_suffix('')}/ --key COLUMNS"
        )
        return EXIT_FAILED_ROWS
    seconds = time.perf_counter() - started
    write_table(result, output)
    failed = ""
    if args.errors == "collect" and "_error" in result.columns:
        n_failed = int(result["_error"].notna().sum())
        if n_failed:
            failed = f"; {n_failed} failed (see the _status and _error columns)"
    print(
        f"{len(table)} input rows done in {seconds:.2f} s{failed}; "
        f"wrote {len(result)} rows x {len(result.columns)} columns to {output}"
    )
    return EXIT_OK


def _fetch_to_folder(
    args: argparse.Namespace, table: pd.DataFrame, output: Path, options: dict[str, Any]
) -> int:
    again = "run the same command again"
    try:
        report = table.aapi.to_parquet(
            output, args.url, partition_cols=args.partition_by, key=args.key,
            batch_size=args.batch_size, **options,
        )  # fmt: skip
    except pandas_async.FetchError as exc:
        failed = sum(exc.counts.values())
        err(
            f"{failed} of {exc.total} rows failed ({_causes(exc.counts)}); "
            "failed rows are not written"
        )
        err(f"{output} holds {written_rows(output)} rows; {again} to fetch just the failed ones")
        return EXIT_FAILED_ROWS
    except KeyboardInterrupt:
        err(f"interrupted; {output} holds {written_rows(output)} rows; {again} to resume")
        return EXIT_INTERRUPTED
    skipped: int = len(table) - report.rows
    done = f"{report.rows} rows fetched in {report.seconds:.2f} s"
    if skipped:
        done += f" ({skipped} already written, skipped)"
    if report.failed_rows:
        done += f"; {report.failed_rows} failed and were not written ({again} to retry them)"
    print(f"{done}; {output} holds {written_rows(output)} rows")
    return EXIT_OK


def run_demo(args: argparse.Namespace) -> int:
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
