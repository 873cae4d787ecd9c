"""``.aapi`` on Dask: the pandas call on every partition, under cluster-wide limits.

>>> import dask.dataframe as dd
>>> import pandas_async.dask  # registers .aapi on dask DataFrames and Series
>>> users = dd.read_parquet("users/")  # doctest: +SKIP
>>> enriched = users.aapi.fetch(  # doctest: +SKIP
...     "https://api.example.com/users/{user_id}", concurrency=100, rate="50/s",
...     schema={"name": "string", "score": "float64"},
... )

``concurrency=``, ``rate=`` and ``burst=`` are totals across the whole cluster, held with one
lease per partition (``_dask_leases``). With ``schema=`` the result is lazy and nothing is sent
before ``compute``; without it the columns are only known from the answers, so ``fetch`` sends
the requests at once (the results stay on the cluster) and returns a frame over them. Dask never
calls the function on made-up rows: every step is given its ``meta``.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Unpack

import dask.base
import dask.dataframe as dd
import dask.dataframe.extensions
import dask.system
import pandas as pd
from dask.delayed import Delayed, delayed

from ._accessor import DataFrameAccessor, SeriesAccessor, write_parquet
from ._dask_leases import LeasePlan
from ._dask_parts import (
    PartWritten,
    absolute,
    conform,
    failures_of,
    fetch_partition,
    merge_reports,
    probe,
    raise_failures,
    unify,
    write_partition,
)
from ._defaults import apply_defaults
from ._errors import FetchError
from ._options import FetchKwargs, FetchOptions
from ._report import Report, record_report

__all__ = ["DaskDataFrameAccessor", "DaskSeriesAccessor"]

Url = str | Callable[[pd.Series], str]

# dask is untyped: its entry points, typed as such once here (mypy --strict).
_compute: Any = dask.base.compute
_persist: Any = dask.base.persist
_from_pandas: Any = dd.from_pandas
_from_delayed: Any = dd.from_delayed
_register_dataframe_accessor: Any = dask.dataframe.extensions.register_dataframe_accessor
_register_series_accessor: Any = dask.dataframe.extensions.register_series_accessor


@_register_dataframe_accessor("aapi")
class DaskDataFrameAccessor:
    """``ddf.aapi.fetch(url, **options)``: the pandas call per partition, limits cluster-wide."""

    def __init__(self, obj: dd.DataFrame) -> None:
        self._obj = obj

    def fetch(self, url: Url, **options: Unpack[FetchKwargs]) -> dd.DataFrame:
        """Fetch one answer per row; every option of ``pandas.DataFrame.aapi.fetch``.

        ``concurrency``, ``rate`` and ``burst`` are totals for the whole cluster. With
        ``schema=`` the result is lazy; without it the requests are sent now (see the README,
        "Scale out: Dask").
        """
        return _fetch(self._obj, url, dict(options))

    def to_parquet(  # type: ignore[misc]  # schema= is named, as DESIGN section 6 has it
        self,
        path: str | os.PathLike[str],
        url: Url,
        partition_cols: str | Sequence[str] | None = None,
        key: str | Sequence[str] | None = None,
        batch_size: int = 10_000,
        schema: Any = None,
        **options: Unpack[FetchKwargs],
    ) -> Report:
        """Fetch every row and stream the results into one Parquet dataset folder at ``path``.

        Each partition runs the pandas ``to_parquet`` into the same folder (local, or shared by
        every worker), under the call's cluster-wide limits; it resumes like the pandas one:
        a re-run fetches only rows whose key is not yet written. Runs now and returns one
        :class:`pandas_async.Report` for the whole frame; with ``errors="raise"``, one
        ``FetchError`` after every partition's good rows are on disk.
        """
        parquet = {"partition_cols": partition_cols, "key": key, "batch_size": batch_size}
        return _to_parquet(self._obj, absolute(path), url, parquet, {**options, "schema": schema})


@_register_series_accessor("aapi")
class DaskSeriesAccessor:
    """``urls.aapi.fetch(**options)`` on a dask Series of URLs."""

    def __init__(self, obj: dd.Series) -> None:
        self._obj = obj

    def fetch(self, **options: Unpack[FetchKwargs]) -> dd.DataFrame:
        """Fetch every URL in the Series; see :meth:`DaskDataFrameAccessor.fetch`."""
        return _fetch(self._obj, None, dict(options))


def _pandas_call(frame: pd.DataFrame | pd.Series, url: Any, options: Mapping[str, Any]) -> Any:
    """The pandas call itself; on the empty ``_meta`` it checks every option and sends nothing."""
    if isinstance(frame, pd.Series):
        return SeriesAccessor(frame).fetch(**options)
    return DataFrameAccessor(frame).fetch(url, **options)


def _fetch(obj: dd.DataFrame | dd.Series, url: Any, options: dict[str, Any]) -> dd.DataFrame:
    options = apply_defaults(options)  # here, where the caller's thread and block are
    _refuse_client(options)
    checked = FetchOptions.build("fetch", options)
    # The pandas call on the empty meta: every option and column reference checked, no request.
    empty = _pandas_call(obj._meta, url, {**options, "progress": False})
    plan = _plan(obj, checked)
    token = uuid.uuid4().hex[:12]
    results = [
        delayed(fetch_partition, pure=False)(
            part, url, options, plan, dask_key_name=f"aapi-fetch-{token}-{i}"
        )
        for i, part in enumerate(_to_delayed(obj))
    ]
    divisions = obj.divisions if obj.known_divisions else None
    raise_errors = checked.errors == "raise"
    if options.get("schema") is not None:  # the columns are known: stay lazy
        check = _failure_check(results, token) if raise_errors else None
        return _frame(results, empty, divisions, token, check)

    # Without schema= only the answers tell the columns: fetch now (results stay where they
    # were computed), learn every partition's columns from its first row, and return a frame
    # over the results with the one set of columns they unify to.
    results = list(_persist(*results))
    probes, failures = _compute(
        [delayed(probe)(r) for r in results],
        [delayed(failures_of)(r) for r in results] if raise_errors else [],
    )
    if raise_errors:
        raise_failures(failures)
    return _frame(results, unify(probes, empty), divisions, token, None)


def _to_parquet(
    obj: dd.DataFrame, path: str, url: Any, parquet: dict[str, Any], options: dict[str, Any]
) -> Report:
    options = apply_defaults(options)  # here, where the caller's thread and block are
    _refuse_client(options)
    checked = FetchOptions.build("to_parquet", options)
    started = time.perf_counter()
    # On the empty meta: every option checked, and the folder opened and cleaned once (a killed
    # run's uncommitted files removed) before any partition writes into it.
    quiet = {**options, "progress": False}
    write_parquet(obj._meta, path, url, clean=True, options=quiet, **parquet)
    plan = _plan(obj, checked)
    token = uuid.uuid4().hex[:12]
    tasks = [
        delayed(write_partition, pure=False)(
            part, path, url, options, plan, parquet, dask_key_name=f"aapi-to-parquet-{token}-{i}"
        )
        for i, part in enumerate(_to_delayed(obj))
    ]
    parts: list[PartWritten] = list(_compute(*tasks))
    failed = [p.failed for p in parts if p.failed is not None]
    if failed:
        counts: dict[str, int] = {}
        for p in parts:
            for cause, n in p.counts.items():
                counts[cause] = counts.get(cause, 0) + n
        raise FetchError(
            pd.concat(failed), counts, total=sum(p.rows for p in parts),
            where=f"every other row is written to {path}; .frame holds the failed rows with "
            "_status and _error; run to_parquet again to retry just them",
        )  # fmt: skip
    rate = None if checked.rate is None else checked.rate.limit / checked.rate.period
    report = merge_reports(
        parts, call=f"dask to_parquet {path}", seconds=time.perf_counter() - started, rate=rate
    )
    record_report(report)
    return report


def _refuse_client(options: Mapping[str, Any]) -> None:
    if options.get("client") is not None:
        raise TypeError(
            "client= cannot go to Dask workers: an httpx.AsyncClient belongs to one event loop in "
            "one process. Pass headers=/params= (auth tokens, API keys) instead, or use the "
            "pandas call"
        )


def _plan(obj: dd.DataFrame | dd.Series, checked: FetchOptions) -> LeasePlan:
    return LeasePlan.split(
        concurrency=checked.concurrency,
        rate=checked.rate,
        burst=getattr(checked, "burst", None),
        partitions=obj.npartitions,
        threads=_threads(),
    )


def _failure_check(results: list[Delayed], token: str) -> Delayed:
    """One task that raises ``FetchError`` with every partition's failed rows, if any failed."""
    check: Delayed = delayed(raise_failures)(
        [delayed(failures_of)(r) for r in results], dask_key_name=f"aapi-check-{token}"
    )
    return check


def _frame(
    results: list[Delayed],
    meta: pd.DataFrame,
    divisions: tuple[Any, ...] | None,
    token: str,
    check: Delayed | None,
) -> dd.DataFrame:
    # Text columns as dask holds them (its string dtype unless "dataframe.convert-string" is off),
    # whether or not an answer column happened to be of object dtype.
    meta = _from_pandas(meta, npartitions=1, sort=False)._meta
    after = () if check is None else (check,)
    outputs = [
        delayed(conform)(r, meta, *after, dask_key_name=f"aapi-result-{token}-{i}")
        for i, r in enumerate(results)
    ]
    frame: dd.DataFrame = _from_delayed(outputs, meta=meta, divisions=divisions)
    return frame


def _threads() -> int:
    """Worker threads that could run partitions: the cluster's, or the local scheduler's."""
    try:
        import distributed

        default_client: Any = distributed.default_client
        threads: dict[str, int] = default_client().nthreads()
        return max(1, sum(threads.values()))
    except (ImportError, ValueError):
        return int(dask.config.get("num_workers", None) or dask.system.CPU_COUNT)


def _to_delayed(obj: dd.DataFrame | dd.Series) -> list[Delayed]:
    to_delayed: Any = obj.to_delayed
    parts: list[Delayed] = to_delayed()
    return parts
