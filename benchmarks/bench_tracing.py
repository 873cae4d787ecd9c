"""What tracing costs: CPU per request without OpenTelemetry, with its API only, with the SDK.

    python benchmarks/bench_tracing.py              # 3 interleaved rounds, about a minute
    python benchmarks/bench_tracing.py --rounds 1 --rows 5000

Every run is a fresh subprocess fetching N rows (concurrency 50, 0 ms) from
``benchmarks/server.py`` in another process, and reports its own CPU per request:

``absent``    OpenTelemetry blocked from import, as if it were not installed.
``api``       the program imported ``opentelemetry.trace`` (the API, no SDK, no provider set):
              what a user with OpenTelemetry installed but not configured pays.
``sdk``       an SDK ``TracerProvider`` with a span processor that drops every span: the cost
              of tracing on (one call span and a CLIENT span per request), export excluded.

Each run also times, in-process, what a call pays to decide whether to trace (the only code
that differs between ``absent`` and ``api``: per request, both run the same plain timeline).

Rounds interleave the variants; ratios to ``absent`` are taken within a round.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from bench import Server  # noqa: E402  (benchmarks/ is not a package)

VARIANTS = ("absent", "api", "sdk")


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    variant, base, rows = spec["variant"], spec["base"], spec["rows"]
    if variant == "absent":
        import importlib.abc

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
                if name.split(".")[0] == "opentelemetry":
                    raise ModuleNotFoundError(f"No module named {name!r}")
                return None

        sys.meta_path.insert(0, Block())
    elif variant == "api":
        import opentelemetry.trace  # noqa: F401
    elif variant == "sdk":
        from opentelemetry import trace
        from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

        provider = TracerProvider()
        provider.add_span_processor(SpanProcessor())  # the base class: drops every span
        trace.set_tracer_provider(provider)
    import numpy as np
    import pandas as pd

    import pandas_async

    url = base + "/users/{user_id}"
    pd.DataFrame({"user_id": [1]}).aapi.fetch(url, progress=False)  # warm-up
    df = pd.DataFrame({"user_id": np.arange(rows)})
    cpu0, t0 = _cpu(), time.perf_counter()
    out = df.aapi.fetch(url, concurrency=50, progress=False)
    cpu, wall = _cpu() - cpu0, time.perf_counter() - t0
    report = pandas_async.last_report()
    assert report is not None and len(out) == rows
    loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
    # What a call pays to decide whether to trace: the only code that differs between the
    # variants when no span is recorded (per request, the same plain timeline runs).
    from pandas_async._tracing import call_timeline, capture_parent

    n = 20_000
    t0 = time.perf_counter()
    for _ in range(n):
        timeline = call_timeline(
            caller="fetch", method="GET", template="/users/{user_id}", rows=1,
            parent=capture_parent(),
        )  # fmt: skip
        timeline.finish(0)
    per_call = (time.perf_counter() - t0) / n * 1e6
    return {
        "cpu": cpu,
        "wall": wall,
        "requests": report.requests,
        "otel_modules": len(loaded),
        "timeline": type(timeline).__name__,
        "per_call_us": per_call,
    }


def run(spec: dict[str, Any]) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{spec}: {proc.stderr.strip()[-800:]}")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="CPU per request with and without tracing.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "tracing.json")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    runs: list[dict[str, Any]] = []
    with Server(0) as server:
        for rnd in range(1, args.rounds + 1):
            for variant in VARIANTS:
                out = run({"variant": variant, "base": server.base, "rows": args.rows})
                out.update(variant=variant, round=rnd, us=out["cpu"] / out["requests"] * 1e6)
                runs.append(out)
                print(
                    f"round {rnd} {variant:<7} cpu {out['cpu']:6.2f} s  wall {out['wall']:6.2f} s"
                    f"  {out['us']:6.1f} µs/request  opentelemetry modules {out['otel_modules']}"
                    f"  {out['timeline']}: {out['per_call_us']:.1f} µs per call to decide",
                    flush=True,
                )
    lines = [f"{args.rows:,} rows, concurrency 50, 0 ms; CPU µs per request (min-max):"]
    for variant in VARIANTS:
        us = [r["us"] for r in runs if r["variant"] == variant]
        ratios = [
            r["us"] / next(a["us"] for a in runs if a["variant"] == "absent" and a["round"] == rnd)
            for rnd in range(1, args.rounds + 1)
            for r in runs
            if r["variant"] == variant and r["round"] == rnd
        ]
        per_call = [r["per_call_us"] for r in runs if r["variant"] == variant]
        lines.append(
            f"  {variant:<7} {min(us):6.1f}-{max(us):6.1f}  "
            f"ratio to absent {min(ratios):.3f}-{max(ratios):.3f} "
            f"(median {statistics.median(ratios):.3f}); "
            f"per call, deciding whether to trace: {min(per_call):.1f}-{max(per_call):.1f} µs"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"runs": runs, "summary": lines}, indent=2))
    print()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
