"""rate=, burst= and cool-down against a real nginx ``limit_req`` (the most common limiter).

nginx is started by the test on a free port with a config written here (``daemon off;``, every
path under a temporary folder). It serves files, not ``return``: the ``return`` directive runs
before ``limit_req`` and would never be limited. Skipped when nginx is not installed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest

import pandas_async  # noqa: F401  (registers DataFrame.aapi)

NGINX = shutil.which("nginx") or next(
    (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
)
pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed")

CONFIG = """
daemon off;
worker_processes 1;
{user}
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 512; }}
http {{
    log_format timed '$msec $status';
    access_log {root}/access.log timed;
    client_body_temp_path {root}/tmp/body;
    proxy_temp_path {root}/tmp/proxy;
    fastcgi_temp_path {root}/tmp/fastcgi;
    uwsgi_temp_path {root}/tmp/uwsgi;
    scgi_temp_path {root}/tmp/scgi;
    limit_req_zone $binary_remote_addr zone=api:1m rate={rate}r/s;
    limit_req_status 429;
    server {{
        listen 127.0.0.1:{port};
        root {root}/www;
        location /item/ {{
            limit_req zone=api{burst};
            default_type application/json;
            try_files $uri.json =404;
        }}
        {retry_after}
    }}
}}
"""
RETRY_AFTER = """
        error_page 429 = @limited;
        location @limited {
            add_header Retry-After 1 always;
            return 429 '{"error": "slow down"}';
        }
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Nginx:
    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/item/{{i}}"

    def log(self) -> list[tuple[float, int]]:
        """(arrival in seconds since the epoch, status) per request, from nginx's own log."""
        lines = (self.root / "access.log").read_text().split()
        pairs = [(float(t), int(s)) for t, s in zip(lines[::2], lines[1::2], strict=True)]
        return sorted(pairs)


@contextmanager
def nginx(
    tmp_path: Path, rows: int, rate: int, *, burst: int = 0, retry_after: bool = False
) -> Iterator[Nginx]:
    assert NGINX is not None
    root = tmp_path / "nginx"
    (root / "tmp").mkdir(parents=True)
    (root / "www" / "item").mkdir(parents=True)
    for i in range(rows):
        (root / "www" / "item" / f"{i}.json").write_text(f'{{"i": {i}}}')
    port = _free_port()
    config = CONFIG.format(
        root=root,
        port=port,
        rate=rate,
        burst=f" burst={burst} nodelay" if burst else "",
        retry_after=RETRY_AFTER if retry_after else "",
        # As root, nginx's workers run as "nobody", who cannot read a private temporary folder.
        user="user root;" if os.geteuid() == 0 else "",
    )
    (root / "nginx.conf").write_text(config)
    process = subprocess.Popen(
        [NGINX, "-p", str(root), "-c", str(root / "nginx.conf"), "-e", str(root / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    errors = (
                        (root / "error.log").read_text() if (root / "error.log").exists() else ""
                    )
                    pytest.skip(f"nginx did not start: {errors[-500:]}")
                time.sleep(0.05)
        yield Nginx(root, port)
    finally:
        process.terminate()
        process.wait(10)


def _run(server: Nginx, rows: int, **options: object) -> tuple[pd.DataFrame, float]:
    started = time.monotonic()
    out = pd.DataFrame({"i": range(rows)}).aapi.fetch(
        server.url, errors="collect", progress=False, **options
    )
    return out, time.monotonic() - started


def _most_in_any_second(times: list[float]) -> int:
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_rate_against_nginx_limit_req_without_burst(tmp_path: Path) -> None:
    # 10r/s, no burst (one request per 100 ms): rate="10/s" lost 63 of 100 rows before.
    rows = 30
    with nginx(tmp_path, rows, 10) as server:
        out, wall = _run(server, rows, rate="10/s", concurrency=10)
        log = server.log()
    assert out["_error"].isna().all()
    assert out["i"].astype(int).tolist() == list(range(rows))
    refused = sum(1 for _, status in log if status == 429)
    # The first burst is the two sent to see if nginx takes one: one refused (it was nine of
    # a window of ten, whose arrivals used up the first second); a busy moment may add one.
    assert refused <= 1 + 2
    assert _most_in_any_second([t for t, _ in log]) <= 10  # refused arrivals included
    assert wall < 1.10 * rows / 10 + 0.6


def test_burst_1_draws_no_429_from_nginx(tmp_path: Path) -> None:
    rows = 20
    with nginx(tmp_path, rows, 10) as server:
        out, _ = _run(server, rows, rate="10/s", burst=1, concurrency=10)
        log = server.log()
    assert out["_error"].isna().all()
    assert sum(1 for _, status in log if status == 429) <= 1


@pytest.mark.slow
def test_nginx_retry_after_without_rate(tmp_path: Path) -> None:
    # 429 + Retry-After: 1 and no rate=: every row answered in under 10 s, as the pace is found.
    rows = 30
    with nginx(tmp_path, rows, 10, retry_after=True) as server:
        out, wall = _run(server, rows, concurrency=10)
    assert out["_error"].isna().all()
    assert wall < 10.0


@pytest.mark.slow
@pytest.mark.parametrize("rate", ["10/s", "600/min"])
def test_hundred_rows_against_nginx_at_its_own_rate(tmp_path: Path, rate: str) -> None:
    # The numbers: 100 rows, 10r/s, no burst: 63 (10/s) and 72 (600/min) rows lost.
    rows = 100
    with nginx(tmp_path, rows, 10) as server:
        out, wall = _run(server, rows, rate=rate, concurrency=10)
        log = server.log()
    assert out["_error"].isna().all()
    assert sum(1 for _, status in log if status == 429) <= 1 + 2
    if rate == "10/s":  # 600/min promises 600 a minute, not 10 in every second
        assert _most_in_any_second([t for t, _ in log]) <= 10
    assert wall < 1.10 * rows / 10 + 0.6
