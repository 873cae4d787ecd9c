"""What happened in one fetch: rows by status and cause, requests, retries, pages, latency, and
where the wall time went (rate limiter, cool-down, backoff, in flight).

``pandas_async.last_report()`` returns the :class:`Report` of the last ``fetch``/``afetch`` that ran
(in any thread), recorded when its requests were done, whether or not it then raised
``FetchError``. A call that stops before sending anything (a bad option) records nothing.

Everything is computed from the per-row outcomes. Rows that shared one request (``dedupe``)
share one ``Outcome`` object, so request-level numbers (requests, retries, pages, latency) count
it once, while row-level numbers (statuses, causes) count every row, as ``FetchError.counts``
and the ``_status`` column do. Answers read from the disk cache (``cache=``) are counted in
``cache_hits`` and not in the request numbers: nothing was sent for them.
"""

from __future__ import annotations

import html
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._outcome import Outcome, Tally
from ._timeline import NO_STATUS, PHASES, Timeline

__all__ = ["Report", "last_report", "record_report", "report_from_outcomes"]

PERCENTILES = (50, 90, 99)


def _ms(seconds: float) -> str:
    if math.isnan(seconds):
        return "n/a"
    if seconds < 10:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.1f} s"


def _seconds(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _status_name(status: int | None) -> str:
    return "no answer" if status is None else str(status)


@dataclass(frozen=True, kw_only=True)
class Report:
    """What happened in one ``fetch``/``afetch`` call.

    ``rows``            input rows; ``ok_rows`` + ``failed_rows`` == ``rows``
    ``shared_rows``     rows answered by another row's identical request (``dedupe``)
    ``requests``        HTTP requests sent: first tries, retries and pages
    ``distinct``        distinct requests (or paginated rows) after dedupe
    ``retries``         attempts beyond the first, summed over requests and pages
    ``pages``           pages fetched when ``paginate=`` was given, else ``None``
    ``statuses``        rows by final HTTP status (``None``: no answer came)
    ``causes``          failed rows by cause, as ``FetchError.counts``
    ``latencies``       seconds per distinct request, first attempt to final answer, retries and
                        waits included (a paginated row's pages added up); unsent ones left out
    ``seconds``         wall time of the call
    ``time``            the wall time by what the call was doing, each moment counted once under
                        the first that applies: ``"cool-down"``, ``"rate limiter"``, ``"in
                        flight"``, ``"backoff"``, ``"other"`` (set-up, parsing); adds up to
                        ``seconds``
    ``cooldown_by_host``  seconds each host (``host:port``) kept rows waiting in a cool-down
    ``rate``            the rate asked for, in requests per second (``None``: no ``rate=``)
    ``sent_at``, ``answered_at``, ``attempt_statuses``: per attempt, seconds after the call
                        started and the HTTP status (0: no answer), for ``plot()``
    ``cache_hits``      answers (pages included) read from the disk cache instead of sent;
                        ``None`` when the call had no ``cache=``

    ``p50``, ``p90``, ``p99`` are latency percentiles; ``str(report)`` is a text summary, Jupyter
    shows an HTML table, and ``report.plot()`` draws the latency histogram and the requests over
    time (needs matplotlib).
    """

    call: str
    rows: int
    failed_rows: int
    shared_rows: int
    requests: int
    distinct: int
    retries: int
    pages: int | None
    statuses: Mapping[int | None, int] = field(default_factory=dict)
    causes: Mapping[str, int] = field(default_factory=dict)
    latencies: tuple[float, ...] = ()
    seconds: float = 0.0
    time: Mapping[str, float] = field(default_factory=dict)
    cooldown_by_host: Mapping[str, float] = field(default_factory=dict)
    rate: float | None = None
    sent_at: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False, compare=False)
    answered_at: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False, compare=False)
    attempt_statuses: np.ndarray = field(
        default_factory=lambda: np.zeros(0, dtype=np.uint16), repr=False, compare=False
    )
    cache_hits: int | None = None

    # -- derived numbers ------------------------------------------------------------------------

    @property
    def ok_rows(self) -> int:
        return self.rows - self.failed_rows

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else math.nan

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else math.nan

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0..100) of the request latencies, in seconds."""
        if not 0 <= q <= 100:
            raise ValueError(f"q must be between 0 and 100, got {q!r}")
        if not self.latencies:
            return math.nan
        return float(np.percentile(self.latencies, q))  # linear interpolation

    @property
    def p50(self) -> float:
        return self.percentile(50)

    @property
    def p90(self) -> float:
        return self.percentile(90)

    @property
    def p99(self) -> float:
        return self.percentile(99)

    def to_dict(self) -> dict[str, Any]:
        """The counts and latency percentiles as plain values (for logging or a DataFrame)."""
        return {
            "call": self.call,
            "rows": self.rows,
            "ok_rows": self.ok_rows,
            "failed_rows": self.failed_rows,
            "shared_rows": self.shared_rows,
            "requests": self.requests,
            "distinct": self.distinct,
            "retries": self.retries,
            "pages": self.pages,
            "statuses": dict(self.statuses),
            "causes": dict(self.causes),
            "cache_hits": self.cache_hits,
            "seconds": self.seconds,
            "time": dict(self.time),
            "cooldown_by_host": dict(self.cooldown_by_host),
            "rate": self.rate,
            "requests_per_second": self.requests_per_second,
            "p50": self.p50,
            "p90": self.p90,
            "p99": self.p99,
        }

    # -- display --------------------------------------------------------------------------------

    def _lines(self) -> list[tuple[str, str]]:
        rows = f"{self.ok_rows} ok, {self.failed_rows} failed"
        if self.shared_rows:
            rows += f", {self.shared_rows} answered by a shared request (dedupe)"
        requests = (
            f"{self.requests} sent ({self.distinct} distinct, {self.retries} retries"
            + (f", {self.pages} pages" if self.pages is not None else "")
            + f"), {self.requests_per_second:.1f}/s"
            + (f" of {self.rate:.3g}/s asked" if self.rate else "")
        )
        statuses = ", ".join(
            f"{_status_name(s)}: {n}"
            for s, n in sorted(self.statuses.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))
        )
        lines = [("rows", rows), ("requests", requests)]
        if self.cache_hits is not None:
            lines.append(("cache", f"{self.cache_hits} answers read from disk, not sent"))
        lines.append(("status", statuses or "-"))
        if self.causes:
            causes = ", ".join(
                f"{cause}: {n}" for cause, n in sorted(self.causes.items(), key=lambda kv: -kv[1])
            )
            lines.append(("failures", causes))
        if self.latencies:
            latency = ", ".join(f"p{q} {_ms(self.percentile(q))}" for q in PERCENTILES)
            latency += f", max {_ms(max(self.latencies))}"
        else:
            latency = "n/a (no request sent)"
        lines.append(("latency", latency))
        if self.time and self.seconds > 0:
            parts = []
            for phase in PHASES:
                spent = self.time.get(phase, 0.0)
                if spent >= 0.0005 or phase == "in flight":
                    part = f"{phase} {_seconds(spent)} ({spent / self.seconds:.0%})"
                    if phase == "cool-down" and self.cooldown_by_host:
                        hosts = sorted(self.cooldown_by_host.items())
                        part += " [" + ", ".join(f"{h} {_seconds(t)}" for h, t in hosts) + "]"
                    parts.append(part)
            lines.append(("time", ", ".join(parts)))
        return lines

    def _title(self) -> str:
        return (
            f"pandas_async report: {self.call}\n"
            f"{self.rows} rows in {self.seconds:.2f} s ({self.rows_per_second:.1f} rows/s)"
        )

    def __str__(self) -> str:
        body = "\n".join(f"  {name:<9} {text}" for name, text in self._lines())
        return f"{self._title()}\n{body}"

    def __repr__(self) -> str:
        return str(self)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # IPython's text repr
        printer.text(str(self))

    def _repr_html_(self) -> str:
        title, subtitle = self._title().split("\n")
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(name)}</th>"
            f"<td style='text-align:left'>{html.escape(text)}</td></tr>"
            for name, text in self._lines()
        )
        return (
            f"<div><b>{html.escape(title)}</b><br>{html.escape(subtitle)}"
            f"<table>{rows}</table></div>"
        )

    def plot(self, ax: Any = None, *, bins: int = 30, interval: float | None = None) -> Any:
        """Two panels: the latency histogram (ms, percentiles marked) and the requests over time
        (attempts started, answered and answered 429, per second, in bins of ``interval``
        seconds). ``ax`` is a pair of Axes to draw into; returns the pair.
        """
        if interval is not None and not interval > 0:
            raise ValueError(f"interval= must be a positive number of seconds, got {interval!r}")
        try:
            import matplotlib.pyplot as plt
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "Report.plot() needs matplotlib: pip install 'pandas-async[notebook]'"
            ) from exc
        made = ax is None
        if ax is None:
            _, ax = plt.subplots(1, 2, figsize=(11, 3.2))
        latency_ax, time_ax = ax
        self._plot_latency(latency_ax, bins)
        self._plot_over_time(time_ax, interval)
        if made:
            latency_ax.figure.tight_layout()
        return ax

    def _plot_latency(self, ax: Any, bins: int) -> None:
        values = [v * 1000 for v in self.latencies]
        ax.hist(values, bins=bins, color="#4c72b0", alpha=0.85)
        for q, style in zip(PERCENTILES, ("-", "--", ":"), strict=True):
            if values:
                ax.axvline(self.percentile(q) * 1000, color="#c44e52", linestyle=style,
                           label=f"p{q} {_ms(self.percentile(q))}")  # fmt: skip
        ax.set_xlabel("latency per request (ms)")
        ax.set_ylabel("requests")
        ax.set_title(f"{self.distinct} requests, {self.rows} rows")
        if values:
            ax.legend()

    def _plot_over_time(self, ax: Any, interval: float | None) -> None:
        span = max(self.seconds, float(self.answered_at.max()) if len(self.answered_at) else 0.0)
        if interval is None:  # about 50 bins, at least 10 ms each
            interval = max(0.01, span / 50) if span > 0 else 1.0
        edges = np.arange(0.0, span + interval, interval)
        if len(edges) < 2:
            edges = np.array([0.0, interval])
        throttled = self.answered_at[self.attempt_statuses == 429]
        answered = self.answered_at[self.attempt_statuses != NO_STATUS]
        for times, label, color, style in (
            (self.sent_at, "started", "#4c72b0", "-"),
            (answered, "answered", "#55a868", "--"),
            (throttled, "429", "#c44e52", "-"),
        ):
            counts, _ = np.histogram(times, bins=edges)
            ax.step(edges[:-1], counts / interval, where="post", label=label, color=color,
                    linestyle=style)  # fmt: skip
        if self.rate:
            label = f"rate asked {self.rate:.3g}/s"
            ax.axhline(self.rate, color="grey", linestyle="--", label=label)
        ax.set_xlabel("seconds since the call started")
        ax.set_ylabel("requests per second")
        ax.set_title("requests over time")
        ax.legend()


def report_from_outcomes(
    outcomes: Sequence[Outcome] | Tally,
    *,
    call: str,
    seconds: float,
    paginated: bool,
    timeline: Timeline | None = None,
    rate: float | None = None,
    cache_hits: int | None = None,
) -> Report:
    """The report of one call, from its per-row outcomes (rows sharing a request share one), or
    their ``Tally``, and its ``timeline`` (where the time went; its wall time replaces
    ``seconds`` when given)."""
    tally = outcomes if isinstance(outcomes, Tally) else Tally.of(outcomes)
    return Report(
        call=call,
        rows=tally.rows,
        failed_rows=tally.failed,
        shared_rows=tally.rows - tally.distinct,
        requests=tally.requests,
        distinct=tally.distinct,
        retries=tally.retries,
        pages=tally.pages if paginated else None,
        statuses=dict(tally.statuses),
        causes=dict(tally.causes),
        latencies=tuple(tally.latencies),
        seconds=seconds if timeline is None else timeline.seconds,
        time={} if timeline is None else timeline.breakdown(),
        cooldown_by_host={} if timeline is None else dict(timeline.cooldown_by_host),
        rate=rate,
        **({} if timeline is None else _attempt_arrays(timeline)),
        cache_hits=cache_hits,
    )


def _attempt_arrays(timeline: Timeline) -> dict[str, np.ndarray]:
    return {
        "sent_at": np.frombuffer(timeline.started_at, dtype=np.float64).copy(),
        "answered_at": np.frombuffer(timeline.answered_at, dtype=np.float64).copy(),
        "attempt_statuses": np.frombuffer(timeline.statuses, dtype=np.uint16).copy(),
    }


_lock = threading.Lock()
_last: Report | None = None


def record_report(report: Report) -> None:
    global _last
    with _lock:
        _last = report


def last_report() -> Report | None:
    """The :class:`Report` of the last ``fetch``/``afetch`` that sent its requests, or ``None``.

    >>> enriched = users.aapi.fetch(url)  # doctest: +SKIP
    >>> pandas_async.last_report()         # doctest: +SKIP
    pandas_async report: fetch GET https://api.example.com/users/{user_id}
    3 rows in 0.21 s (14.3 rows/s)
      rows      3 ok, 0 failed
      ...
    """
    with _lock:
        return _last
