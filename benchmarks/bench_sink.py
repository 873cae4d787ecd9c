"""to_parquet against fetch + DataFrame.to_parquet: peak memory and rows/s, in interleaved rounds.

    python benchmarks/bench_sink.py                          # 100,000 rows, 3 rounds: ~6 min
    python benchmarks/bench_sink.py --rows 20000 --rounds 2  # quicker

Each run is a fresh child process (so its peak RSS, from ``resource.getrusage``, is its own)
against ``benchmarks/server.py`` in another process (``/users/{id}``, ~300-byte answers with
nested keys, flattened to 14 columns), with no added latency: the numbers are the client's cost.
Each round runs, one after the other:

- ``to_parquet``: ``df.aapi.to_parquet(folder, url)`` (batches of 10,000, the default);
- ``fetch + to_parquet``: ``df.aapi.fetch(url).to_parquet(file)``, everything held until the end;
- the same with 10,000 rows: the issue's memory target for the first line.

The machine is shared and its load changes from minute to minute, so the two ratios (peak RSS
against the 10,000-row run; rows/s against fetch + to_parquet) are taken within each round, and
the rounds alternate which of the two 100,000-row runs goes first. CPU seconds (user + system,
all threads) are reported too: unlike wall time, they hardly depend on what else the machine runs.

Writes ``benchmarks/results/sink.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    import numpy as np, pandas as pd
    import pandas_async
    mode, url, rows, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    frame = pd.DataFrame({"user_id": np.arange(1, rows + 1)})
    started = time.perf_counter()
    if mode == "sink":
        frame.aapi.to_parquet(out, url + "/users/{user_id}", concurrency=50, progress=False)
    else:
        frame.aapi.fetch(url + "/users/{user_id}", concurrency=50, progress=False).to_parquet(out)
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak = usage.ru_maxrss * 1024  # KiB on Linux
    cpu = usage.ru_utime + usage.ru_stime  # imports included: the same in every run
    check = len(pd.read_parquet(out, columns=["user_id"]))
    print(json.dumps({"seconds": seconds, "cpu": cpu, "peak_rss": peak, "rows_read_back": check}))
    """
)


def start_server(ids: int) -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen(  # every answer encoded before READY: the first run pays no more
        [sys.executable, str(HERE / "server.py"), "--latency-ms", "0", "--warm-ids", str(ids)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert server.stdout is not None
    line = server.stdout.readline().split()
    if not line or line[0] != "READY":
        server.kill()
        raise SystemExit("the benchmark server did not start")
    return server, f"http://127.0.0.1:{line[1]}"


def run(mode: str, url: str, rows: int, work: Path) -> dict[str, float]:
    out = work / f"{mode}-{rows}" / ("" if mode == "sink" else "all.parquet")
    shutil.rmtree(out.parent, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, mode, url, str(rows), str(out)],
        capture_output=True, text=True, check=True, env={"PYTHONPATH": str(ROOT), "PATH": ""},
    )  # fmt: skip
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["rows_read_back"] == rows, result
    return {**result, "rows": rows, "rows_per_s": rows / result["seconds"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--reference", type=int, default=10_000, help="rows of the memory target")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "sink.json")
    args = parser.parse_args()
    names = {
        "sink": "to_parquet",
        "held": "fetch + DataFrame.to_parquet",
        "ref": f"fetch + DataFrame.to_parquet, {args.reference:,} rows",
    }
    modes = {"sink": "sink", "held": "fetch"}
    server, url = start_server(max(args.rows, args.reference) + 1)
    work = Path(tempfile.mkdtemp(prefix="bench-sink-"))
    rounds: list[dict[str, dict[str, float]]] = []
    try:
        for k in range(args.rounds):
            order = ["sink", "held"] if k % 2 == 0 else ["held", "sink"]
            runs = {case: run(modes[case], url, args.rows, work) for case in order}
            runs["ref"] = run("fetch", url, args.reference, work)
            rounds.append(runs)
            print(
                f"round {k + 1}: "
                + ", ".join(
                    f"{names[c]} {r['seconds']:.1f} s, {r['peak_rss'] / 2**20:.0f} MiB"
                    for c, r in runs.items()
                ),
                flush=True,
            )
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)

    memory = [r["sink"]["peak_rss"] / r["ref"]["peak_rss"] for r in rounds]
    speed = [r["sink"]["rows_per_s"] / r["held"]["rows_per_s"] for r in rounds]
    cpu = [r["sink"]["cpu"] / r["held"]["cpu"] for r in rounds]

    def spread(values: list[float]) -> str:
        return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"

    print()
    print("| approach | rows | seconds | rows/s | CPU s | peak RSS (MiB) |")
    print("|---|---:|---:|---:|---:|---:|")
    for case, name in names.items():
        rs = [r[case] for r in rounds]
        print(
            f"| {name} | {rs[0]['rows']:,} | {spread([r['seconds'] for r in rs])} | "
            f"{statistics.median(r['rows_per_s'] for r in rs):,.0f} | "
            f"{statistics.median(r['cpu'] for r in rs):.1f} | "
            f"{spread([r['peak_rss'] / 2**20 for r in rs])} |"
        )
    print(f"\nper round: to_parquet peak RSS / {args.reference:,} rows held: {spread(memory)}"
          " (target <= 1.00)")  # fmt: skip
    print(f"per round: to_parquet rows/s / fetch + to_parquet rows/s: {spread(speed)}"
          " (target >= 0.90)")  # fmt: skip
    print(f"per round: to_parquet CPU / fetch + to_parquet CPU: {spread(cpu)}")
    summary = {
        "rows": args.rows,
        "reference_rows": args.reference,
        "rounds": args.rounds,
        "peak_rss_ratio": memory,
        "rows_per_s_ratio": speed,
        "cpu_ratio": cpu,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {"summary": summary, "rounds": [{names[c]: r for c, r in x.items()} for x in rounds]},
            indent=2,
        )
        + "\n"
    )
    return 0 if max(memory) <= 1.0 and statistics.median(speed) >= 0.9 else 1


if __name__ == "__main__":
    raise SystemExit(main())
