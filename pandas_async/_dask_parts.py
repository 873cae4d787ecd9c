"""What runs on a Dask worker for one partition, and how partitions are made to agree.

``fetch_partition`` runs the pandas call on one partition under one lease of the call's budget
(``_dask_leases``) and returns a ``PartResult``: the frame, and with ``errors="raise"`` the failed
rows and their causes, so the failures of every partition can be raised together. The rest are
small pure steps the graph applies to those results: a probe of each result's columns, the one
column set they unify to, and each result conformed to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import Counter
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ._accessor import DataFrameAccessor, SeriesAccessor, write_parquet
from ._dask_leases import LeasePlan, acquire_lease, current_task_cancelled
from ._errors import FetchError, PandasAsyncError
from ._frames import outcome_names
from ._report import Report
from ._runner import run_sync

__all__ = [
    "PartResult",
    "PartWritten",
    "Probe",
    "absolute",
    "conform",
    "failures_of",
    "fetch_partition",
    "merge_reports",
    "probe",
    "raise_failures",
    "unify",
    "write_partition",
]

_POLL = 0.1  # seconds between checks for a cancelled task while fetching


@dataclass
class PartResult:
    """One partition's answer: its frame, and (``errors="raise"``) what failed in it."""

    frame: pd.DataFrame
    rows: int  # input rows
    counts: Counter[str] = field(default_factory=Counter)  # cause -> failed rows
    failed: pd.DataFrame | None = None  # the failed rows, with their outcome columns


class TaskCancelled(PandasAsyncError):
    """The Dask task was cancelled while it fetched; its requests were stopped."""


def fetch_partition(
    part: pd.DataFrame | pd.Series,
    url: Any,
    options: Mapping[str, Any],
    plan: LeasePlan,
) -> PartResult:
    """The pandas call on one partition, with one lease's share of the call's budgets."""
    opts = _with_share(options, plan)
    if isinstance(part, pd.Series):
        call: Callable[[], Coroutine[Any, Any, pd.DataFrame]] = lambda: SeriesAccessor(  # noqa: E731
            part
        ).afetch(**opts)
    else:
        call = lambda: DataFrameAccessor(part).afetch(url, **opts)  # noqa: E731

    rows = len(part)
    try:
        if rows == 0:  # nothing to send: no lease needed
            return PartResult(run_sync(call()), rows)
        cancelled = current_task_cancelled()
        lease = acquire_lease(plan, cancelled)
        if lease is None:
            raise TaskCancelled("the Dask task was cancelled before it sent a request")
        try:
            return PartResult(run_sync(_until_cancelled(call(), cancelled)), rows)
        finally:
            # Held one rate period past the last answer (on this machine's clock), so the next
            # holder of this lease never shares a rate window with this one.
            lease.release(after=plan.hand_over)
    except FetchError as exc:  # errors="raise": keep the good rows, and the failed ones apart
        # Suffixed if the input has a _status... (a Series of URLs becomes one column).
        inputs = list(part.columns) if isinstance(part, pd.DataFrame) else [_series_name(part)]
        names = outcome_names(inputs)
        failed_mask = exc.frame[names[1]].notna().to_numpy()
        good = exc.frame.loc[~failed_mask].drop(columns=list(names))
        return PartResult(good, rows, Counter(exc.counts), exc.frame.loc[failed_mask])


def _series_name(urls: pd.Series) -> str:
    """The column a Series of URLs becomes, as ``Series.aapi.fetch`` names it."""
    return "url" if urls.name is None else str(urls.name)


def _with_share(options: Mapping[str, Any], plan: LeasePlan) -> dict[str, Any]:
    opts = dict(options)
    opts.update(concurrency=plan.concurrency, progress=False)
    if plan.rate is not None:
        opts["rate"] = plan.rate
    if plan.burst is not None:
        opts["burst"] = plan.burst
    return opts


@dataclass
class PartWritten:
    """One partition written to the Parquet folder: its report, or what failed in it."""

    rows: int
    report: Report | None = None
    counts: Counter[str] = field(default_factory=Counter)
    failed: pd.DataFrame | None = None


def write_partition(
    part: pd.DataFrame,
    path: str,
    url: Any,
    options: Mapping[str, Any],
    plan: LeasePlan,
    parquet: Mapping[str, Any],
) -> PartWritten:
    """The pandas ``to_parquet`` on one partition, with one lease's share of the budgets.

    It never cleans the folder: other partitions are writing into it (the caller cleaned it
    once, before any partition ran).
    """
    opts = _with_share(options, plan)
    rows = len(part)
    lease = acquire_lease(plan, current_task_cancelled())
    if lease is None:
        raise TaskCancelled("the Dask task was cancelled before it sent a request")
    try:
        report = write_parquet(part, path, url, clean=False, options=opts, **parquet)
    except FetchError as exc:  # errors="raise": its good rows are on disk already
        return PartWritten(rows, None, Counter(exc.counts), exc.frame)
    finally:
        lease.release(after=plan.hand_over)
    return PartWritten(rows, report)


def merge_reports(
    parts: Sequence[PartWritten], *, call: str, seconds: float, rate: float | None
) -> Report:
    """One report for a whole dask ``to_parquet``: counts added up, latencies pooled.

    The per-phase time split and the per-attempt timeline stay per partition (on the workers):
    partitions overlap, so their phases do not add up to the wall time.
    """
    reports = [p.report for p in parts if p.report is not None]
    statuses: Counter[int | None] = Counter()
    causes: Counter[str] = Counter()
    latencies: list[float] = []
    pages = [r.pages for r in reports if r.pages is not None]
    for r in reports:
        statuses.update(r.statuses)
        causes.update(r.causes)
        latencies.extend(r.latencies)
    return Report(
        call=call,
        rows=sum(r.rows for r in reports),
        failed_rows=sum(r.failed_rows for r in reports),
        shared_rows=sum(r.shared_rows for r in reports),
        requests=sum(r.requests for r in reports),
        distinct=sum(r.distinct for r in reports),
        retries=sum(r.retries for r in reports),
        pages=sum(pages) if pages else None,
        statuses=dict(statuses),
        causes=dict(causes),
        latencies=tuple(latencies),
        seconds=seconds,
        rate=rate,
    )


def absolute(path: str | os.PathLike[str]) -> str:
    """The folder as every worker process sees it, whatever its working directory."""
    return os.path.abspath(os.fspath(path))


async def _until_cancelled(
    call: Coroutine[Any, Any, pd.DataFrame], cancelled: Callable[[], bool]
) -> pd.DataFrame:
    task = asyncio.ensure_future(call)
    while True:
        done, _ = await asyncio.wait({task}, timeout=_POLL)
        if done:
            return task.result()
        if cancelled():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            raise TaskCancelled("the Dask task was cancelled; its requests were stopped")


# -- steps the graph applies to partition results ------------------------------------------------


@dataclass
class Probe:
    head: pd.DataFrame  # the first row (its columns and dtypes), or none for an empty result
    empty: bool


def probe(result: PartResult) -> Probe:
    """What the client needs to know of a result to unify the columns: its first row only."""
    return Probe(result.frame.iloc[:1], len(result.frame) == 0)


def unify(probes: Sequence[Probe], fallback: pd.DataFrame) -> pd.DataFrame:
    """The empty frame whose columns and dtypes ``pandas.concat`` of all results would have.

    Only non-empty results count, as in the pandas call (an empty partition has no answers to
    add columns); ``fallback`` (the pandas call on no rows) when every result is empty.
    """
    heads = [p.head for p in probes if not p.empty]
    if not heads:
        return fallback
    return pd.concat(heads).iloc[:0]


def conform(result: PartResult, meta: pd.DataFrame, *_after: object) -> pd.DataFrame:
    """The result's frame with ``meta``'s columns, in order, and dtypes.

    ``_after`` only orders the graph: with ``errors="raise"`` every output waits for the check.
    """
    frame = result.frame
    if list(frame.columns) == list(meta.columns) and frame.dtypes.equals(meta.dtypes):
        return frame
    frame = pd.concat([meta, frame]) if len(frame) else meta.copy()
    return frame.reindex(columns=meta.columns).astype(meta.dtypes.to_dict())


def failures_of(result: PartResult) -> PartResult:
    """The small part of a result the failure check needs (no good rows)."""
    return PartResult(result.frame.iloc[:0], result.rows, result.counts, result.failed)


def raise_failures(results: Sequence[PartResult]) -> bool:
    """Raise one ``FetchError`` with the failed rows of every partition, if any failed."""
    counts: Counter[str] = Counter()
    failed = [r.failed for r in results if r.failed is not None]
    for r in results:
        counts.update(r.counts)
    if failed:
        raise FetchError(pd.concat(failed), counts, total=sum(r.rows for r in results))
    return True
