"""Batches -> a Parquet dataset folder, with a commit log, so a run can be resumed.

The folder ``pandas.read_parquet(path)`` reads::

    path/
      0-schema.parquet             no rows: the schema of every batch so far, unified
      part-<run>-<seq>-0.parquet   one or more files per batch (under key=value/ folders with
      ...                          partition_cols)
      _pandas_async/               skipped by readers (leading underscore)
        dataset.json               the key and partition columns this folder was started with
        commits/<run>-<seq>.json   one per batch: its files, and a 64-bit hash of each row's key
        lock                       held while the schema file is replaced

A batch is written under hidden names (``.part-...``), renamed into place, then committed by
writing its commit file (to a temporary name, then ``os.replace``). A kill at any moment leaves
at most one batch's files visible but uncommitted: they hold rows no other file holds, so the
folder still reads with no row twice, and the next run deletes them (and any hidden leftovers)
before fetching their rows again. Committed keys are what a re-run skips.

Schema drift: pyarrow takes a folder's schema from its first file (sorted by path). Before a
batch's files appear, ``0-schema.parquet`` is replaced by ``pyarrow.unify_schemas`` of the
schemas so far (``promote_options="permissive"``): columns that appear later, int -> float and
null -> value read back whole. Once the schemas differ, the pandas metadata is left out of that
file (its dtypes would be wrong for some files): columns read with pyarrow's default types.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._frames import Assembled
from ._outcome import Outcome

__all__ = [
    "SCHEMA_FILE",
    "STATE_DIR",
    "BatchWriter",
    "Dataset",
    "SinkFailed",
    "key_hashes",
    "written_rows",
]

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

    def write_table(self, table: Any, hashes: np.ndarray) -> None:
        """Write one batch (``None``: no good row) and commit it with its input rows' keys."""
        name = self.batch_name()
        files = [] if table is None else self.write_files(table, name)
        self.commit(name, files, 0 if table is None else table.num_rows, hashes)

    def batch_name(self) -> str:
        """A name no other batch of any run has: the run's id and a sequence number."""
        self._seq += 1
        return f"{self.run}-{self._seq:06d}"

    def write_files(self, table: Any, name: str) -> list[str]:
        """Write ``table`` as visible files named after ``name``; return their paths in the
        folder. They count only once ``commit`` names them (a later run deletes them if not)."""
        import pyarrow.dataset as ds

        missing = [c for c in self.partition_cols if c not in table.column_names]
        if missing:
            raise ValueError(f"to_parquet: partition column {missing[0]!r} is not in the result")
        self._widen_schema(table)
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
        written = []
        base = self.path.resolve()
        for file in map(Path, hidden):
            visible = file.with_name(file.name[1:])
            os.replace(file, visible)
            within = visible.resolve().relative_to(base) if visible.is_absolute() else None
            written.append((within or visible.relative_to(self.path)).as_posix())
        return written

    def commit(self, name: str, files: list[str], rows: int, hashes: np.ndarray) -> None:
        """Make a batch count: its files, and the key hashes of the input rows it holds."""
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


def _to_table(data: pd.DataFrame) -> Any:
    """An Arrow table of ``data``; a column pyarrow cannot type (mixed values) becomes JSON text."""
    import pyarrow as pa

    try:
        return pa.Table.from_pandas(data, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        pass
    fixed = data.copy()
    for column in fixed.columns:
        try:
            pa.array(fixed[column], from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            fixed[column] = [_as_text(v) for v in fixed[column].astype(object)]
    return pa.Table.from_pandas(fixed, preserve_index=False)


def _as_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if value is None or (not isinstance(value, list | dict) and pd.isna(value)):
        return None
    return json.dumps(value, default=str)


class SinkFailed(Exception):
    """Writing a batch failed: the run stops, and the cause is raised to the caller."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


Finish = Callable[[pd.DataFrame, list[Outcome]], Assembled]
SLICE_ROWS = 2_000  # rows assembled and written at a time within a batch
_ROW = "\x00pandas_async_sink_row"


class BatchWriter:
    """Collects outcomes as rows complete; a writer thread turns each full batch into files.

    ``on_rows`` is the engine's hook: it never blocks the loop. When a batch is full while the
    writer is still busy with the previous one, it returns an awaitable, so the runners pause
    instead of piling up answers: about two batches of answers are in memory at most. After a
    batch is written, its answers are dropped from the outcomes (the report needs only the rest).
    """

    def __init__(
        self,
        dataset: Dataset,
        frame: pd.DataFrame,
        hashes: np.ndarray,
        finish: Finish,
        *,
        batch_size: int,
        keep_failed: bool,
    ) -> None:
        self.dataset = dataset
        self.frame = frame
        self.hashes = hashes
        self.finish = finish
        self.batch_size = batch_size
        self.keep_failed = keep_failed
        self.failed: list[pd.DataFrame] = []
        self.failures: Counter[str] = Counter()
        self.rows_written = 0
        self.records_written = 0
        self.error: BaseException | None = None
        self._buffer: list[tuple[int, Outcome]] = []
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="pandas_async-sink")
        self._pending: list[asyncio.Future[None]] = []

    def on_rows(self, rows: list[int], outcome: Outcome) -> Awaitable[None] | None:
        if self.error is not None:
            raise SinkFailed(self.error)
        self._buffer.extend((i, outcome) for i in rows)
        if len(self._buffer) < self.batch_size:
            return None
        if not self._pending:
            self._submit()
            return None
        return self._wait_then_submit()  # the writer is busy: hold this runner until it is not

    async def _wait_then_submit(self) -> None:
        await asyncio.shield(self._pending[0])
        if not self._pending and len(self._buffer) >= self.batch_size and self.error is None:
            self._submit()

    def _submit(self) -> None:
        size = self.batch_size if len(self._buffer) >= self.batch_size else len(self._buffer)
        batch, self._buffer = self._buffer[:size], self._buffer[size:]
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, self._write, batch)
        self._pending.append(future)
        future.add_done_callback(self._pending.remove)

    async def close(self) -> None:
        """Write what is left and wait for every batch; raise the first writing error."""
        try:
            while self._buffer and self.error is None:
                await asyncio.gather(*self._pending, return_exceptions=True)
                self._submit()
            await asyncio.gather(*self._pending, return_exceptions=True)
        finally:
            self._executor.shutdown(wait=True)
        if self.error is not None:
            raise self.error

    def abort(self) -> None:
        """Stop: the batch being written is finished and committed, the rest is dropped."""
        self._buffer = []
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _write(self, batch: list[tuple[int, Outcome]]) -> None:
        try:
            self._write_batch(batch)
        except BaseException as exc:
            self.error = self.error or exc
            raise

    def _write_batch(self, batch: list[tuple[int, Outcome]]) -> None:
        """Assemble and write a batch in slices (the frames of 10,000 rows at once would cost
        as much memory as ``fetch`` holding them), then commit it once."""
        name = self.dataset.batch_name()
        files: list[str] = []
        records = 0
        good: list[np.ndarray] = []
        for k, start in enumerate(range(0, len(batch), SLICE_ROWS)):
            table, rows = self._slice(batch[start : start + SLICE_ROWS])
            good.append(rows)
            if table is not None:
                files += self.dataset.write_files(table, f"{name}-{k}")
                records += table.num_rows
            del table
        good_rows = np.concatenate(good)
        self.dataset.commit(name, files, records, self.hashes[good_rows])
        self.rows_written += len(good_rows)
        self.records_written += records
        for _, outcome in batch:
            outcome.value = None  # written: let the parsed answers go

    def _slice(self, batch: list[tuple[int, Outcome]]) -> tuple[Any, np.ndarray]:
        """One slice of a batch: its good rows as an Arrow table, and their positions."""
        positions = np.fromiter((i for i, _ in batch), dtype=np.intp, count=len(batch))
        outcomes = [o for _, o in batch]
        part = self.frame.iloc[positions].copy(deep=False)
        part[_ROW] = positions
        assembled = self.finish(part, outcomes)
        del part
        result = assembled.frame
        error = assembled.outcome_columns[1]  # _status, _error, ...: suffixed on a clash
        ok = result[error].isna().to_numpy()
        rows = result[_ROW].to_numpy()
        good_rows = np.unique(rows[ok])
        failed = result[~ok].drop(columns=[_ROW])
        good = result[ok].drop(columns=[_ROW, *assembled.outcome_columns])
        good = _index_as_columns(good) if self.dataset.key is None else good
        self.failures.update(assembled.failures)
        if self.keep_failed and len(failed):
            self.failed.append(failed)
        return (_to_table(good.reset_index(drop=True)) if len(good) else None), good_rows


def _index_as_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """The index labels as leading columns (the key of each row), named as ``reset_index`` does."""
    index = frame.index
    names = []
    for i, name in enumerate(index.names):
        label = str(name) if name is not None else ("index" if index.nlevels == 1 else f"level_{i}")
        while label in frame.columns or label in names:
            label = f"_{label}"
        names.append(label)
    return frame.reset_index(names=names)


def written_rows(path: str | os.PathLike[str]) -> int:
    """Rows committed in the dataset folder at ``path`` (0 if it is none)."""
    commits = Path(path) / STATE_DIR / "commits"
    total = 0
    for file in commits.glob("*.json"):
        with contextlib.suppress(OSError, ValueError, KeyError):
            total += int(json.loads(file.read_text())["rows"])
    return total
