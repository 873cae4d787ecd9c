"""pandas_async against the ways users enrich a DataFrame from an HTTP API today.

    python benchmarks/bench.py            # full run (~10 minutes)
    python benchmarks/bench.py --quick    # short run (~4 minutes)

The same job for every approach: a frame of ``user_id`` values, one GET per row to a loopback
JSON API (``benchmarks/server.py``, its own process, server-side latency as a parameter), the
answers flattened (``pd.json_normalize``) and joined back as columns. Approaches:

``sequential``    a ``requests.Session`` loop
``threads``       ``ThreadPoolExecutor(max_workers=concurrency)`` of ``requests`` calls
``aiohttp``       one ``aiohttp.ClientSession``, ``asyncio.Semaphore``, ``gather``
``httpx``         plain ``httpx.AsyncClient`` (default transport), ``asyncio.Semaphore``, ``gather``
``pandas_async``  ``df.aapi.fetch(template, concurrency=c)``

Each run is a fresh subprocess, so its peak RSS (``getrusage`` maxrss) and CPU time are its own.
Results go to ``benchmarks/results/`` (JSON, markdown table, PNG plot).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import math
import os
import platform
import resource
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SERVER = HERE / "server.py"

APPROACHES = ("sequential", "threads", "aiohttp", "httpx", "pandas_async")
SWEEP_CONCURRENCY = (10, 50, 100, 500, 1000)
SWEEP_LATENCY_MS = 50


# --------------------------------------------------------------------------------------------
# Worker side: one approach, one job, in a fresh process. Prints one JSON line on stdout.
# --------------------------------------------------------------------------------------------


def _job_sequential(df: Any, url: str, c: int) -> Any:
    import pandas as pd
    import requests

    answers = []
    with requests.Session() as session:
        for uid in df["user_id"].tolist():
            r = session.get(url.format(user_id=uid), timeout=30)
            r.raise_for_status()
            answers.append(r.json())
    new = pd.json_normalize(answers)
    new.index = df.index
    return df.join(new)


def _job_threads(df: Any, url: str, c: int) -> Any:
    from concurrent.futures import ThreadPoolExecutor

    import pandas as pd
    import requests
    from requests.adapters import HTTPAdapter

    session = requests.Session()
    # Without this the pool keeps 10 connections and opens (and drops) one per extra request.
    session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=c))

    def one(uid: int) -> Any:
        r = session.get(url.format(user_id=uid), timeout=30)
        r.raise_for_status()
        return r.json()

    with session, ThreadPoolExecutor(max_workers=c) as pool:
        answers = list(pool.map(one, df["user_id"].tolist()))
    new = pd.json_normalize(answers)
    new.index = df.index
    return df.join(new)


def _job_aiohttp(df: Any, url: str, c: int) -> Any:
    import asyncio

    import aiohttp
    import pandas as pd

    async def main() -> list[Any]:
        sem = asyncio.Semaphore(c)
        connector = aiohttp.TCPConnector(limit=c)
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

            async def one(uid: int) -> Any:
                async with sem, session.get(url.format(user_id=uid)) as resp:
                    resp.raise_for_status()
                    return await resp.json()

            return await asyncio.gather(*(one(uid) for uid in df["user_id"].tolist()))

    answers = asyncio.run(main())
    new = pd.json_normalize(answers)
    new.index = df.index
    return df.join(new)


def _job_httpx(df: Any, url: str, c: int) -> Any:
    import asyncio

    import httpx
    import pandas as pd

    async def main() -> list[Any]:
        sem = asyncio.Semaphore(c)
        # The default pool allows 100 connections (20 kept alive): let it match the semaphore.
        limits = httpx.Limits(max_connections=c, max_keepalive_connections=c)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:

            async def one(uid: int) -> Any:
                async with sem:
                    r = await client.get(url.format(user_id=uid))
                    r.raise_for_status()
                    return r.json()

            return await asyncio.gather(*(one(uid) for uid in df["user_id"].tolist()))

    answers = asyncio.run(main())
    new = pd.json_normalize(answers)
    new.index = df.index
    return df.join(new)


def _job_pandas_async(df: Any, url: str, c: int) -> Any:
    import pandas_async  # noqa: F401  (registers .aapi)

    return df.aapi.fetch(url, concurrency=c, progress=False)


IMPORTS = {
    "sequential": ("requests",),
    "threads": ("requests", "concurrent.futures"),
    "aiohttp": ("aiohttp", "asyncio"),
    "httpx": ("httpx", "asyncio"),
    "pandas_async": ("pandas_async",),
}

JOBS = {
    "sequential": _job_sequential,
    "threads": _job_threads,
    "aiohttp": _job_aiohttp,
    "httpx": _job_httpx,
    "pandas_async": _job_pandas_async,
}


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    job = JOBS[spec["approach"]]
    rows = spec["rows"]
    distinct = spec.get("distinct") or rows
    df = pd.DataFrame({"user_id": np.arange(rows) % distinct})
    url = spec["base"] + "/users/{user_id}"
    # Import what the job needs before the clock starts: we time the work, not imports.
    for module in IMPORTS[spec["approach"]]:
        importlib.import_module(module)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cpu0, t0 = _cpu(), time.perf_counter()
    out = job(df, url, spec["concurrency"])
    wall, cpu = time.perf_counter() - t0, _cpu() - cpu0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if len(out) != rows or "address.city" not in out.columns:
        raise SystemExit(f"wrong result: {len(out)} rows, columns {list(out.columns)[:8]}")
    return {"wall": wall, "cpu": cpu, "peak_rss_mb": rss, "rss_after_imports_mb": rss_before}


def frames_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """``assemble`` vs one ``pd.json_normalize`` over the same answers, in-process, no HTTP."""
    import gc

    import numpy as np
    import orjson
    import pandas as pd
    from server import user_body

    from pandas_async._engine import Outcome
    from pandas_async._frames import assemble

    n = spec["rows"]
    answers = [orjson.loads(user_body(str(i))) for i in range(n)]
    frame = pd.DataFrame({"user_id": np.arange(n)})
    outcomes = [Outcome(a, 200, None, None, 0.01, 1) for a in answers]

    def best(fn: Any, repeat: int) -> float:
        times = []
        for _ in range(repeat):
            gc.collect()
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    def recipe() -> Any:
        new = pd.json_normalize(answers)
        new.index = frame.index
        return frame.join(new)

    repeat = spec.get("repeat", 5)
    normalize = best(lambda: pd.json_normalize(answers), repeat)
    joined = best(recipe, repeat)
    assembled = best(lambda: assemble(frame, outcomes), repeat)
    return {
        "json_normalize": normalize,
        "json_normalize_join": joined,
        "assemble": assembled,
        "ratio": assembled / normalize,
    }


# --------------------------------------------------------------------------------------------
# Driver side: server, subprocesses, caps, tables, plot.
# --------------------------------------------------------------------------------------------


class Server:
    """``benchmarks/server.py`` in a subprocess on a free port; ready once it says so."""

    def __init__(self, latency_ms: float, warm_ids: int = 0) -> None:
        self.latency_ms = latency_ms
        self.warm_ids = warm_ids  # /users bodies the server encodes before it is ready
        self.proc: subprocess.Popen[str] | None = None
        self.base = ""

    def __enter__(self) -> Server:
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVER), "--latency-ms", str(self.latency_ms)]
            + (["--warm-ids", str(self.warm_ids)] if self.warm_ids else []),
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 20
        line = ""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("READY") or self.proc.poll() is not None:
                break
        if not line.startswith("READY"):
            self.__exit__()
            raise RuntimeError(f"benchmark server did not start: {line!r}")
        self.base = f"http://127.0.0.1:{int(line.split()[1])}"
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def _call(self, method: str, path: str) -> dict[str, Any]:
        req = urllib.request.Request(self.base + path, method=method)
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def reset(self) -> None:
        self._call("POST", "/_reset")

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/_stats")


@dataclass
class Result:
    scenario: str
    approach: str
    rows: int
    concurrency: int
    latency_ms: float
    rows_measured: int = 0
    extrapolated: bool = False
    wall: float | None = None  # seconds, for all rows (extrapolated if so marked)
    cpu: float | None = None
    cpu_us_per_request: float | None = None
    rows_per_s: float | None = None
    ideal: float | None = None
    wall_over_ideal: float | None = None
    peak_rss_mb: float | None = None
    rss_after_imports_mb: float | None = None
    server_requests: int | None = None
    timed_out_after: float | None = None
    error: str | None = None
    repeats: list[float] = field(default_factory=list)

    @property
    def wall_text(self) -> str:
        if self.timed_out_after is not None:
            return f"> {self.timed_out_after:.0f}"
        if self.wall is None:
            return "error"
        return f"{self.wall:.2f}{'*' if self.extrapolated else ''}"


def ideal_wall(rows: int, concurrency: int, latency_ms: float) -> float:
    return math.ceil(rows / concurrency) * latency_ms / 1000


def run_worker(spec: dict[str, Any], cap: float) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=cap)
    except subprocess.TimeoutExpired:
        return {"timed_out": True}
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": " | ".join(tail) or f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(
    server: Server,
    scenario: str,
    approach: str,
    rows: int,
    concurrency: int,
    *,
    cap: float,
    seq_budget: float,
    repeat: int = 1,
    distinct: int | None = None,
) -> Result:
    latency_ms = server.latency_ms
    res = Result(scenario, approach, rows, concurrency, latency_ms, ideal=None)
    measured = rows
    if approach == "sequential":
        # One request at a time: measure a subset that fits the budget, extrapolate linearly.
        per_row = latency_ms / 1000 + 0.0007
        measured = min(rows, max(20, int(seq_budget / per_row)))
        res.extrapolated = measured < rows
    res.rows_measured = measured
    spec = {
        "approach": approach,
        "base": server.base,
        "rows": measured,
        "concurrency": 1 if approach == "sequential" else concurrency,
        "distinct": distinct,
    }
    best: dict[str, Any] | None = None
    for _ in range(repeat):
        server.reset()
        out = run_worker(spec, cap)
        if out.get("timed_out"):
            res.timed_out_after = cap
            break
        if "error" in out:
            res.error = out["error"]
            break
        out["server_requests"] = server.stats()["requests"]
        res.repeats.append(round(out["wall"], 4))
        if best is None or out["wall"] < best["wall"]:
            best = out
    if best is not None and res.error is None and res.timed_out_after is None:
        scale = rows / measured
        res.wall = best["wall"] * scale
        res.cpu = best["cpu"] * scale
        res.server_requests = best["server_requests"]
        res.cpu_us_per_request = best["cpu"] / measured * 1e6
        res.rows_per_s = rows / res.wall
        res.peak_rss_mb = best["peak_rss_mb"]
        res.rss_after_imports_mb = best["rss_after_imports_mb"]
    if latency_ms > 0 and approach != "sequential":
        res.ideal = ideal_wall(rows, concurrency, latency_ms)
        if res.wall is not None:
            res.wall_over_ideal = res.wall / res.ideal
    elif latency_ms > 0:
        res.ideal = ideal_wall(rows, 1, latency_ms)
        if res.wall is not None:
            res.wall_over_ideal = res.wall / res.ideal
    return res


def fmt(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def table(results: list[Result]) -> str:
    head = (
        "| approach | rows | conc | latency ms | wall s | CPU s | CPU µs/req | rows/s "
        "| ideal s | wall/ideal | peak RSS MB | server reqs |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    lines = []
    for r in results:
        conc = 1 if r.approach == "sequential" else r.concurrency
        extra = f" (error: {r.error[:60]})" if r.error else ""
        lines.append(
            f"| {r.approach}{extra} | {r.rows} | {conc} | {r.latency_ms:g} | {r.wall_text} "
            f"| {fmt(r.cpu, '.2f')} | {fmt(r.cpu_us_per_request, '.0f')} "
            f"| {fmt(r.rows_per_s, ',.0f')} | {fmt(r.ideal, '.2f')} "
            f"| {fmt(r.wall_over_ideal, '.2f')} | {fmt(r.peak_rss_mb, '.0f')} "
            f"| {'' if r.server_requests is None else r.server_requests} |"
        )
    return head + "\n".join(lines) + "\n"


@contextlib.contextmanager
def section(title: str) -> Iterator[None]:
    print(f"\n## {title}\n", flush=True)
    t0 = time.perf_counter()
    yield
    print(f"\n({time.perf_counter() - t0:.0f} s)", flush=True)


def plot(sweep: list[Result], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot", file=sys.stderr)
        return False
    fig, ax = plt.subplots(figsize=(8, 5))
    for approach in APPROACHES:
        pts = [r for r in sweep if r.approach == approach]
        if not pts:
            continue
        if approach == "sequential":
            r = pts[0]
            if r.rows_per_s:
                ax.axhline(r.rows_per_s, ls="--", color="grey", label="sequential (1 at a time)")
            continue
        ok = [(r.concurrency, r.rows_per_s) for r in pts if r.rows_per_s]
        capped = [(r.concurrency, r.rows / r.timed_out_after) for r in pts if r.timed_out_after]
        (line,) = ax.plot(*zip(*ok, strict=True), marker="o", label=approach) if ok else (None,)
        if capped:
            color = line.get_color() if line is not None else None
            ax.plot(*zip(*capped, strict=True), marker="v", ls="", mfc="none", color=color,
                    label=f"{approach}: hit the time cap (upper bound)")  # fmt: skip
    ideal = [(c, c / (SWEEP_LATENCY_MS / 1000)) for c in SWEEP_CONCURRENCY]
    ax.plot(*zip(*ideal, strict=True), ls=":", color="black", label="ideal: concurrency / latency")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("concurrency")
    ax.set_ylabel("rows/s (higher is better)")
    ax.set_title(f"Rows/s vs concurrency, {SWEEP_LATENCY_MS} ms server latency, loopback")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="pandas_async vs today's recipes.")
    parser.add_argument("--quick", action="store_true", help="a short run (~4 minutes)")
    parser.add_argument("--approaches", default=",".join(APPROACHES), help="comma-separated")
    parser.add_argument(
        "--only", default="", help="comma-separated subset of: scenarios,sweep,frames,dedupe"
    )
    parser.add_argument("--cap", type=float, help="seconds before a run is stopped (> cap)")
    parser.add_argument("--repeat", type=int, help="runs per target scenario; the best is kept")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        spec = json.loads(args.worker)
        out = frames_worker(spec) if spec["approach"] == "frames" else worker(spec)
        print(json.dumps(out))
        return

    quick = args.quick
    cap = args.cap or (15.0 if quick else 60.0)
    repeat = args.repeat or (1 if quick else 2)
    seq_budget = 2.0 if quick else 4.0
    approaches = [a for a in args.approaches.split(",") if a]
    parts = set(filter(None, args.only.split(","))) or {"scenarios", "sweep", "frames", "dedupe"}
    sweep_conc = (10, 100, 1000) if quick else SWEEP_CONCURRENCY
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    report: dict[str, Any] = {
        "mode": "quick" if quick else "full",
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "cap_s": cap,
        "scenarios": [],
        "sweep": [],
    }
    md: list[str] = [f"# pandas_async benchmark ({report['mode']} run)\n"]
    kw = {"cap": cap, "seq_budget": seq_budget}

    scenarios = [
        ("latency-bound", 2000, 100, 50),
        ("high-concurrency", 20000, 1000, 200),
        ("cpu-bound", 5000, 50, 0),
    ]
    if "scenarios" in parts:
        for name, rows, conc, lat in scenarios:
            with section(f"{name}: {rows} rows, concurrency {conc}, {lat} ms"), Server(lat) as srv:
                results = [
                    measure(srv, name, a, rows, conc, repeat=repeat, **kw) for a in approaches
                ]
                text = table(results)
                print(text, flush=True)
                md.append(f"## {name}: {rows} rows, concurrency {conc}, {lat} ms\n\n{text}")
                report["scenarios"].extend(results)

    if "sweep" in parts:
        with (
            section(f"sweep: rows/s vs concurrency, {SWEEP_LATENCY_MS} ms"),
            Server(SWEEP_LATENCY_MS) as srv,
        ):
            sweep: list[Result] = []
            for a in approaches:
                if a == "sequential":
                    sweep.append(measure(srv, "sweep", a, 2000, 1, **kw))
                    continue
                for conc in sweep_conc:
                    rows = max(500 if quick else 2000, (10 if quick else 20) * conc)
                    sweep.append(measure(srv, "sweep", a, rows, conc, **kw))
            text = table(sweep)
            print(text, flush=True)
            md.append(f"## sweep: {SWEEP_LATENCY_MS} ms latency\n\n{text}")
            report["sweep"] = sweep
            if plot(sweep, args.out / "rows_per_s.png"):
                md.append("![rows/s vs concurrency](rows_per_s.png)\n")

    if "frames" in parts:
        with section("frame building: 100,000 answers, in-process"):
            n = 20_000 if quick else 100_000
            out = run_worker({"approach": "frames", "rows": n, "repeat": 3 if quick else 5}, 600)
            report["frames"] = {"rows": n, **out}
            if "error" in out:
                text = f"error: {out['error']}\n"
            else:
                text = (
                    f"| step ({n:,} answers, best of runs) | seconds |\n|---|---:|\n"
                    f"| pd.json_normalize | {out['json_normalize']:.3f} |\n"
                    f"| pd.json_normalize + join | {out['json_normalize_join']:.3f} |\n"
                    f"| pandas_async._frames.assemble | {out['assemble']:.3f} |\n"
                    f"| assemble / json_normalize | {out['ratio']:.2f}x |\n"
                )
            print(text, flush=True)
            md.append(f"## frame building\n\n{text}")

    if "dedupe" in parts and "pandas_async" in approaches:
        with section("dedupe: 100,000 rows, 1,000 distinct keys"), Server(10) as srv:
            r = measure(srv, "dedupe", "pandas_async", 100_000, 100, distinct=1000, **kw)
            r.ideal = ideal_wall(1000, 100, 10)
            r.wall_over_ideal = None if r.wall is None else r.wall / r.ideal
            text = table([r])
            print(text, flush=True)
            md.append(f"## dedupe: 100,000 rows, 1,000 distinct keys, 10 ms\n\n{text}")
            report["dedupe"] = r

    targets = check_targets(report)
    report["targets"] = targets
    rows = "".join(f"| {t['target']} | {t['measured']} | {t['met']} |\n" for t in targets)
    md.append("## targets\n\n| target | measured | met |\n|---|---|---|\n" + rows)
    md.append(
        "`*` extrapolated from a subset (sequential loop). `> N`: stopped at the time cap.\n"
        f"\nTotal run time: {time.perf_counter() - started:.0f} s.\n"
    )
    print("\n" + "\n".join(md[-2:]))

    def encode(o: Any) -> Any:
        return asdict(o) if isinstance(o, Result) else str(o)

    (args.out / "results.json").write_text(json.dumps(report, default=encode, indent=1))
    (args.out / "results.md").write_text("\n".join(md))
    print(f"results in {args.out}/ (results.json, results.md, rows_per_s.png)")


def check_targets(report: dict[str, Any]) -> list[dict[str, str]]:
    def find(scenario: str, approach: str) -> Result | None:
        for r in report["scenarios"]:
            if r.scenario == scenario and r.approach == approach:
                return r
        return None

    out = []
    for scenario, limit in (("latency-bound", 1.05), ("high-concurrency", 1.3)):
        r = find(scenario, "pandas_async")
        if r is not None:
            ratio = r.wall_over_ideal
            out.append({
                "target": f"{scenario}: pandas_async wall <= {limit}x ideal",
                "measured": "n/a" if ratio is None else f"{ratio:.3f}x ({r.wall_text} s)",
                "met": "yes" if ratio is not None and ratio <= limit else "NO",
            })  # fmt: skip
    pa, ah = find("cpu-bound", "pandas_async"), find("cpu-bound", "aiohttp")
    if pa is not None and ah is not None and pa.rows_per_s and ah.rows_per_s:
        out.append({
            "target": "cpu-bound: pandas_async rows/s >= aiohttp recipe",
            "measured": f"{pa.rows_per_s:,.0f} vs {ah.rows_per_s:,.0f} rows/s "
            f"({pa.rows_per_s / ah.rows_per_s:.2f}x)",
            "met": "yes" if pa.rows_per_s >= ah.rows_per_s else "NO",
        })  # fmt: skip
    frames = report.get("frames")
    if frames and "ratio" in frames:
        out.append({
            "target": "frame building: assemble <= 1.5x json_normalize",
            "measured": f"{frames['ratio']:.2f}x ({frames['rows']:,} answers)",
            "met": "yes" if frames["ratio"] <= 1.5 else "NO",
        })  # fmt: skip
    dd = report.get("dedupe")
    if dd is not None:
        n = dd.server_requests
        out.append({
            "target": "dedupe: 100,000 rows / 1,000 keys -> about 1,000 requests",
            "measured": f"{n} requests at the server",
            "met": "yes" if n is not None and n <= 1010 else "NO",
        })  # fmt: skip
    return out


if __name__ == "__main__":
    main()
