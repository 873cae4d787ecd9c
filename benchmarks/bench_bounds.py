"""What bounding answers costs, and what it saves (issue 11).

    python benchmarks/bench_bounds.py              # 3 interleaved rounds, about 2 minutes
    python benchmarks/bench_bounds.py --rounds 1

Two measurements, each job in a fresh subprocess (its CPU and peak RSS are its own):

``cpu``     5,000 rows, concurrency 50, 0 ms, against ``benchmarks/server.py``: CPU per request
            with the default ``max_bytes`` (bodies read in pieces and counted) against
            ``max_bytes=None`` (aiohttp's plain ``read()``). Rounds interleave the two; the ratio
            is taken within a round.
``memory``  under a 4 GiB address-space limit, ten 1 GiB gzip bombs (1 MB each on the wire) and
            two 500 MB answers at concurrency 10, from ``tests/raw_server.py``, with the default
            ``max_bytes``: peak RSS, through the default sender and through an
            ``httpx.AsyncClient``. Without a limit the same job would need ~20 GB.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.raw_server import RawServer  # noqa: E402  (the repository root is on the path now)

CPU_JOB = """
import resource, sys
import pandas as pd, pandas_async
url, mode = sys.argv[1], sys.argv[2]
opts = {} if mode == "capped" else {"max_bytes": None}
df = pd.DataFrame({"user_id": range(1, 5001)})
df.head(50).aapi.fetch(url + "/users/{user_id}", progress=False, **opts)  # warm-up
before = resource.getrusage(resource.RUSAGE_SELF)
df.aapi.fetch(url + "/users/{user_id}", concurrency=50, dedupe=False, progress=False, **opts)
after = resource.getrusage(resource.RUSAGE_SELF)
cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
print(cpu / len(df) * 1e6)
"""

MEMORY_JOB = """
import asyncio, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
import httpx
import pandas as pd, pandas_async
url, sender = sys.argv[1], sys.argv[2]
urls = [url + "/bomb?size=%d" % (1 << 30)] * 10 + [url + "/big?size=%d" % (500 << 20)] * 2
df = pd.DataFrame({"url": urls})
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
opts = dict(errors="collect", concurrency=10, dedupe=False, progress=False)
if sender == "default":
    out = df.aapi.fetch("url", **opts)
else:
    async def main():
        async with httpx.AsyncClient() as client:
            return await df.aapi.afetch("url", client=client, **opts)
    out = asyncio.run(main())
causes = sorted(set(out["_error"].str.split(":").str[0]))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(base // 1024, peak // 1024, "|".join(causes))
"""


def run(code: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True, text=True, cwd=ROOT, timeout=600, check=False,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    return result.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds

    server = subprocess.Popen(
        [sys.executable, str(ROOT / "benchmarks" / "server.py"), "--latency-ms", "0"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline().split()[1])
        url = f"http://127.0.0.1:{port}"
        cpu: dict[str, list[float]] = {"capped": [], "none": []}
        for _ in range(rounds):
            for mode in cpu:
                cpu[mode].append(float(run(CPU_JOB, url, mode)))
    finally:
        server.terminate()
        server.wait()
    ratios = [a / b for a, b in zip(cpu["capped"], cpu["none"], strict=True)]
    print("CPU per request, 5,000 rows, concurrency 50, 0 ms (µs; median of rounds)")
    print(f"  max_bytes=128 MiB (default)  {statistics.median(cpu['capped']):7.0f}")
    print(f"  max_bytes=None               {statistics.median(cpu['none']):7.0f}")
    print(f"  ratio (per round, median)    {statistics.median(ratios):7.3f}")

    print("Peak RSS under RLIMIT_AS=4 GiB: 10 x 1 GiB gzip bombs + 2 x 500 MB, concurrency 10")
    with RawServer() as raw:
        for sender in ("default", "httpx"):
            base, peak, causes = run(MEMORY_JOB, raw.url, sender).split(maxsplit=2)
            print(f"  {sender:8} base {base:>5} MB  peak {peak:>5} MB  rows failed as: {causes}")


if __name__ == "__main__":
    main()
