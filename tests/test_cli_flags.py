"""``pandas-async fetch`` flags end to end against the suite's server: body, parse, pagination,
schema, rate/burst, cache, and never clobbering an output file on a failed run."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from pandas_async._options import FetchKwargs
from pandas_async.cli import main
from tests.helpers import unique
from tests.server import TestServer


def _csv(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False)
    return path


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main([*argv, "--no-progress"] if argv and argv[0] == "fetch" else argv)
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return code, out.out, out.err


def test_json_body_with_column_fields_keeps_types(
    server: TestServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _csv(tmp_path / "in.csv", pd.DataFrame({"id": [1, 2], "name": ["a", "b"]}))
    target = tmp_path / "out.jsonl"
    body = '{"id": "{id}", "label": "user {name}", "fixed": [1, 2]}'
    code, _, err = _run(
        ["fetch", str(source), "--url", f"{server.url}/echo", "--method", "post",
         "--json", body, "-o", str(target)], capsys,
    )  # fmt: skip
    assert code == 0, err
    records = [json.loads(line) for line in target.read_text().splitlines()]
    assert [r["json.id"] for r in records] == [1, 2]  # a lone {id} keeps the number
    assert [r["json.label"] for r in records] == ["user a", "user b"]
    assert records[0]["method"] == "POST" and records[0]["json.fixed"] == [1, 2]
    (tmp_path / "body.json").write_text('{"who": "{name}"}')
    code, _, err = _run(
        ["fetch", str(source), "--url", f"{server.url}/echo", "--method", "POST",
         "--json", f"@{tmp_path / 'body.json'}", "-o", str(target)], capsys,
    )  # fmt: skip
    assert code == 0, err
    assert [json.loads(x)["json.who"] for x in target.read_text().splitlines()] == ["a", "b"]


def test_bad_json_is_a_usage_error_that_says_how_to_quote(
    server: TestServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _csv(tmp_path / "in.csv", pd.DataFrame({"id": [1]}))
    code, _, err = _run(
        ["fetch", str(source), "--url", f"{server.url}/echo", "--json", "{id: 1}",
         "-o", str(tmp_path / "o.csv")], capsys,
    )  # fmt: skip
    assert code == 2 and "not valid JSON" in err and "--json '{" in err
    assert server.requests == []


def test_parse_text(server: TestServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = _csv(tmp_path / "in.csv", pd.DataFrame({"v": ["hi", "yo"]}))
    target = tmp_path / "out.csv"
    code, _, err = _run(
        ["fetch", str(source), "--url", f"{server.url}/text", "--param", "value={v}",
         "--parse", "text", "-o", str(target)], capsys,
    )  # fmt: skip
    assert code == 0, err
    assert pd.read_csv(target)["response"].tolist() == ["hi", "yo"]


@pytest.mark.parametrize(
    ("endpoint", "style", "extra"),
    [
        ("pages", "page:page:size=2", []),
        ("offset", "offset:offset:limit=2:total=meta.total", ["--record-path", "items"]),
        ("cursor", "cursor:cursor:next_cursor", ["--record-path", "data"]),
        ("link", "link", []),
        ("nexturl", "next:links.next", ["--record-path", "results"]),
    ],
)
def test_paginate_styles(
    server: TestServer, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    endpoint: str, style: str, extra: list[str],
) -> None:  # fmt: skip
    keys = [unique(), unique()]
    source = _csv(tmp_path / "in.csv", pd.DataFrame({"key": keys}))
    target = tmp_path / "out.csv"
    code, _, err = _run(
        ["fetch", str(source), "--url", f"{server.url}/{endpoint}/{{key}}", "--paginate", style,
         *extra, "-o", str(target)], capsys,
    )  # fmt: skip
    assert code == 0, err
    result = pd.read_csv(target)
    assert result["label"].tolist() == [f"{k}:{i}" for k in keys for i in range(1, 6)]
    code, _, err = _run(
        ["fetch", str(source), "--url", f"{server.url}/{endpoint}/{{key}}", "--paginate", style,
         "--max-pages", "1", *extra, "-o", str(target)], capsys,
    )  # fmt: skip
    assert code == 0, err
    assert len(pd.read_csv(target)) == 4  # one page of 2 per row


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--paginate", "pages:p"], "not a pagination style"),
        (["--paginate", "offset:offset"], "not a pagination style"),
        (["--paginate", "page:page:size=two"], "whole number"),
        (["--max-pages", "2"], "--max-pages needs --paginate"),
        (["--cache-ttl", "5"], "--cache-ttl needs --cache"),
        (["--key", "id"], "give a folder as OUTPUT"),
        (["--schema", "x=nonsense"], "schema="),
    ],
)
def test_bad_flags_fail_before_any_request(
    server: TestServer, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    argv: list[str], message: str,
) -> None:  # fmt: skip
    source = _csv(tmp_path / "in.csv", pd.DataFrame({"id": [1]}))
    code, _, err = _run(
        ["fetch", str(source), "--url", f"{server.url}/users/{{id}}", *argv,
         "-o", str(tmp_path / "o.csv")], capsys,
    )  # fmt: skip
    assert code == 2 and message in err, err
    assert server.requests == []


def test_schema_flag_types_the_output(
    server: TestServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _csv(tmp_path / "in.csv", pd.DataFrame({"v": ["1.5", "2"]}))
    target = tmp_path / "out.parquet"
    code, _, err = _run(
        ["fetch", str(source), "--url", f"{server.url}/record", "--param", "x={v}",
         "--param", "y=drop me", "--schema", "x=float64", "-o", str(target)], capsys,
    )  # fmt: skip
    assert code == 0, err
    schema = pq.read_schema(target)
    assert schema.names == ["v", "x"] and str(schema.field("x").type) == "double"


def test_rate_flag_paces_requests(
    server: TestServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _csv(tmp_path / "in.csv", pd.DataFrame({"i": range(12)}))
    code, _, err = _run(
        ["fetch", str(source), "--url", f"{server.url}/ratelimited", "--param", "limit=5",
         "--param", "i={i}", "--rate", "5/s", "--concurrency", "12",
         "-o", str(tmp_path / "o.csv")], capsys,
    )  # fmt: skip
    assert code == 0, err
    arrivals = server.arrivals("/ratelimited")
    assert arrivals[-1] - arrivals[0] >= 1.5  # 12 requests at 5/s span at least 2 windows
    assert server.state.ratelimit_violations == 0


@pytest.mark.skipif("burst" not in FetchKwargs.__annotations__, reason="burst= not landed yet")
def test_burst_flag_reaches_the_library(
    server: TestServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _csv(tmp_path / "in.csv", pd.DataFrame({"i": range(6)}))
    code, _, err = _run(
        ["fetch", str(source), "--url", f"{server.url}/record", "--param", "i={i}",
         "--rate", "10/s", "--burst", "1", "--concurrency", "6", "-o", str(tmp_path / "o.csv")],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    arrivals = server.arrivals("/record")
    gaps = sorted(b - a for a, b in itertools.pairwise(arrivals))
    assert gaps[len(gaps) // 2] >= 0.07  # evenly spaced, one every 0.1 s (most gaps: a busy
    assert arrivals[-1] - arrivals[0] >= 0.4  # server may stamp one arrival late)


@pytest.mark.skipif("cache" not in FetchKwargs.__annotations__, reason="cache= not landed yet")
def test_cache_flag_answers_a_rerun_from_disk(
    server: TestServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _csv(tmp_path / "in.csv", pd.DataFrame({"id": [1, 2, 3]}))
    argv = ["fetch", str(source), "--url", f"{server.url}/users/{{id}}",
            "--cache", str(tmp_path / "cache"), "-o", str(tmp_path / "o.csv")]  # fmt: skip
    assert _run(argv, capsys)[0] == 0
    server.reset()
    assert _run(argv, capsys)[0] == 0
    assert server.requests == []
    assert pd.read_csv(tmp_path / "o.csv")["name"].tolist() == ["User 1", "User 2", "User 3"]


def test_a_failed_run_never_clobbers_an_existing_output(
    server: TestServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _csv(tmp_path / "in.csv", pd.DataFrame({"id": [1, 5000]}))
    target = tmp_path / "out.csv.gz"
    pd.DataFrame({"old": [1]}).to_csv(target, index=False)
    before = target.read_bytes()
    code, _, err = _run(
        ["fetch", str(source), "--url", f"{server.url}/users/{{id}}", "--retries", "0",
         "-o", str(target)], capsys,
    )  # fmt: skip
    assert code == 1
    assert target.read_bytes() == before
    failed = tmp_path / "out.failed.csv.gz"
    assert pd.read_csv(failed)["_status"].tolist() == [200, 404]
    assert "1 of 2 rows failed (1 HTTP 404 Not Found)" in err
    assert f"{target} was left as it was" in err and str(failed) in err
    assert "--key" in err and ".frame" not in err
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left
