"""to_parquet against fetch + DataFrame.to_parquet: peak memory and rows/s (issue 13).

    python benchmarks/bench_sink.py              # 100,000 rows, about 3 minutes on 2 cores
    python benchmarks/bench_sink.py --rows 20000 # quicker

Each approach runs in a fresh child process (so its peak RSS, from ``resource.getrusage``, is its
own) against ``benchmarks/server.py`` in another process (``/users/{id}``, ~300-byte answers
with nested keys, flattened to 14 columns), with no added latency: the numbers are the client's
cost. The approaches, side by side in one run:

- ``to_parquet``: ``df.aapi.to_parquet(folder, url)`` (batches of 10,000, the default);
- ``fetch + to_parquet``: ``df.aapi.fetch(url).to_parquet(file)``, everything held until the end;
- the same with 10,000 rows: the issue's memory target for the first line.

Writes ``benchmarks/results/sink.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import shutil
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
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    check = len(pd.read_parquet(out, columns=["user_id"]))
    print(json.dumps({"seconds": seconds, "peak_rss": peak, "rows_read_back": check}))
    """
)


def start_server() -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen(
        [sys.executable, str(HERE / "server.py"), "--latency-ms", "0"],
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
    out.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, mode, url, str(rows), str(out)],
        capture_output=True, text=True, check=True, env={"PYTHONPATH": str(ROOT), "PATH": ""},
    )  # fmt: skip
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["rows_read_back"] == rows, result
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--reference", type=int, default=10_000, help="rows of the memory target")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "sink.json")
    args = parser.parse_args()
    server, url = start_server()
    work = Path(tempfile.mkdtemp(prefix="bench-sink-"))
    try:
        cases = [
            ("to_parquet", "sink", args.rows),
            ("fetch + DataFrame.to_parquet", "fetch", args.rows),
            (f"fetch + DataFrame.to_parquet, {args.reference:,} rows", "fetch", args.reference),
        ]
        results = {}
        for name, mode, rows in cases:
            r = run(mode, url, rows, work)
            results[name] = {"rows": rows, **r, "rows_per_s": rows / r["seconds"]}
            print(f"{name}: {r['seconds']:.1f} s, peak {r['peak_rss'] / 2**20:.0f} MiB", flush=True)
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)
    sink, held, ref = results.values()
    print()
    print("| approach | rows | seconds | rows/s | peak RSS (MiB) |")
    print("|---|---:|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['rows']:,} | {r['seconds']:.1f} | {r['rows_per_s']:,.0f} | "
              f"{r['peak_rss'] / 2**20:,.0f} |")  # fmt: skip
    ratio = sink["peak_rss"] / ref["peak_rss"]
    print(f"\nto_parquet peak RSS / {args.reference:,} rows held: {ratio:.2f} (target <= 1.00)")
    print(f"to_parquet peak RSS / fetch of all rows: {sink['peak_rss'] / held['peak_rss']:.2f}")
    print(f"to_parquet rows/s / fetch + to_parquet rows/s: "
          f"{sink['rows_per_s'] / held['rows_per_s']:.2f}")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0 if ratio <= 1.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
