"""What http2=True costs: client CPU per request, HTTP/2 through httpx against the default sender.

    python benchmarks/bench_http2.py              # 3 interleaved rounds, about two minutes
    python benchmarks/bench_http2.py --rounds 1 --rows 1000

The server is ``tests/h2_server.py`` (hypercorn, TLS with a trustme certificate, HTTP/2 and
HTTP/1.1 by ALPN, answers after ``--latency-ms``) in its own process; each run is a fresh
subprocess that trusts the test CA through ``SSL_CERT_FILE`` and fetches N rows at concurrency
50, reporting its own CPU (the server's is not counted):

``default``   no option: the default sender (aiohttp, HTTP/1.1 over TLS)
``http2``     ``http2=True``: pandas_async's own ``httpx.AsyncClient(http2=True)``
``httpx1``    ``client=httpx.AsyncClient()`` (HTTP/1.1): how much of the cost is httpx itself

Rounds interleave the variants; ratios to ``default`` are taken within a round.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VARIANTS = ("default", "http2", "httpx1")


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    import asyncio

    import httpx
    import numpy as np
    import pandas as pd

    import pandas_async

    variant, base, rows = spec["variant"], spec["base"], spec["rows"]
    url = base + "/users/{user_id}"

    async def run(df: pd.DataFrame) -> pd.DataFrame:
        if variant == "httpx1":
            limits = httpx.Limits(max_connections=50)
            async with httpx.AsyncClient(limits=limits) as client:
                return await df.aapi.afetch(url, concurrency=50, progress=False, client=client)
        return await df.aapi.afetch(url, concurrency=50, progress=False, http2=variant == "http2")

    asyncio.run(run(pd.DataFrame({"user_id": [0]})))  # warm-up: CA bundle, first imports
    df = pd.DataFrame({"user_id": np.arange(rows)})
    cpu0, t0 = _cpu(), time.perf_counter()
    out = asyncio.run(run(df))
    cpu, wall = _cpu() - cpu0, time.perf_counter() - t0
    report = pandas_async.last_report()
    assert report is not None and len(out) == rows and report.failed_rows == 0
    versions = sorted(set(out["http_version"]))
    return {"cpu": cpu, "wall": wall, "requests": report.requests, "versions": versions}


def _server(folder: Path, latency_ms: float) -> tuple[subprocess.Popen[str], str]:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    for i, pem in enumerate(cert.cert_chain_pems):
        pem.write_to_path(str(folder / "cert.pem"), append=i > 0)
    cert.private_key_pem.write_to_path(str(folder / "key.pem"))
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "h2_server.py"), str(folder / "cert.pem"),
         str(folder / "key.pem"), "--latency-ms", str(latency_ms)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY"):
        proc.kill()
        raise SystemExit(f"the HTTP/2 server did not start: {line!r}")
    return proc, f"https://127.0.0.1:{int(line.split()[1])}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="CPU per request: http2=True vs the default.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=3_000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "http2.json")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        server, base = _server(folder, args.latency_ms)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "SSL_CERT_FILE": str(folder / "ca.pem")}
        try:
            for rnd in range(1, args.rounds + 1):
                for variant in VARIANTS:
                    spec = {"variant": variant, "base": base, "rows": args.rows}
                    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker",
                           json.dumps(spec)]  # fmt: skip
                    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
                    if proc.returncode != 0:
                        raise SystemExit(f"{spec}: {proc.stderr.strip()[-800:]}")
                    out = json.loads(proc.stdout.strip().splitlines()[-1])
                    out.update(variant=variant, round=rnd, us=out["cpu"] / out["requests"] * 1e6)
                    runs.append(out)
                    line = (
                        f"round {rnd} {variant:<8} cpu {out['cpu']:6.2f} s  wall "
                        f"{out['wall']:6.2f} s  {out['us']:7.1f} µs/request"
                    )
                    print(f"{line}  HTTP {out['versions']}", flush=True)
        finally:
            server.terminate()
            server.wait(10)
    lines = [
        f"{args.rows:,} rows, concurrency 50, TLS, {args.latency_ms:g} ms; "
        "client CPU µs per request (min-max):"
    ]
    for variant in VARIANTS:
        us = [r["us"] for r in runs if r["variant"] == variant]
        ratios = [
            r["us"] / a["us"]
            for r in runs
            for a in runs
            if r["variant"] == variant and a["variant"] == "default" and a["round"] == r["round"]
        ]
        lines.append(
            f"  {variant:<8} {min(us):7.1f}-{max(us):7.1f}  ratio to default "
            f"{min(ratios):.2f}-{max(ratios):.2f} (median {statistics.median(ratios):.2f})"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"runs": runs, "summary": lines}, indent=2))
    print()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
