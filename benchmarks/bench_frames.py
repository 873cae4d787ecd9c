"""Turning answers into the frame: ``assemble`` against one ``pandas.json_normalize``.

    python benchmarks/bench_frames.py [--rows 100000] [--rounds 5] [--memory-rows 1000000]
                                      [--baseline REF]

Two parts, each in fresh subprocesses, on parsed answers already in memory (no HTTP):

1. Time, interleaved rounds: in each round, for each shape of answer, one ``pd.json_normalize``
   of the answers and one ``pandas_async._frames.assemble`` of them onto an input frame of the
   same length (what ``fetch`` does after the last answer), each timed once; the ratio
   assemble / json_normalize is taken within the round. Shapes: ``nested`` (benchmarks/server.py's
   ~300-byte user: 6 plain keys, a list, objects nested two deep), ``flat`` (3 plain keys),
   ``ragged`` (the nested user with keys left out here and there, as APIs omit nulls: the general,
   record-by-record path), ``rows`` (a list of 5 records per answer, ``how="rows"``).
2. Memory at ``--memory-rows`` small answers (``{"id", "name", "score"}``): peak RSS growth
   while assembling (Linux's VmHWM, reset before), per row, for ``assemble`` and for the recipe
   ``json_normalize`` + ``join``; with ``--baseline REF``, also ``assemble`` as it was at git
   ``REF`` (exported to a temporary folder), which is "today's" figure the target compares with.

Results are printed and written to ``benchmarks/results/frames.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
SHAPES = ("nested", "flat", "ragged", "rows")


def answers(shape: str, n: int) -> list[Any]:
    import orjson
    from server import user_body

    if shape == "flat":
        return [{"id": i, "name": f"User {i}", "score": i / 7} for i in range(n)]
    users = [orjson.loads(user_body(str(i))) for i in range(n)]
    if shape == "ragged":
        for i, user in enumerate(users):
            if i % 3 == 0:
                user.pop("email")
            if i % 5 == 0:
                user["address"].pop("geo")
            if i % 7 == 0:
                user["company"] = None
    if shape == "rows":
        return [users[i : i + 5] for i in range(0, n, 5)]
    return users


def time_worker(spec: dict[str, Any]) -> dict[str, Any]:
    import gc

    import pandas as pd

    from pandas_async._frames import assemble
    from pandas_async._outcome import Outcome

    shape, n = spec["shape"], spec["rows"]
    values = answers(shape, n)
    outcomes = [Outcome(v, 200, None, None, 0.01, 1) for v in values]
    frame = pd.DataFrame({"user_id": range(len(values))})
    records = [r for v in values for r in v] if shape == "rows" else values
    how = "rows" if shape == "rows" else "auto"
    out = {}
    for name, job in [
        ("json_normalize", lambda: pd.json_normalize(records)),
        ("assemble", lambda: assemble(frame, outcomes, how=how)),
    ]:
        gc.collect()
        started = time.perf_counter()
        job()
        out[name] = time.perf_counter() - started
    return out


def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def memory_worker(spec: dict[str, Any]) -> dict[str, Any]:
    import gc

    import pandas as pd

    n = spec["rows"]
    values = answers("flat", n)
    frame = pd.DataFrame({"user_id": range(n)})
    if spec["approach"] == "recipe":

        def job() -> Any:
            new = pd.json_normalize(values)
            new.index = frame.index
            return frame.join(new)
    else:
        from pandas_async._frames import assemble
        from pandas_async._outcome import Outcome

        outcomes = [Outcome(v, 200, None, None, 0.01, 1) for v in values]

        def job() -> Any:
            return assemble(frame, outcomes).frame

    gc.collect()
    before = _rss_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    started = time.perf_counter()
    result = job()
    seconds = time.perf_counter() - started
    peak = _rss_kb("VmHWM")
    assert len(result) == n
    return {
        "peak_growth_kb_per_row": (peak - before) / n,
        "kept_kb_per_row": (_rss_kb("VmRSS") - before) / n,
        "seconds": seconds,
    }


def run(spec: dict[str, Any], pythonpath: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([pythonpath, str(HERE)])}
    done = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec)],
        env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"worker {spec} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def export(ref: str, into: Path) -> Path:
    """The package as it was at git ``ref``, for the baseline's subprocess."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, "pandas_async"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--memory-rows", type=int, default=1_000_000)
    parser.add_argument("--baseline", default=None, help="a git ref to compare memory with")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        spec = json.loads(args.worker)
        worker = memory_worker if spec["part"] == "memory" else time_worker
        print(json.dumps(worker(spec)))
        return

    load_before = os.getloadavg()[0]
    here = str(ROOT)
    rounds: dict[str, list[dict[str, float]]] = {shape: [] for shape in SHAPES}
    for r in range(args.rounds):
        for shape in SHAPES:
            out = run({"part": "time", "shape": shape, "rows": args.rows}, here)
            out["ratio"] = out["assemble"] / out["json_normalize"]
            rounds[shape].append(out)
            print(f"round {r + 1} {shape:<7} json_normalize {out['json_normalize']:.3f} s  "
                  f"assemble {out['assemble']:.3f} s  ratio {out['ratio']:.2f}")  # fmt: skip
    memory: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        approaches = {"assemble": here, "recipe": here}
        if args.baseline:
            approaches[f"assemble@{args.baseline}"] = str(export(args.baseline, Path(tmp)))
        for name, path in approaches.items():
            approach = "recipe" if name == "recipe" else "assemble"
            spec = {"part": "memory", "approach": approach, "rows": args.memory_rows}
            memory[name] = run(spec, path)

    print(f"\n{args.rows:,} answers, {args.rounds} interleaved rounds (ratio within a round)")
    print(f"  {'shape':<8}{'json_normalize s':>18}{'assemble s':>12}{'ratio median':>14}"
          f"{'range':>14}")  # fmt: skip
    summary: dict[str, Any] = {}
    for shape, outs in rounds.items():
        ratios = [o["ratio"] for o in outs]
        summary[shape] = {
            "json_normalize_s": statistics.median(o["json_normalize"] for o in outs),
            "assemble_s": statistics.median(o["assemble"] for o in outs),
            "ratio_median": statistics.median(ratios),
            "ratio_min": min(ratios),
            "ratio_max": max(ratios),
            "rounds": outs,
        }
        s = summary[shape]
        print(f"  {shape:<8}{s['json_normalize_s']:>18.3f}{s['assemble_s']:>12.3f}"
              f"{s['ratio_median']:>14.2f}{min(ratios):>8.2f}-{max(ratios):.2f}")  # fmt: skip
    print(f"\nMemory, {args.memory_rows:,} small answers (3 keys): peak RSS growth, assembling")
    for name, m in memory.items():
        print(f"  {name:<24} {m['peak_growth_kb_per_row']:.2f} KB/row peak, "
              f"{m['kept_kb_per_row']:.2f} KB/row kept, {m['seconds']:.2f} s")  # fmt: skip
    load = (load_before, os.getloadavg()[0])
    print(f"  load average (1 min) before/after: {load[0]:.1f} / {load[1]:.1f} on {os.cpu_count()}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "frames.json").write_text(
        json.dumps(
            {
                "rows": args.rows,
                "rounds": args.rounds,
                "memory_rows": args.memory_rows,
                "machine": platform.platform(),
                "cores": os.cpu_count(),
                "load_average_before_after": load,
                "time": summary,
                "memory": memory,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
