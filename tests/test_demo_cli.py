"""The bundled demo API (pandas_async.demo) and the ``pandas-async`` command line."""

from __future__ import annotations

import itertools
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from pandas_async import demo
from pandas_async.cli import main


@pytest.fixture(scope="module")
def demo_api() -> Iterator[demo.DemoServer]:
    """The demo API with no added latency, shared by the tests of this module."""
    with demo.serve(latency=0.0) as server:
        yield server


@pytest.fixture
def api(demo_api: demo.DemoServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=demo_api.url, timeout=10) as client:
        yield client


def _write_csv(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False)
    return path


# --------------------------------------------------------------------------------------------
# The demo API
# --------------------------------------------------------------------------------------------


def test_serve_listens_on_localhost_and_stops() -> None:
    with demo.serve() as server:
        assert server.url.startswith("http://127.0.0.1:")
        assert httpx.get(f"{server.url}/users/1").status_code == 200
        port = server.port
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_user_has_nested_objects_and_is_deterministic(api: httpx.Client) -> None:
    user = api.get("/users/7").json()
    assert user["id"] == 7
    assert {"name", "username", "email", "phone", "website"} <= user.keys()
    assert {"street", "suite", "city", "zipcode", "geo"} <= user["address"].keys()
    assert {"lat", "lng"} <= user["address"]["geo"].keys()
    assert {"name", "catchPhrase", "bs"} <= user["company"].keys()
    with demo.serve(latency=0.0) as other:
        assert httpx.get(f"{other.url}/users/7").json() == user
    assert user == demo.user(7)


@pytest.mark.parametrize("path", ["/users/0", "/users/1001", "/users/abc", "/posts/999999"])
def test_unknown_ids_answer_404_with_json(api: httpx.Client, path: str) -> None:
    response = api.get(path)
    assert response.status_code == 404
    assert "error" in response.json()


def test_posts_and_comments(api: httpx.Client) -> None:
    post = api.get("/posts/5").json()
    assert post["id"] == 5
    assert post["userId"] == 2
    assert {"title", "body"} <= post.keys()
    assert [p["id"] for p in api.get("/posts", params={"userId": 2}).json()] == [4, 5, 6]

    comments = api.get("/posts/5/comments").json()
    assert isinstance(comments, list)
    assert len(comments) == 5
    assert all(c["postId"] == 5 for c in comments)
    assert api.get("/comments", params={"postId": 5}).json() == comments


def test_lists_paginate_with_link_header(api: httpx.Client) -> None:
    whole = api.get("/users")
    assert len(whole.json()) == demo.N_USERS
    assert whole.headers["X-Total-Count"] == str(demo.N_USERS)

    page = api.get("/users", params={"_page": 2, "_limit": 3})
    assert [u["id"] for u in page.json()] == [4, 5, 6]
    assert page.headers["X-Total-Count"] == str(demo.N_USERS)
    links = page.links
    assert set(links) == {"first", "prev", "next", "last"}
    following = api.get(links["next"]["url"])
    assert [u["id"] for u in following.json()] == [7, 8, 9]
    last = api.get(links["last"]["url"])
    assert "next" not in last.links
    assert [u["id"] for u in last.json()] == [1000]

    assert api.get("/users", params={"_page": 1000, "_limit": 10}).json() == []
    offset = api.get("/users", params={"_start": 10, "_limit": 2})
    assert [u["id"] for u in offset.json()] == [11, 12]
    assert api.get("/users", params={"_page": "two"}).status_code == 400


def test_candles_are_deterministic_ohlcv_records(api: httpx.Client) -> None:
    day1 = api.get("/candles", params={"symbol": "BTC", "date": "2024-01-01"}).json()
    assert len(day1) == 24
    assert day1[0]["time"] == "2024-01-01T00:00:00Z"
    assert day1[-1]["time"] == "2024-01-01T23:00:00Z"
    for candle in day1:
        assert set(candle) == {"symbol", "time", "open", "high", "low", "close", "volume"}
        assert candle["high"] >= max(candle["open"], candle["close"])
        assert candle["low"] <= min(candle["open"], candle["close"])
        assert candle["volume"] > 0
    assert all(a["close"] == b["open"] for a, b in itertools.pairwise(day1))
    day2 = api.get("/candles", params={"symbol": "btc", "date": "2024-01-02"}).json()
    assert day2[0]["open"] == day1[-1]["close"]
    again = api.get("/candles", params={"symbol": "BTC", "date": "2024-01-01"}).json()
    assert again == day1
    minutes = api.get("/candles", params={"symbol": "ETH", "date": "2024-01-01", "interval": "5m"})
    assert len(minutes.json()) == 288


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"date": "2024-01-01"}, 400),
        ({"symbol": "BTC"}, 400),
        ({"symbol": "BTC", "date": "01/01/2024"}, 400),
        ({"symbol": "BTC", "date": "2024-01-01", "interval": "7m"}, 400),
        ({"symbol": "NOPE", "date": "2024-01-01"}, 404),
    ],
)
def test_candles_reject_bad_queries(api: httpx.Client, params: dict[str, str], status: int) -> None:
    response = api.get("/candles", params=params)
    assert response.status_code == status
    assert "error" in response.json()


def test_status_endpoint_and_retry_after(api: httpx.Client) -> None:
    response = api.get("/status/503", params={"retry_after": "2"})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "2"


def test_latency_is_applied_and_adjustable() -> None:
    with demo.serve(latency=0.2) as server, httpx.Client(base_url=server.url) as client:
        started = time.perf_counter()
        client.get("/users/1")
        assert time.perf_counter() - started >= 0.14  # 0.2 s, +-25% per URL
        server.latency = 0.0
        started = time.perf_counter()
        client.get("/users/2")
        assert time.perf_counter() - started < 0.14
        assert server.request_count == 2


def test_serve_rejects_negative_latency() -> None:
    with pytest.raises(ValueError, match="latency"), demo.serve(latency=-1):
        pass


# --------------------------------------------------------------------------------------------
# pandas-async demo
# --------------------------------------------------------------------------------------------


def test_demo_command_runs_and_reports_speedup(capsys: pytest.CaptureFixture[str]) -> None:
    started = time.perf_counter()
    assert main(["demo", "--rows", "30", "--latency", "0.02"]) == 0
    assert time.perf_counter() - started < 30
    out = capsys.readouterr().out
    assert "user.name" in out
    assert "one request at a time" in out
    assert "speed-up" in out


def test_run_demo_returns_the_enriched_frame() -> None:
    lines: list[str] = []

    class Sink:
        def write(self, text: str) -> int:
            lines.append(text)
            return len(text)

        def flush(self) -> None:
            pass

    report = demo.run_demo(
        rows=60,
        concurrency=20,
        stream=Sink(),
        latency=0.02,  # type: ignore[arg-type]
        sequential_sample=10,
    )
    frame = report.frame
    assert len(frame) == 60
    assert list(frame.index[:2]) == ["C00001", "C00002"]
    assert frame["user.name"].tolist()[:3] == [demo.user(i)["name"] for i in (1, 2, 3)]
    assert report.sequential_rows == 10
    assert report.sequential_extrapolated
    assert "extrapolated" in "".join(lines)
    assert report.speedup > 1


# --------------------------------------------------------------------------------------------
# pandas-async fetch
# --------------------------------------------------------------------------------------------


def test_fetch_csv_to_csv(
    demo_api: demo.DemoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _write_csv(
        tmp_path / "users.csv", pd.DataFrame({"user_id": [3, 1, 2], "n": [9, 8, 7]})
    )
    target = tmp_path / "out.csv"
    code = main(
        [
            "fetch", str(source), "--url", f"{demo_api.url}/users/{{user_id}}", "-o", str(target),
            "--prefix", "user.", "--concurrency", "4", "--no-progress",
        ]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    result = pd.read_csv(target)
    assert result["user_id"].tolist() == [3, 1, 2]
    assert result["n"].tolist() == [9, 8, 7]
    assert result["user.name"].tolist() == [demo.user(i)["name"] for i in (3, 1, 2)]
    assert result["user.address.city"].tolist() == [
        demo.user(i)["address"]["city"] for i in (3, 1, 2)
    ]
    assert str(target) in capsys.readouterr().out


def test_fetch_rows_to_jsonl_with_params(demo_api: demo.DemoServer, tmp_path: Path) -> None:
    source = tmp_path / "posts.jsonl"
    pd.DataFrame({"post_id": [2, 7]}).to_json(source, orient="records", lines=True)
    target = tmp_path / "comments.jsonl"
    code = main(
        [
            "fetch", str(source), "--url", f"{demo_api.url}/comments", "-o", str(target),
            "--param", "postId={post_id}", "--how", "rows", "--header", "X-Trace={post_id}",
            "--no-progress",
        ]
    )  # fmt: skip
    assert code == 0
    records = [json.loads(line) for line in target.read_text().splitlines()]
    assert len(records) == 10
    assert [r["post_id"] for r in records] == [2] * 5 + [7] * 5
    assert all(r["postId"] == r["post_id"] for r in records)


def test_fetch_parquet_roundtrip_with_record_path(
    demo_api: demo.DemoServer, tmp_path: Path
) -> None:
    pytest.importorskip("pyarrow")
    source = tmp_path / "days.parquet"
    pd.DataFrame({"symbol": ["BTC", "ETH"], "day": ["2024-01-01", "2024-01-02"]}).to_parquet(source)
    target = tmp_path / "candles.parquet"
    code = main(
        [
            "fetch", str(source), "--url", f"{demo_api.url}/candles", "-o", str(target),
            "--param", "symbol={symbol}", "--param", "date={day}", "--param", "interval=4h",
            "--prefix", "c_", "--no-progress",
        ]
    )  # fmt: skip
    assert code == 0
    result = pd.read_parquet(target)
    assert len(result) == 12  # six 4-hour candles per day
    assert result["c_symbol"].tolist() == ["BTC"] * 6 + ["ETH"] * 6
    assert result["c_time"].iloc[6] == "2024-01-02T00:00:00Z"


def test_fetch_collect_keeps_failed_rows(
    demo_api: demo.DemoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _write_csv(tmp_path / "in.csv", pd.DataFrame({"user_id": [1, 5000]}))
    target = tmp_path / "out.csv"
    code = main(
        [
            "fetch", str(source), "--url", f"{demo_api.url}/users/{{user_id}}", "-o", str(target),
            "--errors", "collect", "--retries", "0", "--no-progress",
        ]
    )  # fmt: skip
    assert code == 0
    result = pd.read_csv(target)
    assert result["_status"].tolist() == [200, 404]
    assert result["name"].iloc[0] == demo.user(1)["name"]
    assert pd.isna(result["name"].iloc[1])
    assert "1 failed" in capsys.readouterr().out


def test_fetch_failures_exit_1_and_still_write(
    demo_api: demo.DemoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _write_csv(tmp_path / "in.csv", pd.DataFrame({"user_id": [1, 5000, 6000]}))
    target = tmp_path / "out.csv"
    code = main(
        [
            "fetch", str(source), "--url", f"{demo_api.url}/users/{{user_id}}", "-o", str(target),
            "--retries", "0", "--no-progress",
        ]
    )  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert "2 of 3 rows failed" in err
    assert "404" in err
    assert "Traceback" not in err
    assert pd.read_csv(target)["_status"].tolist() == [200, 404, 404]


def _run_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.err


def test_fetch_missing_input_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.csv"
    code, err = _run_error(
        ["fetch", str(missing), "--url", "http://127.0.0.1:9/{a}", "-o", str(tmp_path / "o.csv")],
        capsys,
    )
    assert code == 2
    assert "nope.csv" in err
    assert "no such file" in err


@pytest.mark.parametrize("name", ["in.xlsx", "in", "in.parquet.gz"])
def test_fetch_unknown_input_extension(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    source = tmp_path / name
    source.write_text("a\n1\n")
    code, err = _run_error(
        ["fetch", str(source), "--url", "http://127.0.0.1:9/{a}", "-o", str(tmp_path / "o.csv")],
        capsys,
    )
    assert code == 2
    assert name in err


def test_fetch_bad_output_fails_before_any_request(
    demo_api: demo.DemoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _write_csv(tmp_path / "in.csv", pd.DataFrame({"user_id": [1, 2]}))
    url = f"{demo_api.url}/users/{{user_id}}"
    before = demo_api.request_count
    code, err = _run_error(
        ["fetch", str(source), "--url", url, "-o", str(tmp_path / "o.txt")], capsys
    )
    assert code == 2
    assert "o.txt" in err
    missing_dir = tmp_path / "no" / "such" / "o.csv"
    code, err = _run_error(["fetch", str(source), "--url", url, "-o", str(missing_dir)], capsys)
    assert code == 2
    assert "does not exist" in err
    assert demo_api.request_count == before


def test_fetch_template_naming_a_missing_column(
    demo_api: demo.DemoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _write_csv(tmp_path / "in.csv", pd.DataFrame({"user_id": [1, 2]}))
    before = demo_api.request_count
    code, err = _run_error(
        [
            "fetch", str(source), "--url", f"{demo_api.url}/users/{{customer}}",
            "-o", str(tmp_path / "o.csv"), "--no-progress",
        ],
        capsys,
    )  # fmt: skip
    assert code == 2
    assert "customer" in err
    assert demo_api.request_count == before
    assert not (tmp_path / "o.csv").exists()


def test_fetch_empty_or_broken_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    code, err = _run_error(
        ["fetch", str(empty), "--url", "http://127.0.0.1:9/{a}", "-o", str(tmp_path / "o.csv")],
        capsys,
    )
    assert code == 2
    assert "empty" in err
    broken = tmp_path / "broken.parquet"
    broken.write_text("this is not parquet")
    code, err = _run_error(
        ["fetch", str(broken), "--url", "http://127.0.0.1:9/{a}", "-o", str(tmp_path / "o.csv")],
        capsys,
    )
    assert code == 2
    assert "broken.parquet" in err


@pytest.mark.parametrize(
    "extra",
    [
        ["--param", "no-equals-sign"],
        ["--concurrency", "0"],
        ["--timeout", "-1"],
        ["--errors", "explode"],
        ["--how", "sideways"],
    ],
)
def test_fetch_bad_options_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str]
) -> None:
    argv = ["fetch", "in.csv", "--url", "http://127.0.0.1:9/{a}", "-o", str(tmp_path / "o.csv")]
    code, err = _run_error([*argv, *extra], capsys)
    assert code == 2
    assert "usage:" in err


def test_fetch_bad_rate_is_reported(
    demo_api: demo.DemoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _write_csv(tmp_path / "in.csv", pd.DataFrame({"user_id": [1]}))
    code, err = _run_error(
        [
            "fetch", str(source), "--url", f"{demo_api.url}/users/{{user_id}}",
            "-o", str(tmp_path / "o.csv"), "--rate", "ten per sec",
        ],
        capsys,
    )  # fmt: skip
    assert code == 2
    assert "rate" in err


def test_no_command_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage:" in capsys.readouterr().err
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "demo" in out
    assert "fetch" in out
    assert main(["fetch", "--help"]) == 0
    assert "--record-path" in capsys.readouterr().out


@pytest.mark.subprocess
def test_python_dash_m(tmp_path: Path) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "pandas_async", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0
    assert "fetch" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "pandas_async", "fetch", str(tmp_path / "x.csv"), "--url", "u",
         "-o", str(tmp_path / "o.csv")],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert bad.returncode == 2
    assert "no such file" in bad.stderr
    assert "Traceback" not in bad.stderr
