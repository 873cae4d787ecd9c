"""Outcomes -> a Parquet dataset folder (``_dataset.Dataset``), a slice of rows at a time.

``BatchWriter`` is the engine's ``on_rows`` hook for ``DataFrame.aapi.to_parquet``. As rows
complete, every ``SLICE_ROWS`` of them are handed to a writer thread, which assembles them as
``fetch`` would, writes them as hidden files and lets their parsed answers go; once a batch's
``batch_size`` rows are written, the batch is renamed into place and committed. So the answers
held in memory are bounded by a few slices, whatever the batch size and the number of rows.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ._dataset import Dataset
from ._frames import Assembled
from ._outcome import Outcome, Tally

__all__ = ["SLICE_ROWS", "BatchWriter", "SinkFailed"]


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
SLICE_ROWS = 2_000  # rows assembled and written at a time
QUEUED_SLICES = 2  # slices handed to the writer and not yet written, before the fetching waits
_ROW = "\x00pandas_async_sink_row"


@dataclass
class _Batch:
    """What the writer thread has written of one batch so far (only that thread touches it)."""

    name: str
    files: list[str] = field(default_factory=list)  # hidden until the commit
    records: int = 0
    good: list[np.ndarray] = field(default_factory=list)  # input positions of the rows written


class BatchWriter:
    """Collects outcomes as rows complete; a writer thread turns each slice into files.

    ``on_rows`` never blocks the loop. When the writer is ``QUEUED_SLICES`` slices behind, it
    returns an awaitable, so the runners pause instead of piling up answers. Once written, a
    slice's answers are dropped from its outcomes. Jobs run in order on one thread: a batch's
    slices, then its commit.
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
        self.tally = Tally()  # for the report: the run keeps no outcome per row
        self._buffer: list[tuple[int, Outcome, bool]] = []  # (position, outcome, its last row)
        self._batch: _Batch | None = None  # the batch the next slice belongs to
        self._in_batch = 0  # rows handed to the writer for that batch
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="pandas_async-sink")
        self._slices: list[asyncio.Future[None]] = []  # handed over, not yet written
        self._jobs: list[asyncio.Future[None]] = []  # every job not yet done

    def on_rows(self, rows: list[int], outcome: Outcome) -> Awaitable[None] | None:
        if self.error is not None:
            raise SinkFailed(self.error)
        self.tally.add(outcome, len(rows))
        last = rows[-1]  # rows sharing a request may fall in two slices: the last lets go
        self._buffer.extend((i, outcome, i == last) for i in rows)
        while self._buffer and len(self._buffer) >= self._slice_size():
            self._submit_slice()
        if len(self._slices) > QUEUED_SLICES:
            return self._catch_up()  # the writer is behind: hold this runner until it is not
        return None

    def _slice_size(self) -> int:
        return min(SLICE_ROWS, self.batch_size - self._in_batch)

    async def _catch_up(self) -> None:
        while len(self._slices) > QUEUED_SLICES and self.error is None:
            await asyncio.wait({self._slices[0]})

    def _submit_slice(self) -> None:
        size = min(self._slice_size(), len(self._buffer))
        part, self._buffer = self._buffer[:size], self._buffer[size:]
        if self._batch is None:
            self._batch = _Batch(self.dataset.batch_name())
        self._slices.append(self._job(self._write_slice, self._batch, part))
        self._in_batch += size
        if self._in_batch == self.batch_size:
            self._submit_commit()

    def _submit_commit(self) -> None:
        if self._batch is not None:
            self._job(self._commit, self._batch)
        self._batch, self._in_batch = None, 0

    def _job(self, work: Callable[..., None], *args: Any) -> asyncio.Future[None]:
        future = asyncio.get_running_loop().run_in_executor(self._executor, self._run, work, args)
        self._jobs.append(future)
        future.add_done_callback(self._done)
        return future

    def _done(self, future: asyncio.Future[None]) -> None:
        self._jobs.remove(future)
        if future in self._slices:
            self._slices.remove(future)

    async def close(self) -> None:
        """Write what is left and wait for every batch; raise the first writing error."""
        try:
            while self._buffer and self.error is None:
                self._submit_slice()
            if self.error is None:
                self._submit_commit()
            await asyncio.gather(*self._jobs, return_exceptions=True)
        finally:
            self._executor.shutdown(wait=True)
        if self.error is not None:
            raise self.error

    def abort(self) -> None:
        """Stop: the slice being written is finished, the rest is dropped (the batch is not
        committed: a re-run cleans its files and fetches its rows again)."""
        self._buffer = []
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _run(self, work: Callable[..., None], args: tuple[Any, ...]) -> None:
        if self.error is not None:
            return  # an earlier job failed: write and commit nothing more
        try:
            work(*args)
        except BaseException as exc:
            self.error = self.error or exc
            raise

    def _commit(self, batch: _Batch) -> None:
        good = np.concatenate(batch.good) if batch.good else np.empty(0, dtype=np.intp)
        self.dataset.commit(batch.name, batch.files, batch.records, self.hashes[good])
        self.rows_written += len(good)
        self.records_written += batch.records

    def _write_slice(self, batch: _Batch, part: list[tuple[int, Outcome, bool]]) -> None:
        """Assemble one slice of a batch, write its good rows as hidden files, drop its answers."""
        import pyarrow as pa

        positions = np.fromiter((i for i, _, _ in part), dtype=np.intp, count=len(part))
        rows = self.frame.iloc[positions].copy(deep=False)
        rows[_ROW] = positions
        assembled = self.finish(rows, [o for _, o, _ in part])
        del rows
        for _, outcome, last in part:
            if last:
                outcome.value = None  # assembled: let the parsed answer go
        result = assembled.frame
        error = assembled.outcome_columns[1]  # _status, _error, ...: suffixed on a clash
        ok = result[error].isna().to_numpy()
        batch.good.append(np.unique(result[_ROW].to_numpy()[ok]))
        self.failures.update(assembled.failures)
        if self.keep_failed and not ok.all():
            self.failed.append(result[~ok].drop(columns=[_ROW]))
        good = result[ok].drop(columns=[_ROW, *assembled.outcome_columns])
        del assembled, result
        if not len(good):
            return
        good = _index_as_columns(good) if self.dataset.key is None else good
        table = _to_table(good.reset_index(drop=True))
        del good
        k = len(batch.good) - 1
        batch.files += self.dataset.write_hidden(table, f"{batch.name}-{k}")
        batch.records += table.num_rows
        del table
        pa.default_memory_pool().release_unused()  # mimalloc keeps freed pages otherwise


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
