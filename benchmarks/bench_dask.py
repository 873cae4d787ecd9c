"""The Dask path against the pandas call, and what the cluster-wide limits cost.

    python benchmarks/bench_dask.py                 # 100,000 rows, C=100, 50 ms (~4 minutes)
    python benchmarks/bench_dask.py --rows 20000    # a shorter run

Against ``benchmarks/server.py`` (a loopback JSON API in its own process, ``--latency-ms``):

1. ``pandas``: ``df.aapi.fetch(url, concurrency=C)`` in this one process.
2. ``dask``: the same rows as a dask frame of ``--partitions`` partitions on a
   ``LocalCluster(processes=True, n_workers=2, threads_per_worker=2)``:
   ``ddf.aapi.fetch(url, concurrency=C)`` (which fetches, the results staying on the workers),
   then ``.compute()`` to bring the frame here, as the pandas call returns it.
3. The limits' own cost: the round trip of one lease (``distributed.Semaphore`` acquire and
   release, from a worker task) and that cost per request, with a lease per partition (what we
   do) and with a lease per request (what we chose not to do).
4. ``rate``: ``--rate-rows`` rows at ``--rate`` (and ``--rate-concurrency``), pandas and dask:
   the rate achieved against the rate asked, which shows the hand-over wait of the leases.

Prints a markdown table; ``--json PATH`` also writes every number.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench import Server  # noqa: E402  (benchmarks/bench.py: the server in a subprocess)


def lease_round_trips(name: str, n: int) -> float:
    """Mean seconds of one acquire + release of a 4-lease semaphore, from a worker task."""
    import distributed

    semaphore = distributed.Semaphore(max_leases=4, name=name)
    semaphore.acquire()
    semaphore.release()  # registered: not part of the timing
    started = time.perf_counter()
    for _ in range(n):
        semaphore.acquire()
        semaphore.release()
    return (time.perf_counter() - started) / n


def timed(fn: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--rate-rows", type=int, default=20_000)
    parser.add_argument("--rate", default="2000/s")
    parser.add_argument("--rate-concurrency", type=int, default=200)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    import dask.dataframe as dd
    import distributed

    import pandas_async.dask  # noqa: F401  (registers .aapi on dask frames)
    from pandas_async._dask_leases import LeasePlan
    from pandas_async._options import Rate

    out: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    frame = pd.DataFrame({"user_id": range(1, args.rows + 1)})
    rate_frame = frame.iloc[: args.rate_rows]
    with Server(args.latency_ms) as server:
        url = server.base + "/users/{user_id}"
        c = args.concurrency
        ideal = args.rows / c * args.latency_ms / 1000

        wall, result = timed(lambda: frame.aapi.fetch(url, concurrency=c, progress=False))
        out["pandas"] = {"wall": wall, "rows": len(result), "requests": server.stats()["requests"]}
        server.reset()

        started = time.perf_counter()
        with (
            distributed.LocalCluster(
                processes=True, n_workers=2, threads_per_worker=2, dashboard_address=":0"
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            startup = time.perf_counter() - started
            ddf = dd.from_pandas(frame, npartitions=args.partitions)
            plan = LeasePlan.split(
                concurrency=c, rate=None, burst=None, partitions=args.partitions, threads=4
            )
            fetch_wall, lazy = timed(lambda: ddf.aapi.fetch(url, concurrency=c))
            compute_wall, result = timed(lazy.compute)
            out["dask"] = {
                "cluster_startup": startup,
                "fetch": fetch_wall,
                "compute": compute_wall,
                "wall": fetch_wall + compute_wall,
                "rows": len(result),
                "requests": server.stats()["requests"],
                "leases": plan.leases,
                "concurrency_per_lease": plan.concurrency,
            }
            del lazy, result
            server.reset()

            rtt = client.submit(
                lease_round_trips, f"bench-{uuid.uuid4().hex}", 200, pure=False
            ).result()
            out["lease"] = {
                "round_trip": rtt,
                "per_request_lease_per_partition": rtt * args.partitions / args.rows,
                "per_request_lease_per_request": rtt,
            }

            rate = Rate.parse(args.rate)
            asked = rate.limit / rate.period
            rc = args.rate_concurrency
            dwall, _ = timed(
                lambda: (
                    dd.from_pandas(rate_frame, npartitions=args.partitions)
                    .aapi.fetch(url, concurrency=rc, rate=args.rate)
                    .compute()
                )
            )
            server.reset()
        pwall, _ = timed(
            lambda: rate_frame.aapi.fetch(url, concurrency=rc, rate=args.rate, progress=False)
        )
        n = len(rate_frame)
        out["rate"] = {
            "asked": asked,
            "pandas_wall": pwall,
            "pandas_achieved": n / pwall,
            "dask_wall": dwall,
            "dask_achieved": n / dwall,
        }

    p, d, lease, r = out["pandas"], out["dask"], out["lease"], out["rate"]
    print(f"\n{args.rows:,} rows, C={c}, {args.latency_ms:g} ms latency (ideal {ideal:.1f} s)\n")
    print("| run | wall (s) | vs ideal | rows/s |")
    print("|---|---:|---:|---:|")
    print(f"| pandas, one process | {p['wall']:.1f} | {p['wall'] / ideal:.2f}x "
          f"| {args.rows / p['wall']:,.0f} |")  # fmt: skip
    print(f"| dask, 2 worker processes x 2 threads, {args.partitions} partitions "
          f"({d['leases']} leases of C={d['concurrency_per_lease']}): fetch + compute "
          f"| {d['wall']:.1f} ({d['fetch']:.1f} + {d['compute']:.1f}) "
          f"| {d['wall'] / ideal:.2f}x | {args.rows / d['wall']:,.0f} |")  # fmt: skip
    print(f"\nCluster start-up (not in the wall): {d['cluster_startup']:.1f} s. "
          f"dask / pandas wall: {d['wall'] / p['wall']:.2f}x.")  # fmt: skip
    print("Lease round trip (acquire + release from a worker task): "
          f"{lease['round_trip'] * 1e3:.2f} ms; per request: "
          f"{lease['per_request_lease_per_partition'] * 1e6:.2f} µs with a lease "
          f"per partition, {lease['per_request_lease_per_request'] * 1e6:.0f} µs with a lease per "
          "request.")  # fmt: skip
    print(f"\nrate={args.rate}, {args.rate_rows:,} rows, C={args.rate_concurrency}: "
          f"pandas {r['pandas_wall']:.1f} s ({r['pandas_achieved'] / r['asked']:.2f}x of the "
          f"rate), dask {r['dask_wall']:.1f} s "
          f"({r['dask_achieved'] / r['asked']:.2f}x)")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
