"""``pandas-async fetch ... -o FOLDER/ --key COLS``: a resumable Parquet dataset from the shell."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from pandas_async.cli import main
from tests.helpers import unique
from tests.server import TestServer

ROOT = Path(__file__).resolve().parent.parent


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main([*argv, "--no-progress"])
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return code, out.out, out.err


def test_folder_output_streams_partitions_and_resumes(
    server: TestServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = pd.DataFrame({"sym": ["A", "B", "A", "C"], "day": ["d1", "d1", "d2", "d2"]})
    source = tmp_path / "pairs.csv"
    frame.to_csv(source, index=False)
    out = tmp_path / "candles"
    argv = ["fetch", str(source), "--url", f"{server.url}/record", "--param", "s={sym}",
            "--param", "d={day}", "-o", f"{out}/", "--key", "sym,day",
            "--partition-by", "sym", "--batch-size", "2"]  # fmt: skip
    code, stdout, err = _run(argv, capsys)
    assert code == 0, err
    assert "4 rows fetched" in stdout and f"{out} holds 4 rows" in stdout
    assert (out / "sym=A").is_dir()
    back = pd.read_parquet(out)
    assert sorted(zip(back["sym"].astype(str), back["day"], strict=True)) == sorted(
        zip(frame["sym"], frame["day"], strict=True)
    )
    # more rows in the input: a re-run fetches only the new ones
    pd.concat([frame, pd.DataFrame({"sym": ["D"], "day": ["d3"]})]).to_csv(source, index=False)
    server.reset()
    code, stdout, err = _run(argv, capsys)
    assert code == 0, err
    assert len(server.requests) == 1 and "(4 already written, skipped)" in stdout
    assert len(pd.read_parquet(out)) == 5


def test_failed_rows_message_says_what_is_written_and_how_to_resume(
    server: TestServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tag = unique()
    frame = pd.DataFrame({"k": [f"{tag}-{i}" for i in range(6)], "fail": [0, 1, 0, 1, 0, 0]})
    source = tmp_path / "in.csv"
    frame.to_csv(source, index=False)
    out = tmp_path / "out"
    argv = ["fetch", str(source), "--url", f"{server.url}/flaky/{{k}}", "--param", "fail={fail}",
            "--param", "status=404", "-o", str(out), "--key", "k"]  # fmt: skip
    code, _, err = _run(argv, capsys)
    assert code == 1
    assert "2 of 6 rows failed (2 HTTP 404 Not Found); failed rows are not written" in err
    assert f"{out} holds 4 rows; run the same command again to fetch just the failed ones" in err
    assert ".frame" not in err
    before = len(server.requests)
    code, stdout, err = _run(argv, capsys)
    assert code == 0, err
    assert len(server.requests) - before == 2
    assert "(4 already written, skipped)" in stdout and "holds 6 rows" in stdout
    assert sorted(pd.read_parquet(out)["k"]) == sorted(frame["k"])


def test_a_folder_of_other_files_is_refused(
    server: TestServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in.csv"
    pd.DataFrame({"id": [1]}).to_csv(source, index=False)
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("keep")
    code, _, err = _run(
        ["fetch", str(source), "--url", f"{server.url}/users/{{id}}", "-o", str(out)], capsys
    )
    assert code == 2 and "did not write" in err
    assert (out / "thesis.tex").read_text() == "keep" and server.requests == []


@pytest.mark.subprocess
def test_ctrl_c_keeps_what_was_written_and_says_how_to_resume(
    server: TestServer, tmp_path: Path
) -> None:
    n = 400
    source = tmp_path / "in.csv"
    pd.DataFrame({"id": range(n)}).to_csv(source, index=False)
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "pandas_async", "fetch", str(source),
            "--url", f"{server.url}/slow", "--param", "id={id}", "--param", "delay=0.02",
            "-o", str(out), "--key", "id", "--batch-size", "20", "--no-progress"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True)
    commits = out / "_pandas_async" / "commits"
    deadline = time.monotonic() + 60
    while not (commits.is_dir() and len(list(commits.glob("*.json"))) >= 2):
        assert child.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=30)
    assert child.returncode == 130, err
    assert "interrupted;" in err and "run the same command again to resume" in err
    assert "Traceback" not in err
    written = len(pd.read_parquet(out))
    assert 40 <= written < n and f"holds {written} rows" in err
    server.reset()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(server.requests_to("/slow")) == n - written
    assert sorted(pd.read_parquet(out)["id"]) == list(range(n))
