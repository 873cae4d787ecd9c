"""Write the example notebooks from the cell sources below, run them, and store their outputs.

    python notebooks/_build.py            # write and execute every notebook (about 20 s)
    python notebooks/_build.py --no-run   # write them without outputs

Each notebook starts the bundled demo API on 127.0.0.1 itself, so no internet is needed. The
outputs are kept small and free of this machine's paths; tests/test_notebooks.py runs every
notebook again in a real kernel and checks that.
"""

from __future__ import annotations

import argparse
import html
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
KERNEL = "python3"
TIMEOUT = 600  # seconds per cell: 04_dask's 100,000 requests take minutes on a busy machine


def md(text: str) -> Any:
    return nbformat.v4.new_markdown_cell(textwrap.dedent(text).strip())


def code(text: str) -> Any:
    return nbformat.v4.new_code_cell(textwrap.dedent(text).strip())


START_DEMO = """
    {imports}

    import pandas_async  # registers DataFrame.aapi and Series.aapi
    from pandas_async import demo

    # The bundled demo API on 127.0.0.1 (no internet needed), {latency} ms per answer.
    server = demo.DemoServer(latency={seconds}).start()
    api = server.url
"""


def start_demo(latency_ms: int, stdlib: tuple[str, ...] = (), others: tuple[str, ...] = ()) -> str:
    """The first code cell: the imports, grouped and sorted as ruff wants, then the demo API."""
    groups = [sorted(stdlib), sorted([*others, "import pandas as pd"])]
    imports = "\n\n".join("\n".join(group) for group in groups if group)
    return START_DEMO.format(
        imports=imports.replace("\n", "\n    "),
        latency=latency_ms,
        seconds=latency_ms / 1000,
    )


QUICKSTART = [
    md("""
        # pandas_async quickstart

        Enrich a table from an HTTP API in one call: one request per row, sent concurrently,
        rate-limited and retried, with the JSON answers joined back as columns (or rows).

        This notebook runs against the demo API that ships with pandas_async, started below on
        127.0.0.1, so it needs no internet and gives the same answers every time. It shows:
        looking at the requests before sending them, enriching a table, rows mode, what happens
        when rows fail, retries, rate limits, the progress bar, the report of the last call (where
        its time went, plotted), and the OpenTelemetry spans of a call.
    """),
    code(start_demo(20)),
    md("""
        ## A table to enrich

        Six customers, each with the id of a user in the API.
    """),
    code("""
        customers = pd.DataFrame(
            {
                "user_id": [1, 2, 3, 4, 5, 6],
                "segment": ["retail", "pro", "pro", "retail", "enterprise", "pro"],
            },
            index=pd.Index(["C01", "C02", "C03", "C04", "C05", "C06"], name="customer"),
        )
        customers
    """),
    md("""
        ## Look before you send: `preview`

        `preview` builds the requests exactly as `fetch` would (so a typo in a column name fails
        here too) and shows the first rows' requests, sending nothing. Secrets are masked.
    """),
    code("""
        customers.aapi.preview(
            f"{api}/users/{{user_id}}",
            params={"fields": "name,email", "api_key": "my-secret-key"},
            headers={"Authorization": "Bearer my-secret-token"},
            n=3,
        )
    """),
    md("""
        ## Enrich: one request per row

        A URL template is filled from each row (values are percent-encoded). Nested keys of the
        answer are flattened with `.`; `prefix=` names the new columns. The index and the order
        of the rows are kept.
    """),
    code("""
        enriched = customers.aapi.fetch(f"{api}/users/{{user_id}}", prefix="user.")
        enriched[["segment", "user.name", "user.email", "user.address.city", "user.company.name"]]
    """),
    md("""
        ## Rows mode: when an answer is a list

        Each post has five comments: the comments become rows, and each input row's index label
        repeats once per record, like `DataFrame.explode`.
    """),
    code("""
        posts = pd.DataFrame({"post_id": [1, 2, 3]}, index=["p1", "p2", "p3"])
        comments = posts.aapi.fetch(f"{api}/posts/{{post_id}}/comments", how="rows")
        print(f"{len(posts)} posts -> {len(comments)} comment rows")
        comments[["post_id", "id", "email", "name"]].head(7)
    """),
    md("""
        ## When rows fail: `errors=`

        Users 5000 and 9999 do not exist. By default every row is attempted and then a
        `FetchError` says what failed; its `.frame` holds everything that was fetched.
    """),
    code("""
        ids = pd.DataFrame({"user_id": [1, 2, 5000, 3, 9999]})
        try:
            ids.aapi.fetch(f"{api}/users/{{user_id}}")
        except pandas_async.FetchError as exc:
            print(exc)
            print(exc.counts)
    """),
    md("""
        `errors="collect"` returns the frame instead: failed rows keep their input values, and
        `_status`, `_error`, `_elapsed` and `_attempts` say what happened to each row.
    """),
    code("""
        collected = ids.aapi.fetch(f"{api}/users/{{user_id}}", errors="collect")
        collected[["user_id", "name", "_status", "_error", "_attempts"]]
    """),
    md("""
        ## Retries

        Connection errors, timeouts and 408/425/429/500/502/503/504 answers are retried with
        exponential backoff (and `Retry-After` is honoured). The demo's `/status/{code}` always
        answers with the code it is given, so the 503 and 500 rows use up their retries: three
        attempts each with `Retry(attempts=2)`. A 404 is not retried.
    """),
    code("""
        codes = pd.DataFrame({"code": [200, 503, 404, 500]})
        retried = codes.aapi.fetch(
            f"{api}/status/{{code}}",
            retries=pandas_async.Retry(attempts=2, backoff=0.05),
            errors="collect",
        )
        retried[["code", "_status", "_error", "_attempts"]]
    """),
    md("""
        ## Rate limits

        `rate="20/s"` allows at most 20 requests to start in any one-second window, wherever
        that window starts (`"120/min"` and `"5000/h"` work too). Forty requests therefore take
        a little over a second, however high the concurrency.
    """),
    code("""
        import time

        many = pd.DataFrame({"user_id": range(1, 41)})
        started = time.perf_counter()
        many.aapi.fetch(f"{api}/users/{{user_id}}", rate="20/s", concurrency=40)
        print(f"40 requests at rate='20/s': {time.perf_counter() - started:.1f} s")
    """),
    md("""
        ## Progress

        `progress=True` shows a bar (a widget in Jupyter, text in a terminal) with the rows done,
        the failed rows, the retries and the requests per second. The default, `progress=None`,
        shows it only when a call runs for more than two seconds.
    """),
    code("""
        big = pd.DataFrame({"user_id": range(1, 201)})
        _ = big.aapi.fetch(f"{api}/users/{{user_id}}", rate="150/s", progress=True)
    """),
    md("""
        ## What happened: `last_report()`

        The report of the last call: rows by status and by cause of failure, requests sent
        (retries and pages included), requests per second and latency percentiles. The same
        numbers are attributes (`report.p90`, `report.retries`, `report.to_dict()`).
    """),
    code("""
        ids.aapi.fetch(f"{api}/users/{{user_id}}", errors="collect", concurrency=2)
        report = pandas_async.last_report()
        report
    """),
    md("""
        ### Where the time went

        A slower call: 80 rows at `rate="40/s"`, one of which the API answers with a 429 and
        `Retry-After: 1`, so the whole host pauses (a cool-down) and the row is retried once.
        The `time` line splits the wall time by what the call was doing (each moment counted
        once: cool-down, then rate limiter, then in flight, then backoff, then other), and the
        `requests` line compares the rate achieved with the rate asked.
    """),
    code("""
        urls = pd.Series(
            [f"{api}/status/429?retry_after=1"] + [f"{api}/users/{i}" for i in range(1, 80)],
            name="url",
        )
        _ = urls.aapi.fetch(
            rate="40/s", retries=pandas_async.Retry(attempts=1), errors="collect", progress=False
        )
        slow = pandas_async.last_report()
        print(slow)
        {phase: round(seconds, 2) for phase, seconds in slow.time.items()}
    """),
    md("""
        `plot()` draws the latency histogram and the requests over time (started, answered,
        429s, per second, with the rate asked as a dashed line): the stall while the host cooled
        down shows as a gap, then the requests resume at the rate asked.
    """),
    code("""
        slow.plot(bins=20, interval=0.1);
    """),
    md("""
        ## Tracing with OpenTelemetry

        With a tracer provider set, each call is a span and each attempt (retries and pages too)
        a CLIENT span under it, named after the URL template, with the HTTP attributes of
        OpenTelemetry's conventions. Secrets are masked in `url.full` (see `api_key` below).
        Here the spans go to an in-memory exporter and are shown as a table; in production you
        would export them (OTLP, Jaeger...). Row 503 fails twice: the retry carries
        `http.request.resend_count`.
    """),
    code("""
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)

        codes = pd.DataFrame({"code": [200, 503]})
        _ = codes.aapi.fetch(
            f"{api}/status/{{code}}",
            params={"api_key": "my-secret-key"},
            retries=pandas_async.Retry(attempts=1, backoff=0.05),
            errors="collect",
        )

        spans = exporter.get_finished_spans()
        names = {s.context.span_id: s.name for s in spans}
        pd.DataFrame(
            {
                "span": [s.name for s in spans],
                "kind": [s.kind.name for s in spans],
                "parent": [names.get(s.parent.span_id) if s.parent else None for s in spans],
                "ms": [round((s.end_time - s.start_time) / 1e6, 1) for s in spans],
                "status": pd.array(
                    [s.attributes.get("http.response.status_code") for s in spans], dtype="Int64"
                ),
                "resend": pd.array(
                    [s.attributes.get("http.request.resend_count") for s in spans], dtype="Int64"
                ),
                "error.type": [s.attributes.get("error.type") for s in spans],
                "url.full": [s.attributes.get("url.full", "").replace(api, "{api}") for s in spans],
            }
        )
    """),
    code("""
        server.stop()
    """),
]


CRYPTO = [
    md("""
        # Crypto OHLCV candles to Parquet, resumable

        The job pandas_async was written for, at its real shape: hourly candles for **300 trading
        pairs x 7 days** (2,100 requests, 50,400 candles) from an API with a rate limit, streamed
        into a Parquet dataset partitioned by symbol and date. The run is killed halfway (`kill
        -9`, as a crash or a closed laptop would), and the next run fetches only what is missing.

        The demo API that ships with pandas_async serves synthetic, deterministic candles for
        300 pairs at `/candles?symbol=BTC-USDT&date=2024-03-01`, and here answers
        `429 Too Many Requests` beyond 200 requests per second, as an exchange would. Swap the
        URL and the rate for your exchange's. At the end the whole dataset is rebuilt from the
        disk cache of answers, with no request at all.
    """),
    code("""
        import pathlib
        import shutil
        import signal
        import subprocess
        import sys
        import tempfile
        import time

        import pandas as pd
        import pyarrow as pa

        from pandas_async import demo  # importing pandas_async registers DataFrame.aapi

        # The bundled demo API on 127.0.0.1 (no internet needed): 30 ms per answer, and a limit
        # of 200 requests per second on /candles (429 with Retry-After beyond it).
        server = demo.DemoServer(latency=0.03, candle_limit=(200, 1.0)).start()
        api = server.url
    """),
    md("""
        ## One row per (pair, day)
    """),
    code("""
        days = pd.date_range("2024-03-01", periods=7, freq="D").strftime("%Y-%m-%d")
        jobs = pd.MultiIndex.from_product([demo.PAIRS, days], names=["symbol", "date"])
        jobs = jobs.to_frame(index=False)
        print(f"{len(jobs):,} requests:", jobs["symbol"].nunique(), "pairs x", len(days), "days")
        jobs.head(3)
    """),
    md("""
        ## The call

        `to_parquet` takes every `fetch` option, plus where and how to write:

        - `key=["symbol", "date"]`: what identifies a row, so a re-run skips the rows written;
        - `partition_cols=["symbol", "date"]`: one `symbol=.../date=.../` folder per file;
        - `schema=`: the columns to keep and their exact types; the candle times arrive as ISO
          text and are stored as timestamps, a price that is not a number fails its row;
        - `rate="190/s"`: just under the API's limit; should the API still answer 429 (right
          after another client's burst, say), its `Retry-After` pauses the host and the row is
          retried;
        - `batch_size=300`: written every 300 completed requests (7,200 candles), while the
          requests go on;
        - `cache=`: every answer is also kept on disk, so rebuilding the dataset later (another
          layout, another schema, a deleted folder) sends nothing.
    """),
    code("""
        schema = pa.schema(
            [
                ("time", pa.timestamp("s", tz="UTC")),
                ("open", pa.float64()),
                ("high", pa.float64()),
                ("low", pa.float64()),
                ("close", pa.float64()),
                ("volume", pa.float64()),
            ]
        )
        work = pathlib.Path(tempfile.mkdtemp(prefix="ohlcv-"))
        root, cache = work / "candles", work / "cache"
        options = dict(
            cache=str(cache),
            params={"symbol": "{symbol}", "date": "{date}", "interval": "1h"},
            key=["symbol", "date"],
            partition_cols=["symbol", "date"],
            rate="190/s",
            concurrency=32,
            batch_size=300,
            progress=False,
        )
        jobs.aapi.preview(f"{api}/candles", n=2, params=options["params"])
    """),
    md("""
        ## A run that is killed halfway

        The job runs in a child process, as a script or a scheduled job would, and gets
        `SIGKILL` once about a third of the batches are on disk: no clean-up, no `finally`.
    """),
    code("""
        job = f'''
        import pandas as pd, pyarrow as pa, pandas_async
        from pandas_async import demo
        days = pd.date_range("2024-03-01", periods=7, freq="D").strftime("%Y-%m-%d")
        jobs = pd.MultiIndex.from_product([demo.PAIRS, days], names=["symbol", "date"])
        schema = pa.schema([("time", pa.timestamp("s", tz="UTC"))] + [
            (c, pa.float64()) for c in ("open", "high", "low", "close", "volume")])
        jobs.to_frame(index=False).aapi.to_parquet(
            {str(root)!r}, "{api}/candles", schema=schema, **{options!r})
        '''
        commits = root / "_pandas_async" / "commits"
        started = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-c", job])
        while child.poll() is None and len(list(commits.glob("*.json"))) < 2:
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
        child.wait()
        killed_s = time.perf_counter() - started
        print(f"killed after {killed_s:.1f} s (exit code {child.returncode})")
    """),
    md("""
        What the crash left is a dataset `pandas.read_parquet` reads as it is, with no candle
        twice: each batch appears only once it is complete (written under hidden names, renamed
        into place, then committed in `_pandas_async/`).
    """),
    code("""
        partial = pd.read_parquet(root)
        print(f"{len(partial):,} candles on disk: {len(partial) // 24:,} of {len(jobs):,} requests")
        assert not partial.duplicated(["symbol", "date", "time"]).any()
    """),
    md("""
        ## Resume

        The same call on the same folder: rows whose key is written are skipped, files of a
        batch that was never committed are removed, and only the rest is fetched.
    """),
    code("""
        started = time.perf_counter()
        report = jobs.aapi.to_parquet(root, f"{api}/candles", schema=schema, **options)
        resume_s = time.perf_counter() - started
        print(report)
    """),
    code("""
        candles = pd.read_parquet(root)
        keys = candles.groupby(["symbol", "date"], observed=True).ngroups
        print(f"{len(candles):,} candles for {keys:,} (pair, day) keys")
        assert len(candles) == len(jobs) * 24
        assert not candles.duplicated(["symbol", "date", "time"]).any()  # each key exactly once
        candles.dtypes
    """),
    md("""
        ## Running it again fetches nothing

        A notebook cell re-run twenty times a day costs no request once the data is written.
    """),
    code("""
        server_requests = server.request_count
        started = time.perf_counter()
        again = jobs.aapi.to_parquet(root, f"{api}/candles", schema=schema, **options)
        again_s = time.perf_counter() - started
        print(again.rows, "rows fetched,", server.request_count - server_requests, "requests sent")
    """),
    md("""
        ## Rebuild it from the cache: zero requests

        The dataset folder is deleted, and the same call writes it again. Every answer comes
        from the disk cache (`cache=`), so the API sees nothing and the rate limit does not
        apply: only reading, flattening and writing remain.
    """),
    code("""
        shutil.rmtree(root)
        server_requests = server.request_count
        started = time.perf_counter()
        cached = jobs.aapi.to_parquet(root, f"{api}/candles", schema=schema, **options)
        cached_s = time.perf_counter() - started
        sent = server.request_count - server_requests
        print(sent, "requests sent,", cached.cache_hits, "answers read from the cache")
        assert len(pd.read_parquet(root)) == len(candles)
    """),
    md("""
        ## Timings
    """),
    code("""
        timings = pd.Series(
            {
                "run killed after (s)": killed_s,
                "resume (s)": resume_s,
                "re-run, nothing to do (s)": again_s,
                "rebuilt from the cache (s)": cached_s,
                "2,100 requests at 190/s take (s)": len(jobs) / 190,
            }
        )
        timings.round(2).to_frame("seconds")
    """),
    md("""
        ## Read one pair back

        A filter on a partition column reads only that pair's files.
    """),
    code("""
        btc = pd.read_parquet(root, filters=[("symbol", "==", "BTC-USDT")]).sort_values("time")
        daily = btc.groupby("date", observed=True).agg(
            open=("open", "first"),
            high=("high", "max"),
            low=("low", "min"),
            close=("close", "last"),
            volume=("volume", "sum"),
        )
        daily.round(2)
    """),
    code("""
        ax = btc.plot(x="time", y="close", figsize=(7, 2.5), legend=False)
        ax.set_title("BTC-USDT, hourly close")
        ax.set_xlabel("");
    """),
    code("""
        shutil.rmtree(work)
        server.stop()
    """),
]


PERFORMANCE = [
    md("""
        # Performance: a loop versus `.aapi`

        The same enrichment two ways: the loop most of us write first (one blocking request
        after another) and `df.aapi.fetch` with up to 50 requests in flight. The demo API on
        127.0.0.1 answers each request after about 20 ms, standing in for a remote API; with a
        real API the latency is usually larger, and so is the gap.

        Timings are from the machine that ran this notebook; re-run it to see yours.
    """),
    code(start_demo(20, stdlib=("import time",), others=("import httpx",))),
    md("""
        ## The two ways
    """),
    code("""
        def enrich_in_a_loop(frame: pd.DataFrame) -> pd.DataFrame:
            records = []
            with httpx.Client() as client:
                for user_id in frame["user_id"]:
                    response = client.get(f"{api}/users/{user_id}")
                    response.raise_for_status()
                    records.append(response.json())
            return frame.join(pd.json_normalize(records).set_index(frame.index))


        def enrich_with_aapi(frame: pd.DataFrame) -> pd.DataFrame:
            return frame.aapi.fetch(f"{api}/users/{{user_id}}", concurrency=50, progress=False)


        def seconds(fn, *args):
            started = time.perf_counter()
            result = fn(*args)
            return time.perf_counter() - started, result
    """),
    md("""
        ## Time them for growing tables

        Both give the same frame; only the time differs.
    """),
    code("""
        rows = []
        for n in (10, 25, 50, 100):
            frame = pd.DataFrame({"user_id": range(1, n + 1)})
            loop_s, by_loop = seconds(enrich_in_a_loop, frame)
            aapi_s, by_aapi = seconds(enrich_with_aapi, frame)
            pd.testing.assert_series_equal(by_loop["email"], by_aapi["email"])
            rows.append({"rows": n, "loop (s)": loop_s, ".aapi (s)": aapi_s})
        timings = pd.DataFrame(rows).set_index("rows")
        timings["speed-up"] = timings["loop (s)"] / timings[".aapi (s)"]
        timings.round(2)
    """),
    code("""
        ax = timings[["loop (s)", ".aapi (s)"]].plot(marker="o", figsize=(6, 3.2))
        ax.set_ylabel("seconds")
        ax.set_title("Enriching n rows, ~20 ms per request")
        ax.grid(alpha=0.3);
    """),
    md("""
        ## How much concurrency?

        The same 100 rows with 1 to 50 requests in flight. With one in flight, `.aapi` is the
        loop; the time falls roughly as 1/concurrency until the API or the network becomes the
        limit. A `rate=` limit, when the API has one, caps it whatever the concurrency.
    """),
    code("""
        frame = pd.DataFrame({"user_id": range(1, 101)})
        sweep = {}
        for concurrency in (1, 5, 10, 25, 50):
            started = time.perf_counter()
            frame.aapi.fetch(f"{api}/users/{{user_id}}", concurrency=concurrency, progress=False)
            sweep[concurrency] = time.perf_counter() - started
        sweep = pd.Series(sweep, name="seconds").rename_axis("concurrency")
        ax = sweep.plot(marker="o", logx=True, figsize=(6, 3.2), title="100 rows, ~20 ms each")
        ax.set_ylabel("seconds")
        ax.grid(alpha=0.3)
        sweep.round(2).to_frame().T
    """),
    md("""
        ## Where the time goes

        The report of the last call (concurrency 50): each request still takes its 20 ms or
        more (waiting its turn in the server and the client included); the call is fast
        because the requests overlap.
    """),
    code("""
        report = pandas_async.last_report()
        print(report)
        report.plot(bins=20);
    """),
    code("""
        server.stop()
    """),
]


DASK = [
    md("""
        # Scale out: Dask

        The same enrichment on a Dask cluster: 100,000 rows, each partition fetched by a worker
        process, with `concurrency` and `rate` held as totals for the whole cluster. Dask never
        calls the function on made-up rows (that would send real requests): with `schema=` the
        result is lazy and nothing is sent before `compute()`.

        The API is the demo API bundled with pandas_async, served on 127.0.0.1 by this notebook,
        with a small addition: it records when each request arrived and how many were in flight,
        so at the end we can look at the run from the server's side.
    """),
    code("""
        import asyncio
        import threading
        import time

        import dask.dataframe as dd
        import pandas as pd
        from aiohttp import web
        from distributed import Client, LocalCluster

        import pandas_async.dask  # noqa: F401  (registers .aapi on dask DataFrames and Series)
        from pandas_async.demo.routes import create_app


        class WatchedAPI:
            \"\"\"The demo API on 127.0.0.1, keeping the server's view of every request.\"\"\"

            def __init__(self, latency: float) -> None:
                self.arrivals: list[float] = []
                self.in_flight = self.max_in_flight = 0
                app = create_app(latency)
                app.middlewares.insert(0, self.watch)
                ready = threading.Event()
                threading.Thread(target=self.serve, args=(app, ready), daemon=True).start()
                ready.wait()

            @web.middleware
            async def watch(self, request, handler):
                self.arrivals.append(time.monotonic())
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
                try:
                    return await handler(request)
                finally:
                    self.in_flight -= 1

            def serve(self, app: web.Application, ready: threading.Event) -> None:
                loop = asyncio.new_event_loop()
                runner = web.AppRunner(app, access_log=None)
                loop.run_until_complete(runner.setup())
                site = web.TCPSite(runner, "127.0.0.1", 0)
                loop.run_until_complete(site.start())
                self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
                ready.set()
                loop.run_forever()


        server = WatchedAPI(latency=0.02)  # about 20 ms per answer
        api = server.url
    """),
    md("""
        ## A cluster of worker processes

        Two worker processes with two threads each, on this machine. The dashboard shows the
        partitions being fetched (task names start with `aapi-fetch`).
    """),
    code("""
        cluster = LocalCluster(n_workers=2, threads_per_worker=2, dashboard_address=":0")
        client = Client(cluster)
        print("dashboard:", client.dashboard_link)
    """),
    md("""
        ## 100,000 rows to enrich

        Each row names one of the API's 1,000 users; `row` makes every request distinct, so
        100,000 requests go out (identical requests would be sent once).
    """),
    code("""
        n = 100_000
        rows = pd.DataFrame({"user_id": [i % 1000 + 1 for i in range(n)], "row": range(n)})
        users = dd.from_pandas(rows, npartitions=8)
        users
    """),
    md("""
        ## Lazy, with `schema=`

        `schema=` names the new columns and their types, so the result's columns are known
        without asking the API: the call returns at once and sends nothing. `concurrency=100` is
        a total: four worker threads fetch side by side, each partition holding one of four
        leases of 25.
    """),
    code("""
        enriched = users.aapi.fetch(
            f"{api}/users/{{user_id}}",
            params={"row": "{row}"},
            concurrency=100,
            schema={"name": "string", "email": "string", "address.city": "string"},
        )
        print(f"requests the server has seen: {len(server.arrivals)}")
        enriched.dtypes
    """),
    code("""
        started = time.perf_counter()
        result = enriched.compute()
        seconds = time.perf_counter() - started
        print(f"{len(result):,} rows in {seconds:.1f} s ({len(result) / seconds:,.0f} rows/s)")
        result.head()
    """),
    md("""
        ## The server's view: in flight

        The most requests the server had in flight at once, against the total asked for.
    """),
    code("""
        print(f"requests: {len(server.arrivals):,}")
        print(f"most in flight at once: {server.max_in_flight} (concurrency=100)")
    """),
    md("""
        ## A rate for the whole cluster

        `rate="200/s"` is a total too: each of the four leases sends at most 50 in any second,
        and a lease passes to the next partition only one second after its last answer, so two
        holders of a lease never share a second. Here 6,000 rows in 6 partitions. The server's
        view: the most arrivals in any one second (a sliding window, wherever it starts), and
        the arrivals per second of the run.

        The server stamps a request when its event loop gets to it. On a busy machine that can
        be tens of milliseconds late, and late stamps bunch: each share is held by the pandas
        call's own limiter, which counts from send times with a 20 ms margin, so a busy server
        can count a few more in one second, from one process as from a cluster. The test suite
        counts windows 50 ms short of the period for that reason; both counts are shown.
    """),
    code("""
        server.arrivals.clear()
        some = dd.from_pandas(rows.iloc[:6000], npartitions=6)
        started = time.perf_counter()
        paced = some.aapi.fetch(
            f"{api}/users/{{user_id}}",
            params={"row": "{row}"},
            concurrency=100,
            rate="200/s",
            schema={"name": "string"},
        ).compute()
        seconds = time.perf_counter() - started
        arrivals = pd.Series(sorted(server.arrivals))
        in_any_second = (arrivals.searchsorted(arrivals + 1.0) - arrivals.index).max()
        in_any_095 = (arrivals.searchsorted(arrivals + 0.95) - arrivals.index).max()
        print(f"{len(paced):,} rows in {seconds:.1f} s ({len(paced) / seconds:,.0f} rows/s)")
        print(f"most arrivals in any 1 s window: {in_any_second} (rate=200/s)")
        print(f"most arrivals in any 0.95 s window: {in_any_095}")
    """),
    code("""
        per_second = (arrivals - arrivals.iloc[0]).astype(int).value_counts().sort_index()
        ax = per_second.plot.bar(figsize=(7, 3), width=0.9, color="tab:blue")
        ax.axhline(200, color="tab:red", linestyle="--", label="rate=200/s")
        ax.set_xlabel("second of the run")
        ax.set_ylabel("arrivals at the server")
        ax.legend();
    """),
    md("""
        ## Without `schema=`

        Without a schema only the answers tell the columns, so `fetch` sends the requests at
        once (the results stay on the workers) and returns a dask frame over them with one set
        of columns for every partition, whatever each partition's answers held.
    """),
    code("""
        first_two = users.partitions[:2]
        sample = first_two.aapi.fetch(f"{api}/users/{{user_id}}", params={"row": "{row}"})
        print(f"columns: {len(sample.columns)}; rows: {len(sample):,}")
        sample[["user_id", "name", "address.geo.lat", "company.name"]].head(3)
    """),
    code("""
        client.close()
        cluster.close()
    """),
]


NOTEBOOKS = {
    "01_quickstart.ipynb": QUICKSTART,
    "02_crypto_ohlcv_to_parquet.ipynb": CRYPTO,
    "03_performance.ipynb": PERFORMANCE,
    "04_dask.ipynb": DASK,
}


def new_notebook(cells: list[Any]) -> Any:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": KERNEL},
        "language_info": {"name": "python"},
    }
    nb.cells = cells
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:02d}"  # stable ids: rebuilding gives small diffs
    return nb


def execute(nb: Any, cwd: Path) -> None:
    client = NotebookClient(
        nb,
        timeout=TIMEOUT,
        kernel_name=KERNEL,
        record_timing=False,
        resources={"metadata": {"path": str(cwd)}},
    )
    client.execute()
    _text_for_progress_widgets(nb)
    nb.metadata["language_info"] = {"name": "python"}  # no interpreter version churn


def _text_for_progress_widgets(nb: Any) -> None:
    """Give each tqdm widget output the bar's final text, for viewers that do not run widgets.

    The widget's own text/plain is the bar as it was first drawn (0%); its final state is in the
    saved widget state: a label, a progress value and a text with the counts.
    """
    state = (
        nb.metadata.get("widgets", {})
        .get("application/vnd.jupyter.widget-state+json", {})
        .get("state", {})
    )

    def model(ref: str) -> dict[str, Any]:
        return state.get(ref.removeprefix("IPY_MODEL_"), {}).get("state", {})

    for cell in nb.cells:
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get("application/vnd.jupyter.widget-view+json")
            if not view:
                continue
            children = [model(ref) for ref in model(view["model_id"]).get("children", [])]
            texts = [c.get("value") for c in children if isinstance(c.get("value"), str)]
            bars = [c for c in children if c.get("_model_name") == "FloatProgressModel"]
            if len(texts) == 2 and bars:
                done = bars[0].get("value", 0) / (bars[0].get("max") or 1)
                filled = round(done * 10)
                bar = "█" * filled + " " * (10 - filled)
                text = f"{texts[0]}|{bar}|{texts[1]}".replace("\u2007", " ")
                output["data"]["text/plain"] = html.unescape(re.sub(r"<[^>]+>", "", text))


def check_outputs(nb: Any, name: str) -> None:
    """Refuse outputs that would leak this machine's paths or carry an error."""
    text = nbformat.writes(nb)
    for marker in (str(HERE.parent), str(Path.home()), "/tmp/", "site-packages"):
        if marker and marker in text:
            raise SystemExit(f"{name}: an output contains {marker!r}; keep paths out of outputs")
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            complaint = output.get("output_type") == "error" or output.get("name") == "stderr"
            if complaint and "pandas_async" not in str(output.get("text", "")):  # a text bar
                raise SystemExit(f"{name}: a cell wrote an error or a warning: {output}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-run", action="store_true", help="write without executing")
    parser.add_argument("names", nargs="*", help="only these notebooks (file names)")
    args = parser.parse_args(argv)
    for name, cells in NOTEBOOKS.items():
        if args.names and name not in args.names:
            continue
        nb = new_notebook(cells)
        if not args.no_run:
            execute(nb, HERE)
            check_outputs(nb, name)
        nbformat.validate(nb)
        nbformat.write(nb, HERE / name)
        print(f"wrote notebooks/{name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
