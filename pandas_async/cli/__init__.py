"""The ``pandas-async`` command line (also ``python -m pandas_async``).

Subcommands::

    pandas-async demo [--rows N] [--concurrency N] [--latency S] [--serve [--port P]]
    pandas-async fetch INPUT --url TEMPLATE -o OUTPUT [options]

``fetch`` reads INPUT, sends one request per row with ``DataFrame.aapi.fetch`` and writes the
enriched table to OUTPUT. Files are CSV (``.csv``, optionally compressed: ``.csv.gz`` ...),
Parquet (``.parquet``, ``.pq``; needs pyarrow) or JSON lines (``.jsonl``, ``.ndjson``),
chosen by extension. An OUTPUT folder is a Parquet dataset written with
``DataFrame.aapi.to_parquet``: in batches, resumed by running the same command again.

Exit status: 0 on success, 1 when some rows failed (see ``--errors``), 2 for a usage or input
error, 130 when interrupted. User errors are reported in one line on stderr, without a traceback.

The package: ``_args`` (the parser and the checks of each flag), ``_files`` (tables by
extension, written atomically), ``_commands`` (what each command does).
"""

from __future__ import annotations

from collections.abc import Sequence

from ._args import ParserExit, build_parser
from ._commands import EXIT_INTERRUPTED, EXIT_USAGE, err, run_demo, run_fetch
from ._files import UserError

__all__ = ["build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except ParserExit as exc:
        return exc.status
    try:
        if args.command == "demo":
            return run_demo(args)
        return run_fetch(args)
    except UserError as exc:
        err(f"error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        err("interrupted")
        return EXIT_INTERRUPTED
