"""The ``.aapi`` accessors: validate, build the requests, run the engine, return a new frame.

pandas creates an accessor object on every attribute access, so nothing is kept on it.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Unpack

import numpy as np
import pandas as pd

from ._cache import AnswerCache, resolve_cache_folder
from ._calls import fetch_all, fetch_chunks
from ._dataset import Dataset, key_hashes
from ._defaults import apply_defaults
from ._engine import EnginePolicy, OnRows
from ._errors import FetchError
from ._frames import Assembled
from ._heap import heap_set_aside
from ._kept import fetch_kept_first
from ._options import UNSET, FetchKwargs, FetchOptions
from ._outcome import Outcome, Tally
from ._paginate import check_paginate
from ._parsers import make_parser
from ._progress import Progress
from ._report import Report, record_report, report_from_outcomes
from ._requests import RequestSpec, build_requests
from ._runner import claim_client, run_sync
from ._schema import assemble_typed, parse_schema
from ._secrets import MASK, is_secret_name, mask_headers, mask_text, mask_url
from ._sink import BatchWriter
from ._tracing import call_timeline, capture_parent, url_template

__all__ = ["DataFrameAccessor", "SeriesAccessor"]

Url = str | Callable[[pd.Series], str]


@dataclass(frozen=True)
class _Job:
    """One validated fetch: the input frame, its requests and the options. Built before any I/O."""

    frame: pd.DataFrame
    specs: list[RequestSpec]
    options: FetchOptions
    call: str  # "fetch GET https://h/users/{user_id}", secrets masked: names the call in reports
    caller: str  # "fetch", "afetch", "preview"
    template: str | None  # "/users/{user_id}", secrets masked: names the spans (None: no template)
    trace_parent: Any = field(repr=False)  # the caller's OpenTelemetry context
    source: str | None = field(repr=False)  # the URL template as given, to find secret fields

    @classmethod
    def prepare(
        cls, caller: str, frame: pd.DataFrame, url: Any, options: dict[str, Any],
        *, url_is_column: bool | None = None,
    ) -> _Job:  # fmt: skip
        options = apply_defaults(options)  # the session's and the block's, under the call's
        opts = FetchOptions.build(caller, options)
        opts = replace(opts, schema=parse_schema(opts.schema))
        check_paginate(opts.paginate, opts.how)
        specs = build_requests(frame, url, opts, url_is_column=url_is_column)
        call = f"{caller} {opts.method} {_describe_url(url, frame)}"
        source = template = None
        if isinstance(url, str) and url not in frame.columns and "{" in url:
            source, template = url, url_template(url)
        return cls(frame, specs, opts, call, caller, template, capture_parent(), source)

    async def run(self) -> list[Outcome]:
        outcomes, _ = await self.run_reported()
        return outcomes

    async def run_reported(
        self,
        on_rows: OnRows | None = None,
        chunks: Iterable[Sequence[RequestSpec]] | None = None,
        tally: Tally | None = None,
    ) -> tuple[list[Outcome], Report]:
        """Send every request; record and return the report too.

        A sink passes ``on_rows`` (its hook), ``chunks`` (the requests, made a batch at a time
        instead of ``self.specs``, so they are not all in memory at once) and the ``tally`` its
        hook fills: no outcome is kept per row, and none is returned.
        """
        o = self.options
        policy = EnginePolicy(
            concurrency=o.concurrency,
            rate=o.rate,
            burst=o.burst,
            timeout=o.timeout,
            retry=o.retry,
            dedupe=o.dedupe,
            max_bytes=o.max_bytes,
            paginate=o.paginate,
            record_path=o.record_path,
            http2=o.http2,
        )
        if o.client is not None:
            claim_client(o.client)  # its connections belong to one loop: fail early, with the fix
        folder = resolve_cache_folder(o.cache)
        # Opened here, on the loop's thread; a folder it cannot use fails before any request.
        cache = None if folder is None else AnswerCache(folder, ttl=o.cache_ttl, client=o.client)
        progress = Progress(len(self.specs) if chunks is None else len(self.frame), o.progress)
        timeline = call_timeline(
            caller=self.caller,
            method=o.method,
            template=self.template,
            rows=len(self.frame),
            parent=self.trace_parent,
            source=self.source,
        )
        outcomes: list[Outcome] = []
        counted: Tally | None = None
        try:
            # All rows at once, or a sink's batches through one engine: the same options either way.
            run = functools.partial(
                fetch_all if chunks is None else fetch_chunks, client=o.client, policy=policy,
                parse=make_parser(o.parse), on_done=progress.update, timeline=timeline,
                on_rows=on_rows,
            )  # fmt: skip
            with heap_set_aside(fewer_collections=chunks is None):  # see _heap
                if cache is not None and chunks is None and o.paginate is None:  # kept first
                    outcomes = await fetch_kept_first(
                        self.specs, cache, lambda left, store: run(left, store=store),
                        parse=o.parse, dedupe=o.dedupe, timeline=timeline,
                        on_done=progress.update,
                    )  # fmt: skip
                else:
                    outcomes = await run(self.specs if chunks is None else chunks, store=cache)
            counted = Tally.of(outcomes) if tally is None else tally
        finally:
            progress.close()
            if cache is not None:
                cache.close()
            timeline.finish(None if counted is None else counted.failed)
        report = report_from_outcomes(
            counted,
            call=self.call,
            seconds=timeline.seconds,
            paginated=o.paginate is not None,
            timeline=timeline,
            rate=o.rate.limit / o.rate.period if o.rate else None,
            cache_hits=None if cache is None else cache.hits,
        )
        record_report(report)
        return outcomes, report

    def assemble(self, frame: pd.DataFrame, outcomes: list[Outcome]) -> Assembled:
        """``frame``'s rows with their answers joined as this call's options say."""
        o = self.options
        return assemble_typed(
            frame, outcomes, o.schema, how=o.how, record_path=o.record_path, meta=o.meta,
            max_level=o.max_level, sep=o.sep, prefix=o.prefix,
        )  # fmt: skip

    def finish(self, outcomes: list[Outcome]) -> pd.DataFrame:
        o = self.options
        with heap_set_aside():  # the answers are not garbage: no full collection walks them
            assembled = self.assemble(self.frame, outcomes)
        if o.errors == "collect":
            return assembled.frame
        if assembled.failures:
            raise FetchError(assembled.frame, assembled.failures, total=len(self.frame))
        return assembled.frame.drop(columns=list(assembled.outcome_columns))

    def preview(self, n: int) -> pd.DataFrame:
        """The first ``n`` requests as a frame, secrets masked; nothing is sent."""
        specs = self.specs[:n]
        if self.options.paginate is not None:
            paginator = self.options.paginate
            specs = [s if s.problem else paginator.first_request(s) for s in specs]
        columns: dict[str, list[Any]] = {
            "method": [s.method for s in specs],
            "url": [_unbrace(mask_url(s.url)) for s in specs],
            "params": [_mask_params(s.params) for s in specs],
            "headers": [mask_headers(s.headers) if s.headers else None for s in specs],
        }
        if self.options.json is not UNSET:
            columns["json"] = [_mask_value(s.json) for s in specs]
        if self.options.data is not None:
            columns["data"] = [_mask_value(s.data) for s in specs]
        if any(s.problem is not None for s in specs):  # rows fetch would fail without sending
            columns["error"] = [s.problem.error if s.problem else None for s in specs]
        return pd.DataFrame(columns, index=self.frame.index[: len(specs)])


def _check_n(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n= expects a whole number of rows, got {n!r}")
    if n < 0:
        raise ValueError(f"n= must be >= 0, got {n!r}")
    return n


def _unbrace(url: str) -> str:
    return url.replace("%7B", "{").replace("%7D", "}")


def _describe_url(url: Any, frame: pd.DataFrame) -> str:
    if callable(url):
        return f"<{getattr(url, '__qualname__', type(url).__name__)}>"
    if url in frame.columns:
        return f"column {url!r}"
    return _unbrace(mask_url(url))


def _mask_params(params: Any) -> Any:
    """Params as preview shows them: a query string (a params= callable may return one) too."""
    if isinstance(params, bytes | bytearray):
        params = bytes(params).decode("utf-8", "replace")
    if isinstance(params, str):
        return mask_text("?" + params)[1:]
    return _mask_value(params)


def _mask_value(value: Any) -> Any:
    """A params/json/data value with the values of secret-looking keys masked, recursively."""
    if isinstance(value, Mapping):
        return {k: MASK if is_secret_name(str(k)) else _mask_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        if all(isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) for p in value):
            return [(k, MASK if is_secret_name(k) else v) for k, v in value]  # params as pairs
        return [_mask_value(v) for v in value]
    return value


def _names(option: str, value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    names = [value] if isinstance(value, str) else value
    if (
        not isinstance(names, list | tuple)
        or not names
        or not all(isinstance(n, str) for n in names)
    ):
        raise TypeError(f"{option} expects a column name or a list of them, got {value!r}")
    return tuple(names)


def write_parquet(
    frame: pd.DataFrame,
    path: str | os.PathLike[str],
    url: Any,
    *,
    partition_cols: str | Sequence[str] | None = None,
    key: str | Sequence[str] | None = None,
    batch_size: int = 10_000,
    clean: bool = True,
    options: dict[str, Any],
) -> Report:
    """``DataFrame.aapi.to_parquet``, callable on one partition of a bigger job.

    ``clean=False`` leaves files no commit names alone: when several processes write one
    folder (dask partitions), one cleans first (``Dataset.open(clean=True)``), the others not.
    """
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"to_parquet: path expects a folder path, got {path!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size= expects a whole number of rows >= 1, got {batch_size!r}")
    keys = _names("key=", key)
    partitions = _names("partition_cols=", partition_cols) or ()
    for name in keys or ():
        if name not in frame.columns:
            raise KeyError(f"key= names column {name!r}, which the frame lacks")
    job = _Job.prepare("to_parquet", frame.iloc[:0], url, options)  # checks; makes no request
    schema = job.options.schema
    if schema is not None:
        for name in partitions:
            if name not in frame.columns and name not in schema.names:
                raise ValueError(
                    f"partition_cols= names {name!r}, neither an input column nor in schema="
                )
    hashes = key_hashes(frame, keys)
    if len(np.unique(hashes)) != len(hashes):
        what = "index labels" if keys is None else f"key= columns {list(keys)}"
        raise ValueError(
            f"to_parquet: the {what} repeat; resuming needs one key per row "
            "(give key= columns that identify each row)"
        )
    dataset = Dataset(Path(path), keys, partitions)
    todo = np.flatnonzero(~np.isin(hashes, dataset.open(clean=clean)))
    part = frame if len(todo) == len(frame) else frame.iloc[todo]  # no copy on a first run
    job = replace(job, frame=part, specs=[])
    o = job.options
    chunks = (  # the requests, made a batch at a time as the engine needs them
        build_requests(part.iloc[start : start + batch_size], url, o)
        for start in range(0, len(part), batch_size)
    )
    writer = BatchWriter(
        dataset, part, hashes[todo], job.assemble,
        batch_size=batch_size, keep_failed=o.errors == "raise",
    )  # fmt: skip
    started = time.perf_counter()
    try:
        report = run_sync(_stream(job, writer, chunks))
    except BaseException:  # Ctrl-C returns before the loop has stopped: let the writer finish
        writer.abort()  # the slice being written is finished; exiting mid-write would crash
        raise
    report = replace(
        report, failed_rows=sum(writer.failures.values()), causes=dict(writer.failures),
        seconds=time.perf_counter() - started,  # the last batch's writing included
    )  # fmt: skip
    record_report(report)
    if writer.failed:
        raise FetchError(
            pd.concat(writer.failed), writer.failures, total=len(part),
            where=f"{writer.rows_written} rows are written to {os.fspath(path)}; .frame holds "
            "the failed rows with _status and _error; run to_parquet again to retry just them",
        )  # fmt: skip
    return report


async def _stream(
    job: _Job, writer: BatchWriter, chunks: Iterable[Sequence[RequestSpec]]
) -> Report:
    """Run ``job`` feeding ``writer``; then wait until every good row is on disk."""
    try:
        _, report = await job.run_reported(writer.on_rows, chunks, writer.tally)
    except BaseException as exc:
        writer.abort()
        if writer.error is not None and isinstance(exc, BaseExceptionGroup):
            raise writer.error from None
        raise
    await writer.close()
    return report


@pd.api.extensions.register_dataframe_accessor("aapi")
class DataFrameAccessor:
    """``df.aapi.fetch(url, **options)``: one HTTP request per row, answers joined back."""

    def __init__(self, obj: pd.DataFrame) -> None:
        self._obj = obj

    def fetch(self, url: Url, **options: Unpack[FetchKwargs]) -> pd.DataFrame:
        """Fetch one answer per row and return a new frame with the answers joined back.

        ``url`` is a column of URLs, a template such as ``"https://h/users/{user_id}"`` (values
        are percent-encoded), or a callable ``row -> str``. Works in scripts and inside Jupyter.
        See the README for every option.
        """
        job = _Job.prepare("fetch", self._obj, url, dict(options))
        return job.finish(run_sync(job.run()))

    async def afetch(self, url: Url, **options: Unpack[FetchKwargs]) -> pd.DataFrame:
        """``await df.aapi.afetch(url, **options)``: the async twin of :meth:`fetch`."""
        job = _Job.prepare("afetch", self._obj, url, dict(options))
        return job.finish(await job.run())

    def preview(self, url: Url, n: int = 5, **options: Unpack[FetchKwargs]) -> pd.DataFrame:
        """The requests ``fetch(url, **options)`` would send for the first ``n`` rows; sends none.

        One row per request, indexed like the input: ``method``, ``url``, ``params``,
        ``headers`` (and ``json``/``data`` when given), with secrets shown as ``***``. The
        requests are built and checked exactly as ``fetch`` builds them, so a missing column or
        a bad option raises the same error here. With ``paginate=``, the first page's request.
        """
        n = _check_n(n)
        return _Job.prepare("preview", self._obj, url, dict(options)).preview(n)

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
        """Fetch every row and stream the results into a Parquet dataset folder at ``path``.

        Rows are written in batches of ``batch_size`` input rows as they complete, so memory
        is bounded by the batch. Re-running on the same ``path`` fetches only rows whose key
        (the index labels, or the ``key`` columns) is not yet written; failed rows are never
        written. ``partition_cols`` lays the folder out as ``col=value/`` folders. Returns the
        run's :class:`pandas_async.Report`. See the README, "Streaming to Parquet".
        """
        return write_parquet(
            self._obj, path, url, partition_cols=partition_cols, key=key,
            batch_size=batch_size, options={**options, "schema": schema},
        )  # fmt: skip


@pd.api.extensions.register_series_accessor("aapi")
class SeriesAccessor:
    """``urls.aapi.fetch(**options)``: the Series holds URLs; the result keeps it as a column."""

    def __init__(self, obj: pd.Series) -> None:
        self._obj = obj

    def _frame(self) -> tuple[pd.DataFrame, str]:
        name = "url" if self._obj.name is None else str(self._obj.name)
        return self._obj.to_frame(name=name), name

    def fetch(self, **options: Unpack[FetchKwargs]) -> pd.DataFrame:
        """Fetch every URL in the Series; see :meth:`DataFrameAccessor.fetch`."""
        frame, name = self._frame()
        job = _Job.prepare("fetch", frame, name, dict(options), url_is_column=True)
        return job.finish(run_sync(job.run()))

    async def afetch(self, **options: Unpack[FetchKwargs]) -> pd.DataFrame:
        """The async twin of :meth:`fetch`."""
        frame, name = self._frame()
        job = _Job.prepare("afetch", frame, name, dict(options), url_is_column=True)
        return job.finish(await job.run())

    def preview(self, n: int = 5, **options: Unpack[FetchKwargs]) -> pd.DataFrame:
        """The requests ``fetch(**options)`` would send for the first ``n`` URLs; sends none.

        See :meth:`DataFrameAccessor.preview`.
        """
        n = _check_n(n)
        frame, name = self._frame()
        job = _Job.prepare("preview", frame, name, dict(options), url_is_column=True)
        return job.preview(n)
