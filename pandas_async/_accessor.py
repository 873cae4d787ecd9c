"""The ``.aapi`` accessors: validate, build the requests, run the engine, return a new frame.

pandas creates an accessor object on every attribute access, so nothing is kept on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Unpack

import pandas as pd

from ._engine import EnginePolicy, fetch_all
from ._errors import FetchError
from ._frames import OUTCOME_COLUMNS, assemble, make_parser
from ._options import FetchKwargs, FetchOptions
from ._outcome import Outcome
from ._progress import Progress
from ._requests import RequestSpec, build_requests
from ._runner import run_sync

__all__ = ["DataFrameAccessor", "SeriesAccessor"]

Url = str | Callable[[pd.Series], str]


@dataclass(frozen=True)
class _Job:
    """One validated fetch: the input frame, its requests and the options. Built before any I/O."""

    frame: pd.DataFrame
    specs: list[RequestSpec]
    options: FetchOptions

    @classmethod
    def prepare(
        cls, caller: str, frame: pd.DataFrame, url: Any, options: dict[str, Any],
        *, url_is_column: bool | None = None,
    ) -> _Job:  # fmt: skip
        opts = FetchOptions.build(caller, options)
        specs = build_requests(frame, url, opts, url_is_column=url_is_column)
        return cls(frame, specs, opts)

    async def run(self) -> list[Outcome]:
        o = self.options
        policy = EnginePolicy(
            concurrency=o.concurrency,
            rate=o.rate,
            timeout=o.timeout,
            retry=o.retry,
            dedupe=o.dedupe,
            paginate=o.paginate,
            record_path=o.record_path,
        )
        progress = Progress(len(self.specs), o.progress)
        try:
            return await fetch_all(
                self.specs,
                client=o.client,
                policy=policy,
                parse=make_parser(o.parse),
                on_done=progress.update,
            )
        finally:
            progress.close()

    def finish(self, outcomes: list[Outcome]) -> pd.DataFrame:
        o = self.options
        assembled = assemble(
            self.frame,
            outcomes,
            how=o.how,
            record_path=o.record_path,
            meta=o.meta,
            max_level=o.max_level,
            sep=o.sep,
            prefix=o.prefix,
        )
        if o.errors == "collect":
            return assembled.frame
        if assembled.failures:
            raise FetchError(assembled.frame, assembled.failures, total=len(self.frame))
        return assembled.frame.drop(columns=list(OUTCOME_COLUMNS))


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
