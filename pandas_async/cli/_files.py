"""Reading and writing the command line's tables: CSV, TSV, Parquet, JSON lines, by extension."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pandas as pd

__all__ = ["UserError", "check_output", "format_of", "is_folder", "read_table", "write_table"]

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


def format_of(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSIONS:
        suffixes = suffixes[:-1]
    fmt = _FORMATS.get(suffixes[-1]) if suffixes else None
    if fmt is None:
        known = ", ".join(_FORMATS)
        raise UserError(
            f"{path}: unknown file type; use one of {known} (CSV may be compressed), "
            "or a folder (no extension, or a trailing /) for a Parquet dataset"
        )
    if fmt == "parquet" and path.suffixes[-1].lower() in _COMPRESSIONS:
        raise UserError(f"{path}: Parquet files are compressed internally; drop the extra suffix")
    return fmt


def is_folder(text: str) -> bool:
    """OUTPUT names a dataset folder: a trailing slash, an existing folder, or no extension."""
    path = Path(text)
    return text.endswith(("/", os.sep)) or path.is_dir() or not path.suffix


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
    fmt = format_of(path)
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
        raise UserError(f"{path}: cannot read it as {fmt}: {one_line(exc)}") from None
    except Exception as exc:  # pyarrow's own errors (ArrowInvalid...) are not ValueErrors
        if type(exc).__module__.startswith("pyarrow"):
            raise UserError(f"{path}: cannot read it as {fmt}: {one_line(exc)}") from None
        raise


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` in the format its extension names. The index is written only if named.

    The file is written under a hidden temporary name and renamed into place, so an interrupted
    write never leaves half a file, nor destroys the file it replaces.
    """
    fmt = format_of(path)
    if frame.index.name is not None or any(n is not None for n in frame.index.names):
        frame = frame.reset_index()
    tmp = path.with_name(f".{uuid.uuid4().hex[:8]}-{path.name}")
    try:
        if fmt == "csv":
            frame.to_csv(tmp, index=False)
        elif fmt == "tsv":
            frame.to_csv(tmp, sep="\t", index=False)
        elif fmt == "parquet":
            _need_pyarrow(path)
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_json(tmp, orient="records", lines=True, force_ascii=False, date_format="iso")
        os.replace(tmp, path)
    except OSError as exc:
        raise UserError(f"{path}: cannot write it: {one_line(exc)}") from None
    except Exception as exc:
        if type(exc).__module__.startswith("pyarrow"):
            raise UserError(f"{path}: cannot write it as {fmt}: {one_line(exc)}") from None
        raise
    finally:
        tmp.unlink(missing_ok=True)


def one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def check_output(path: Path) -> None:
    format_of(path)
    parent = path.parent
    if not parent.is_dir():
        raise UserError(f"{path}: folder {parent} does not exist")
    if path.is_dir():
        raise UserError(f"{path}: is a directory, not a file")
