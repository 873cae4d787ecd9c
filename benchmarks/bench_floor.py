"""How close pandas_async is to the floor: per-request, per-page and per-call CPU (issue 16).

    python benchmarks/bench_floor.py              # 3 interleaved rounds, 10-20 minutes
    python benchmarks/bench_floor.py --rounds 1   # one round

Every job runs in a fresh subprocess (its CPU and peak RSS are its own) against
``benchmarks/server.py`` in another process. Rounds interleave the approaches, and ratios are
taken within a round, so a noisy neighbour slows both sides of a ratio alike.

Jobs and their references:

``requests``  N rows (5,000 and 50,000), concurrency 50, 0 ms: one GET per row.
              ``floor``: the fastest plain aiohttp client we know, no pandas at all: one
              session, ``concurrency`` worker coroutines pulling ids from one iterator,
              ``orjson.loads(await resp.read())``, answers kept in a list.
              ``pandas_async``: ``df.aapi.fetch(url, concurrency=50)`` (answers flattened and
              joined, which the floor does not do).
``pages``     200 rows x 10 pages of 10 records, concurrency 50, 0 ms.
              ``recipe``: aiohttp, a semaphore, a page loop per row until an empty page,
              ``json_normalize`` of all records, the row's columns repeated.
              ``pandas_async``: ``paginate=PageNumber("page", size_param="size", size=10)``.
``call``      the fixed CPU cost of one call: 40 calls of one row each in one process
              (after one warm-up call), CPU per call.
              ``recipe``: a new aiohttp session per call, one GET, ``json_normalize``, join.
``wide``      20,000 rows, concurrency 1,000, 200 ms: wall over the ideal
              ``ceil(N / C) x latency``, pandas_async against the floor.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench import Server  # noqa: E402  (benchmarks/ is not a package)


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


# --------------------------------------------------------------------------------------------
# Worker side: one job in a fresh process; prints one JSON line.
# --------------------------------------------------------------------------------------------


def _floor_requests(base: str, rows: int, c: int) -> int:
    import asyncio

    import aiohttp
    import orjson

    async def main() -> list[Any]:
        ids = iter(range(rows))
        answers: list[Any] = [None] * rows
        connector = aiohttp.TCPConnector(limit=c)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def worker() -> None:
                for i in ids:
                    async with session.get(f"{base}/users/{i}") as resp:
                        answers[i] = orjson.loads(await resp.read())

            await asyncio.gather(*(worker() for _ in range(c)))
        return answers

    return len(asyncio.run(main()))


def _pandas_async_requests(base: str, rows: int, c: int) -> int:
    import numpy as np
    import pandas as pd

    import pandas_async  # noqa: F401

    df = pd.DataFrame({"user_id": np.arange(rows)})
    out = df.aapi.fetch(base + "/users/{user_id}", concurrency=c, progress=False)
    return len(out)


def _recipe_pages(base: str, rows: int, c: int) -> int:
    import asyncio

    import aiohttp
    import numpy as np
    import orjson
    import pandas as pd

    df = pd.DataFrame({"key": [f"k{i}" for i in range(rows)]})

    async def main() -> list[list[Any]]:
        sem = asyncio.Semaphore(c)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=c)) as session:

            async def one(key: str) -> list[Any]:
                records: list[Any] = []
                page = 1
                while True:
                    async with (
                        sem,
                        session.get(
                            f"{base}/pages/{key}", params={"page": page, "size": 10, "n": 100}
                        ) as resp,
                    ):
                        items = orjson.loads(await resp.read())
                    if not items:
                        return records
                    records.extend(items)
                    if len(items) < 10:
                        return records
                    page += 1

            return await asyncio.gather(*(one(k) for k in df["key"].tolist()))

    per_row = asyncio.run(main())
    counts = np.array([len(r) for r in per_row])
    new = pd.json_normalize([rec for recs in per_row for rec in recs])
    base_rows = df.loc[df.index.repeat(counts)]
    new.index = base_rows.index
    return len(base_rows.join(new))


def _pandas_async_pages(base: str, rows: int, c: int) -> int:
    import pandas as pd

    import pandas_async

    df = pd.DataFrame({"key": [f"k{i}" for i in range(rows)]})
    out = df.aapi.fetch(
        base + "/pages/{key}",
        params={"n": 100},
        paginate=pandas_async.PageNumber("page", size_param="size", size=10),
        concurrency=c,
        progress=False,
    )
    return len(out)


def _recipe_call(base: str) -> None:
    import asyncio

    import aiohttp
    import pandas as pd

    df = pd.DataFrame({"user_id": [7]})

    async def main() -> Any:
        async with aiohttp.ClientSession() as session, session.get(f"{base}/users/7") as r:
            return await r.json()

    new = pd.json_normalize([asyncio.run(main())])
    new.index = df.index
    df.join(new)


def _pandas_async_call(base: str) -> None:
    import pandas as pd

    import pandas_async  # noqa: F401

    pd.DataFrame({"user_id": [7]}).aapi.fetch(base + "/users/{user_id}", progress=False)


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    job, approach, base = spec["job"], spec["approach"], spec["base"]
    rows, c = spec.get("rows", 0), spec.get("concurrency", 50)
    import aiohttp  # noqa: F401  (imports are not timed)
    import orjson  # noqa: F401
    import pandas  # noqa: F401

    if approach == "pandas_async":
        import pandas_async  # noqa: F401
    if job == "call":
        one = _pandas_async_call if approach == "pandas_async" else _recipe_call
        one(base)  # warm-up: first-use costs (imports inside libraries) are not per call
        calls = spec.get("calls", 40)
        cpu0, t0 = _cpu(), time.perf_counter()
        for _ in range(calls):
            one(base)
        cpu, wall = _cpu() - cpu0, time.perf_counter() - t0
        return {"cpu": cpu, "wall": wall, "units": calls}
    fn = {
        ("requests", "floor"): _floor_requests,
        ("requests", "pandas_async"): _pandas_async_requests,
        ("wide", "floor"): _floor_requests,
        ("wide", "pandas_async"): _pandas_async_requests,
        ("pages", "recipe"): _recipe_pages,
        ("pages", "pandas_async"): _pandas_async_pages,
    }[(job, approach)]
    cpu0, t0 = _cpu(), time.perf_counter()
    n = fn(base, rows, c)
    cpu, wall = _cpu() - cpu0, time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"cpu": cpu, "wall": wall, "out_rows": n, "peak_rss_mb": rss}


# --------------------------------------------------------------------------------------------
# Driver side.
# --------------------------------------------------------------------------------------------


def run(spec: dict[str, Any], server: Server) -> dict[str, Any]:
    import subprocess

    server.reset()
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"{spec}: {proc.stderr.strip()[-800:]}")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    out["server_requests"] = server.stats()["requests"]
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="pandas_async against the floor (issue 16).")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="requests,pages,call,wide")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "floor.json")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    only = set(args.only.split(","))
    rows: list[dict[str, Any]] = []

    def record(job: str, label: str, spec: dict[str, Any], server: Server, rnd: int) -> None:
        out = run({**spec, "job": job, "base": server.base}, server)
        out.update(job=job, label=label, round=rnd, approach=spec["approach"])
        rows.append(out)
        print(
            f"round {rnd} {label:<28} {spec['approach']:<13} wall {out['wall']:7.2f} s"
            f"  cpu {out['cpu']:7.2f} s  server reqs {out['server_requests']}",
            flush=True,
        )

    for rnd in range(1, args.rounds + 1):
        # Which approach goes first alternates by round, and the per-request and wide jobs run
        # A B B A within a round (a machine whose load drifts slows both alike); the server has
        # every body encoded before the round starts, so neither pays for the first use of an id.
        order: tuple[str, ...] = ("floor", "pandas_async") if rnd % 2 else ("pandas_async", "floor")
        with Server(0, warm_ids=50_000) as server:
            if "requests" in only:
                for n in (5_000, 50_000):
                    for approach in (*order, *reversed(order)):  # A B B A: drift cancels
                        spec = {"approach": approach, "rows": n, "concurrency": 50}
                        record("requests", f"{n:,} rows C=50 0 ms", spec, server, rnd)
            if "pages" in only:
                for approach in ("recipe", "pandas_async"):
                    spec = {"approach": approach, "rows": 200, "concurrency": 50}
                    record("pages", "200 rows x 10 pages", spec, server, rnd)
            if "call" in only:
                for approach in ("recipe", "pandas_async"):
                    record("call", "one call, one row", {"approach": approach}, server, rnd)
        if "wide" in only:
            with Server(200, warm_ids=20_000) as server:
                for approach in (*order, *reversed(order)):
                    spec = {"approach": approach, "rows": 20_000, "concurrency": 1_000}
                    record("wide", "20,000 rows C=1,000 200 ms", spec, server, rnd)

    summary = summarize(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"runs": rows, "summary": summary}, indent=2))
    print()
    for line in summary:
        print(line)


def summarize(rows: list[dict[str, Any]]) -> list[str]:
    """One line per job: the per-unit figures and the ratio, per round (min-max over rounds)."""
    lines = []
    by: dict[tuple[str, str, int], dict[str, dict[str, Any]]] = {}
    for r in rows:
        runs = by.setdefault((r["job"], r["label"], r["round"]), {})
        kept = runs.get(r["approach"])
        if kept is None:
            runs[r["approach"]] = {**r, "n": 1}
        else:  # the second run of an A B B A round: the two add up
            for key in ("cpu", "wall", "server_requests", "peak_rss_mb"):
                kept[key] += r[key]
            kept["n"] += 1
    labels = sorted({(job, label) for job, label, _ in by}, key=lambda x: x[1])
    for job, label in labels:
        rounds = [v for (j, lab, _), v in sorted(by.items()) if (j, lab) == (job, label)]
        ours = [v["pandas_async"] for v in rounds]
        ref_name = "floor" if job in ("requests", "wide") else "recipe"
        refs = [v[ref_name] for v in rounds]
        if job == "wide":
            ideal = 20_000 / 1_000 * 0.2
            a = [o["wall"] / o["n"] / ideal for o in ours]
            b = [r["wall"] / r["n"] / ideal for r in refs]
            unit = "wall / ideal"
        else:
            per = {"requests": "server_requests", "pages": "server_requests", "call": "units"}
            scale = 1e3 if job == "call" else 1e6
            a = [o["cpu"] / o[per[job]] * scale for o in ours]
            b = [r["cpu"] / r[per[job]] * scale for r in refs]
            unit = (
                "CPU ms/call"
                if job == "call"
                else "CPU µs/" + ("page" if job == "pages" else "request")
            )
        ratios = [x / y for x, y in zip(a, b, strict=True)]
        if job == "requests" and label.startswith("50,000"):
            lines.append(_memory_line(by))
        lines.append(
            f"{label}: {unit} pandas_async {_span(a)}, {ref_name} {_span(b)}; "
            f"ratio {_span(ratios, '.2f')} (median {statistics.median(ratios):.2f})"
        )
    return lines


def _memory_line(by: dict[tuple[str, str, int], dict[str, dict[str, Any]]]) -> str:
    """Peak RSS per row: the growth from 5,000 to 50,000 rows, over the 45,000 rows between."""
    per: dict[str, list[float]] = {"pandas_async": [], "floor": []}
    for (job, label, rnd), runs in by.items():
        if job == "requests" and label.startswith("50,000"):
            small = by.get((job, label.replace("50,000", "5,000"), rnd), {})
            for approach in per:
                if approach in runs and approach in small:
                    big_run, small_run = runs[approach], small[approach]
                    grown = (
                        big_run["peak_rss_mb"] / big_run["n"]
                        - small_run["peak_rss_mb"] / small_run["n"]
                    )
                    per[approach].append(grown * 1024 / 45_000)
    if not per["floor"]:
        return "peak RSS per row: not measured"
    return (
        f"peak RSS per row (5,000 -> 50,000 rows): pandas_async {_span(per['pandas_async'])} KB, "
        f"floor {_span(per['floor'])} KB"
    )


def _span(values: list[float], spec: str = ".1f") -> str:
    lo, hi = format(min(values), spec), format(max(values), spec)
    return lo if lo == hi else f"{lo}-{hi}"


if __name__ == "__main__":
    main()
