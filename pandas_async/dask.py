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

import uuid
from collections.abc import Callable, Mapping
from typing import Any, Unpack

import dask.base
import dask.dataframe as dd
import dask.dataframe.extensions
import dask.system
import pandas as pd
from dask.delayed import Delayed, delayed

from ._accessor import DataFrameAccessor, SeriesAccessor
from ._dask_leases import LeasePlan
from ._dask_parts import conform, failures_of, fetch_partition, probe, raise_failures, unify
from ._options import FetchKwargs, FetchOptions

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
    if options.get("client") is not None:
        raise TypeError(
            "client= cannot go to Dask workers: an httpx.AsyncClient belongs to one event loop in "
            "one process. Pass headers=/params= (auth tokens, API keys) instead, or use the "
            "pandas call"
        )
    checked = FetchOptions.build("fetch", options)
    # The pandas call on the empty meta: every option and column reference checked, no request.
    empty = _pandas_call(obj._meta, url, {**options, "progress": False})
    plan = LeasePlan.split(
        concurrency=checked.concurrency,
        rate=checked.rate,
        burst=getattr(checked, "burst", None),
        partitions=obj.npartitions,
        threads=_threads(),
    )
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
