"""The job ``pandas-async demo`` runs: enrich a table of customers, then time a plain loop."""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import httpx
import pandas as pd

import pandas_async  # noqa: F401  (registers DataFrame.aapi)

from .data import N_USERS, JSONDict
from .routes import DEFAULT_LATENCY
from .server import serve

__all__ = ["SEQUENTIAL_SAMPLE", "DemoReport", "run_demo"]

SEQUENTIAL_SAMPLE = 40


@dataclass(frozen=True)
class DemoReport:
    """What :func:`run_demo` measured."""

    rows: int
    concurrency: int
    latency: float
    concurrent_seconds: float
    sequential_seconds: float
    sequential_rows: int
    frame: Any  # the enriched pandas DataFrame

    @property
    def sequential_extrapolated(self) -> bool:
        """True when only the first ``sequential_rows`` rows were fetched one at a time."""
        return self.sequential_rows < self.rows

    @property
    def speedup(self) -> float:
        return self.sequential_seconds / self.concurrent_seconds


def _customers(rows: int) -> Any:
    rng = random.Random("pandas-async-demo:customers")
    ids = [(i % N_USERS) + 1 for i in range(rows)]
    return pd.DataFrame(
        {
            "user_id": ids,
            "segment": [rng.choice(("retail", "pro", "enterprise")) for _ in ids],
            "orders": [rng.randint(1, 40) for _ in ids],
            "spend": [round(rng.lognormvariate(5.0, 0.8), 2) for _ in ids],
        },
        index=pd.Index([f"C{i:05d}" for i in range(1, rows + 1)], name="customer"),
    )


def _fetch_one_at_a_time(urls: Sequence[str], timeout: float) -> list[JSONDict]:
    """The loop the demo compares against: one blocking request after another."""
    answers = []
    with httpx.Client(timeout=timeout) as client:
        for url in urls:
            response = client.get(url)
            response.raise_for_status()
            answers.append(response.json())
    return answers


def run_demo(
    rows: int = 200,
    concurrency: int = 50,
    stream: TextIO | None = None,
    *,
    latency: float = DEFAULT_LATENCY,
    sequential_sample: int = SEQUENTIAL_SAMPLE,
) -> DemoReport:
    """Enrich a table of ``rows`` customers from the demo API, and compare with a plain loop.

    Starts the demo server, runs ``customers.aapi.fetch(".../users/{user_id}", ...)`` with
    ``concurrency`` requests in flight, prints the head of the result, then times the same
    requests sent one at a time. To stay quick, only the first ``sequential_sample`` rows are
    sent one at a time and the time for all rows is extrapolated (and labelled so).
    Writes to ``stream`` (default: ``sys.stdout``) and returns the measurements.
    """
    if rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows!r}")
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency!r}")
    if sequential_sample < 1:
        raise ValueError(f"sequential_sample must be >= 1, got {sequential_sample!r}")
    out = sys.stdout if stream is None else stream

    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    customers = _customers(rows)
    with serve(latency=latency) as server:
        template = f"{server.url}/users/{{user_id}}"
        say(
            f"pandas-async demo: a local JSON API at {server.url} "
            f"(latency ~{latency * 1000:.0f} ms)"
        )
        say(f"Enriching {rows} customers, one GET per row, {concurrency} in flight:")
        if rows > N_USERS:
            say(f"(the demo has {N_USERS} users, so ids repeat; a repeated request is sent once)")
        say()
        say(f'    customers.aapi.fetch("{server.url}/users/{{user_id}}",')
        say(f'                         concurrency={concurrency}, prefix="user.")')
        say()

        started = time.perf_counter()
        enriched = customers.aapi.fetch(
            template, concurrency=concurrency, prefix="user.", progress=False
        )
        concurrent_seconds = time.perf_counter() - started

        shown = [
            c
            for c in (
                "user_id",
                "segment",
                "user.name",
                "user.email",
                "user.address.city",
                "user.company.name",
            )
            if c in enriched.columns
        ]
        with pd.option_context("display.width", 120, "display.max_colwidth", 28):
            say(enriched[shown].head().to_string())
        new_columns = [c for c in enriched.columns if c not in customers.columns]
        say(
            f"[{len(enriched)} rows x {len(enriched.columns)} columns; {len(new_columns)} new: "
            f"{', '.join(new_columns[:6])}{', ...' if len(new_columns) > 6 else ''}]"
        )
        say()

        sample = min(rows, sequential_sample)
        urls = [f"{server.url}/users/{user_id}" for user_id in customers["user_id"].iloc[:sample]]
        started = time.perf_counter()
        _fetch_one_at_a_time(urls, timeout=max(10.0, 20 * latency))
        sample_seconds = time.perf_counter() - started
        sequential_seconds = sample_seconds * rows / sample

    report = DemoReport(
        rows=rows,
        concurrency=concurrency,
        latency=latency,
        concurrent_seconds=concurrent_seconds,
        sequential_seconds=sequential_seconds,
        sequential_rows=sample,
        frame=enriched,
    )
    fast_label = f"pandas-async, {concurrency} in flight:"
    slow_label = "one request at a time:"
    width = max(len(fast_label), len(slow_label))
    say(f"{fast_label:<{width}} {concurrent_seconds:8.2f} s for {rows} rows")
    note = f" (extrapolated: {sample} rows took {sample_seconds:.2f} s)"
    say(
        f"{slow_label:<{width}} {sequential_seconds:8.2f} s for {rows} rows"
        f"{note if report.sequential_extrapolated else ''}"
    )
    say(f"speed-up: {report.speedup:.1f}x")
    return report
