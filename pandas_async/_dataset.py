"""A Parquet dataset folder written in committed batches, so a run can be resumed.

The folder ``pandas.read_parquet(path)`` reads::

    path/
      0-schema.parquet             no rows: the schema of every batch so far, unified
      part-<run>-<seq>-<k>-0.parquet  the files of a batch, one set per slice (under key=value/
      ...                          folders with partition_cols)
      _pandas_async/               skipped by readers (leading underscore)
        dataset.json               the key and partition columns this folder was started with
        commits/<run>-<seq>.json   one per batch: its files, and a 64-bit hash of each row's key
        lock                       held while the schema file is replaced

A batch's files are written under hidden names (``.part-...``, which readers skip) as its slices
are ready; at the batch's end they are renamed into place, then committed by writing its commit
file (to a temporary name, then ``os.replace``). A kill at any moment leaves at most one batch's
files visible but uncommitted: they hold rows no other file holds, so the folder still reads with
no row twice, and the next run deletes them (and any hidden leftovers) before fetching their rows
again. Committed keys are what a re-run skips.

Schema drift: pyarrow takes a folder's schema from its first file (sorted by path). Before a
slice's files are written, ``0-schema.parquet`` is replaced by ``pyarrow.unify_schemas`` of the
schemas so far (``promote_options="permissive"``): columns that appear later, int -> float and
null -> value read back whole. Once the schemas differ, the pandas metadata is left out of that
file (its dtypes would be wrong for some files): columns read with pyarrow's default types.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["SCHEMA_FILE", "STATE_DIR", "Dataset", "key_hashes", "written_rows"]

STATE_DIR = "_pandas_async"
SCHEMA_FILE = "0-schema.parquet"
_FORMAT = 1


def key_hashes(frame: pd.DataFrame, key: Sequence[str] | None) -> np.ndarray:
    """A 64-bit hash per row of its key: the index labels, or the ``key`` columns."""
    keys = frame.index.to_frame(index=False) if key is None else frame[list(key)]
    hashed = pd.util.hash_pandas_object(keys, index=False, categorize=True)
    return hashed.to_numpy(dtype=np.uint64)


def _encode(hashes: np.ndarray) -> str:
    return base64.b64encode(hashes.astype("<u8").tobytes()).decode("ascii")


def _decode(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<u8").astype(np.uint64)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` across processes (POSIX ``flock``; none elsewhere)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


@dataclass
class Dataset:
    """One Parquet dataset folder written in committed batches."""

    path: Path
    key: tuple[str, ...] | None  # None: the index labels
    partition_cols: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.run = uuid.uuid4().hex[:12]
        self._seq = 0

    @property
    def _state(self) -> Path:
        return self.path / STATE_DIR

    # -- opening ---------------------------------------------------------------------------

    def open(self, *, clean: bool = True) -> np.ndarray:
        """Create or reopen the folder; return the key hashes already committed.

        ``clean`` deletes files no commit names (a killed run's last batch, hidden leftovers).
        Only one process may clean: a dask job cleans once, before its partitions write.
        """
        path = self.path
        if path.exists() and not path.is_dir():
            raise ValueError(f"to_parquet: {path} is a file; give a folder for the dataset")
        settings = {
            "format": _FORMAT,
            "key": None if self.key is None else list(self.key),
            "partition_cols": list(self.partition_cols),
        }
        marker = self._state / "dataset.json"
        if marker.exists():
            found = json.loads(marker.read_text())
            for name in ("key", "partition_cols"):
                if found.get(name) != settings[name]:
                    raise ValueError(
                        f"to_parquet: {path} was started with {name}={found.get(name)!r}, "
                        f"not {settings[name]!r}; use the same {name}= to resume, "
                        "or another folder"
                    )
        elif path.exists() and any(path.iterdir()):
            raise ValueError(
                f"to_parquet: {path} already holds files that pandas_async did not write; "
                "give an empty or new folder"
            )
        else:
            (self._state / "commits").mkdir(parents=True, exist_ok=True)
            _write_json(marker, settings)
        commits = self._commits()
        if clean:
            self._clean({f for c in commits for f in c["files"]})
        hashes = [_decode(c["keys"]) for c in commits]
        return np.concatenate(hashes) if hashes else np.empty(0, dtype=np.uint64)

    def _commits(self) -> list[dict[str, Any]]:
        found = []
        for file in sorted((self._state / "commits").glob("*.json")):
            with contextlib.suppress(OSError, ValueError):
                found.append(json.loads(file.read_text()))
        return found

    def _clean(self, committed: set[str]) -> None:
        for root, dirs, files in os.walk(self.path):
            here = Path(root)
            if here == self.path:
                dirs[:] = [d for d in dirs if d != STATE_DIR]
            for name in files:
                file = here / name
                relative = file.relative_to(self.path).as_posix()
                if relative == SCHEMA_FILE or relative in committed:
                    continue
                if name.endswith(".parquet") or name.endswith(".tmp"):
                    file.unlink(missing_ok=True)
        for file in (self._state / "commits").glob(".*.tmp"):
            file.unlink(missing_ok=True)

    # -- writing ---------------------------------------------------------------------------

    def batch_name(self) -> str:
        """A name no other batch of any run has: the run's id and a sequence number."""
        self._seq += 1
        return f"{self.run}-{self._seq:06d}"

    def write_hidden(self, table: Any, name: str) -> list[str]:
        """Write ``table`` as hidden files named after ``name`` (readers skip them); return their
        paths in the folder. ``commit`` makes them visible and makes them count."""
        missing = [c for c in self.partition_cols if c not in table.column_names]
        if missing:
            raise ValueError(f"to_parquet: partition column {missing[0]!r} is not in the result")
        self._widen_schema(table)
        if not self.partition_cols:  # one file: pyarrow.dataset not even imported (7 MiB RSS)
            import pyarrow.parquet as pq

            pq.write_table(table, self.path / f".part-{name}-0.parquet")
            return [f".part-{name}-0.parquet"]
        import pyarrow.dataset as ds

        hidden: list[str] = []
        ds.write_dataset(
            table,
            base_dir=str(self.path),
            format="parquet",
            partitioning=list(self.partition_cols) or None,
            partitioning_flavor="hive" if self.partition_cols else None,
            basename_template=f".part-{name}-{{i}}.parquet",
            existing_data_behavior="overwrite_or_ignore",
            max_partitions=1_000_000,
            file_visitor=lambda f: hidden.append(f.path),
        )
        base = self.path.resolve()
        return [
            (f.resolve().relative_to(base) if f.is_absolute() else f.relative_to(self.path))
            .as_posix()
            for f in map(Path, hidden)
        ]  # fmt: skip

    def commit(self, name: str, hidden: list[str], rows: int, hashes: np.ndarray) -> None:
        """Make a batch count: rename its files into place, then commit them with the key
        hashes of the input rows they hold."""
        files = []
        for relative in hidden:
            folder, _, file = relative.rpartition("/")
            visible = f"{folder}/{file[1:]}" if folder else file[1:]
            os.replace(self.path / relative, self.path / visible)
            files.append(visible)
        commit = {"files": files, "rows": rows, "keys": _encode(hashes)}
        _write_json(self._state / "commits" / f"{name}.json", commit)

    def _widen_schema(self, table: Any) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        fields = [f for f in table.schema if f.name not in self.partition_cols]
        mine = pa.schema(fields, metadata=table.schema.metadata)
        target = self.path / SCHEMA_FILE
        with _locked(self._state / "lock"):
            current = pq.read_schema(target) if target.exists() else None
            if current is None:
                unified = mine
            else:
                try:
                    unified = pa.unify_schemas([current, mine], promote_options="permissive")
                except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                    raise ValueError(
                        f"to_parquet: this batch's columns do not fit the earlier batches' "
                        f"({exc}); give schema= to fix the columns and types"
                    ) from None
                if unified.equals(current, check_metadata=False):
                    return
                unified = unified.remove_metadata()
            tmp = self.path / f".schema-{uuid.uuid4().hex[:8]}.parquet"
            pq.write_table(unified.empty_table(), tmp)
            os.replace(tmp, target)


def written_rows(path: str | os.PathLike[str]) -> int:
    """Rows committed in the dataset folder at ``path`` (0 if it is none)."""
    commits = Path(path) / STATE_DIR / "commits"
    total = 0
    for file in commits.glob("*.json"):
        with contextlib.suppress(OSError, ValueError, KeyError):
            total += int(json.loads(file.read_text())["rows"])
    return total
