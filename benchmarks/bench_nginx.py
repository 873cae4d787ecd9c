"""rate=, burst= and no rate= against a real nginx ``limit_req`` (10r/s, no burst).

    python benchmarks/bench_nginx.py            # 100 rows per setting, about a minute
    python benchmarks/bench_nginx.py --rows 200

nginx is started on a free port of 127.0.0.1 with the config tests/test_nginx.py writes (it
serves a file per row, limited by ``limit_req``). Reported per setting: wall time, 429s drawn,
rows lost, and the most requests nginx saw in any one second (from its access log).
Results go to ``benchmarks/results/nginx.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the repository's tests/, for its nginx helpers

from tests.test_nginx import _most_in_any_second, _run, nginx  # noqa: E402

SETTINGS: list[dict[str, Any]] = [
    {"rate": "10/s"},
    {"rate": "600/min"},
    {"rate": "10/s", "burst": 1},
    {},
]


def one_run(rows: int, options: dict[str, Any]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder, nginx(Path(folder), rows, 10) as server:
        out, wall = _run(server, rows, concurrency=10, **options)
        log = server.log()
    return {
        "options": options,
        "rows": rows,
        "wall": round(wall, 2),
        "refused": sum(1 for _, status in log if status == 429),
        "lost": int(out["_error"].notna().sum()),
        "most_in_a_second": _most_in_any_second([t for t, _ in log]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    results = []
    for options in SETTINGS:
        result = one_run(args.rows, options)
        results.append(result)
        print(result, flush=True)
    args.out.mkdir(exist_ok=True)
    (args.out / "nginx.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
