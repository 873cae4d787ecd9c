"""``DataFrame.aapi.to_parquet``: batches on disk as rows complete, resume, crash safety, drift.

Every dataset is read back with ``pandas.read_parquet(path)``, as a user would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import pandas_async
from tests.helpers import unique
from tests.server import TestServer

ROOT = Path(__file__).resolve().parent.parent


def _ids(n: int) -> pd.DataFrame:
    return pd.DataFrame({"id": np.arange(n), "sym": [f"S{i % 4}" for i in range(n)]})


def _commits(path: Path) -> list[Path]:
    return sorted((path / "_pandas_async" / "commits").glob("*.json"))


def test_writes_batches_that_read_back_whole(server: TestServer, tmp_path: Path) -> None:
    frame = _ids(45)
    report = frame.aapi.to_parquet(
        tmp_path / "out", f"{server.url}/record", params={"x": "{id}"}, batch_size=10
    )
    assert isinstance(report, pandas_async.Report)
    assert report.rows == 45 and report.failed_rows == 0
    assert len(_commits(tmp_path / "out")) == 5  # 4 full batches and the rest
    back = pd.read_parquet(tmp_path / "out").sort_values("id").reset_index(drop=True)
    assert back["id"].tolist() == list(range(45))
    assert back["index"].tolist() == list(range(45))  # the key (index labels) is written
    assert back["x"].tolist() == [str(i) for i in range(45)]
    assert pandas_async.last_report() is report


def test_rerun_fetches_nothing_and_writes_nothing_twice(server: TestServer, tmp_path: Path) -> None:
    frame = _ids(30)
    url = f"{server.url}/record"
    frame.aapi.to_parquet(tmp_path, url, params={"x": "{id}"}, batch_size=8)
    server.reset()
    report = frame.aapi.to_parquet(tmp_path, url, params={"x": "{id}"}, batch_size=8)
    assert server.requests == [] and report.rows == 0
    bigger = _ids(40)
    report = bigger.aapi.to_parquet(tmp_path, url, params={"x": "{id}"}, batch_size=8)
    assert report.rows == 10
    assert sorted(q.query["x"] for q in server.requests) == sorted(str(i) for i in range(30, 40))
    back = pd.read_parquet(tmp_path)
    assert sorted(back["id"]) == list(range(40))


def test_key_columns_resume_whatever_the_index(server: TestServer, tmp_path: Path) -> None:
    frame = _ids(12)
    url = f"{server.url}/record"
    frame.aapi.to_parquet(tmp_path, url, params={"x": "{id}"}, key="id", batch_size=5)
    server.reset()
    shuffled = frame.sample(frac=1, random_state=1).reset_index(drop=True)
    shuffled.aapi.to_parquet(tmp_path, url, params={"x": "{id}"}, key="id", batch_size=5)
    assert server.requests == []
    back = pd.read_parquet(tmp_path)
    assert "index" not in back.columns and sorted(back["id"]) == list(range(12))
    with pytest.raises(ValueError, match="key="):
        frame.aapi.to_parquet(tmp_path, url, params={"x": "{id}"})  # the index, not "id"


def test_failed_rows_are_not_written_and_a_rerun_retries_just_them(
    server: TestServer, tmp_path: Path
) -> None:
    tag = unique()
    frame = pd.DataFrame({"k": [f"{tag}-{i}" for i in range(20)]})
    frame["fail"] = [int(i % 3 == 0) for i in range(20)]
    url = f"{server.url}/flaky/{{k}}"
    options = {"params": {"fail": "{fail}", "status": "404"}, "batch_size": 6}
    report = frame.aapi.to_parquet(tmp_path, url, errors="collect", **options)  # type: ignore[arg-type]
    assert report.failed_rows == 7 and report.causes == {"HTTP 404 Not Found": 7}
    back = pd.read_parquet(tmp_path)
    assert sorted(back["k"]) == sorted(frame.loc[frame["fail"] == 0, "k"])
    assert not {"_status", "_error"} & set(back.columns)
    before = len(server.requests)  # no reset: the server counts calls per key
    report = frame.aapi.to_parquet(tmp_path, url, errors="collect", **options)  # type: ignore[arg-type]
    assert report.rows == 7 and report.failed_rows == 0  # the 404s were for first calls only
    assert len(server.requests) - before == 7
    back = pd.read_parquet(tmp_path)
    assert sorted(back["k"]) == sorted(frame["k"])  # each key exactly once


def test_errors_raise_comes_after_every_good_row_is_on_disk(
    server: TestServer, tmp_path: Path
) -> None:
    frame = pd.DataFrame({"user_id": [1, 2, 5000, 3, 6000, 4]}, index=list("abcdef"))
    with pytest.raises(pandas_async.FetchError) as info:
        frame.aapi.to_parquet(tmp_path, f"{server.url}/users/{{user_id}}", batch_size=2)
    err = info.value
    assert err.frame.index.tolist() == ["c", "e"]  # only the failed rows, with their outcome
    assert err.frame["_status"].tolist() == [404, 404]
    assert "4 rows are written to" in str(err) and "again" in str(err)
    back = pd.read_parquet(tmp_path)
    assert sorted(back["index"]) == ["a", "b", "d", "f"]
    assert sorted(back["name"]) == ["User 1", "User 2", "User 3", "User 4"]


def test_schema_drift_across_batches_reads_back_whole(server: TestServer, tmp_path: Path) -> None:
    def body(row: pd.Series) -> dict[str, object]:
        i = int(row["id"])
        if i < 10:  # first batches: an int, a column that is always null
            return {"a": i, "n": None}
        if i < 20:  # then a float, a value where there was null
            return {"a": i + 0.5, "n": f"t{i}"}
        return {"a": i, "n": None, "late": f"z{i}"}  # and a column that appears late

    for partition_cols in (None, ["sym"]):
        path = tmp_path / f"p{partition_cols is not None}"
        _ids(30).aapi.to_parquet(
            path, f"{server.url}/echo", method="POST", json=body, batch_size=5,
            partition_cols=partition_cols,
        )  # fmt: skip
        back = pd.read_parquet(path).sort_values("id").reset_index(drop=True)
        assert len(back) == 30 and back["id"].tolist() == list(range(30))
        assert back["json.a"].dtype == "float64"
        assert back.loc[12, "json.a"] == 12.5 and back.loc[3, "json.a"] == 3
        assert back["json.n"].isna().sum() == 20 and back.loc[15, "json.n"] == "t15"
        assert back["json.late"].isna().sum() == 20 and back.loc[25, "json.late"] == "z25"
        if partition_cols:
            assert sorted(back["sym"].astype(str).unique()) == ["S0", "S1", "S2", "S3"]
            assert (path / "sym=S0").is_dir()


def test_schema_fixes_the_file_types(server: TestServer, tmp_path: Path) -> None:
    frame = pd.DataFrame({"v": [1, 2, 3, 4]}, index=[10, 11, 12, 13])
    schema = pa.schema([("json.x", pa.int32()), ("json.t", pa.string())])
    frame.aapi.to_parquet(
        tmp_path, f"{server.url}/echo", method="POST", json={"x": "{v}", "t": "t{v}", "y": 1},
        schema=schema, batch_size=2,
    )  # fmt: skip
    data_file = next(tmp_path.glob("part-*.parquet"))
    file_schema = pq.read_schema(data_file)
    assert file_schema.field("json.x").type == pa.int32()
    assert "json.y" not in file_schema.names
    back = pd.read_parquet(tmp_path)
    assert sorted(back.columns) == ["index", "json.t", "json.x", "v"]


def test_a_value_that_does_not_fit_the_schema_is_not_written(
    server: TestServer, tmp_path: Path
) -> None:
    frame = pd.DataFrame({"v": ["1", "x", "3"]})
    with pytest.raises(pandas_async.FetchError, match="column 'n'") as info:
        frame.aapi.to_parquet(
            tmp_path, f"{server.url}/record", params={"n": "{v}"}, schema={"n": "Int64"}
        )
    assert info.value.frame.index.tolist() == [1]
    assert sorted(pd.read_parquet(tmp_path)["n"]) == [1, 3]


def test_bad_arguments_fail_before_any_request_or_folder(
    server: TestServer, tmp_path: Path
) -> None:
    frame = _ids(3)
    url = f"{server.url}/record"
    target = tmp_path / "never"
    for bad, error in [
        ({"batch_size": 0}, ValueError),
        ({"key": "nope"}, KeyError),
        ({"key": 3}, TypeError),
        ({"concurrency": 0}, ValueError),
        ({"schema": ["x"]}, TypeError),
        ({"partition_cols": ["zz"], "schema": {"n": "string"}}, ValueError),
    ]:
        with pytest.raises(error):
            frame.aapi.to_parquet(target, url, **bad)  # type: ignore[arg-type]
    dupes = pd.DataFrame({"id": [1, 2]}, index=[0, 0])
    with pytest.raises(ValueError, match="one key per row"):
        dupes.aapi.to_parquet(target, url)
    assert not target.exists() and server.requests == []
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="did not write"):
        frame.aapi.to_parquet(foreign, url)
    assert (foreign / "notes.txt").read_text() == "mine"


def test_orphan_files_of_a_killed_batch_are_cleaned_before_resuming(
    server: TestServer, tmp_path: Path
) -> None:
    frame = _ids(10)
    url = f"{server.url}/record"
    frame.iloc[:5].aapi.to_parquet(tmp_path, url, params={"x": "{id}"})
    # what a kill between "rename into place" and "commit" leaves: a visible, uncommitted file
    orphan = frame.iloc[5:7].assign(index=[5, 6], x=["5", "6"])
    orphan[["index", "id", "sym", "x"]].to_parquet(tmp_path / "part-dead-000001-0.parquet")
    (tmp_path / ".part-dead-000002-0.parquet").write_bytes(b"half a file")
    frame.aapi.to_parquet(tmp_path, url, params={"x": "{id}"})
    assert not (tmp_path / "part-dead-000001-0.parquet").exists()
    assert not (tmp_path / ".part-dead-000002-0.parquet").exists()
    back = pd.read_parquet(tmp_path)
    assert sorted(back["id"]) == list(range(10))


_CHILD = textwrap.dedent(
    """
    import sys
    import numpy as np, pandas as pd
    import pandas_async
    url, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    frame = pd.DataFrame({"id": np.arange(n), "sym": [f"S{i % 4}" for i in range(n)]})
    frame.aapi.to_parquet(path, url + "/slow", params={"delay": "0.02", "id": "{id}"},
                          batch_size=20, concurrency=10, partition_cols=["sym"], progress=False)
    """
)


@pytest.mark.subprocess
def test_sigkill_mid_run_leaves_a_readable_dataset_and_resume_completes_it(
    server: TestServer, tmp_path: Path
) -> None:
    n, batch, concurrency = 600, 20, 10
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, server.url, str(tmp_path), str(n)],
        env=env, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while len(_commits(tmp_path)) < 3 if tmp_path.exists() else True:
        assert child.poll() is None, child.stderr.read() if child.stderr else ""
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.05)  # somewhere in the middle of a later batch
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL
    first = {int(r.query["id"]) for r in server.requests_to("/slow")}
    assert len(first) < n, "the child finished before it was killed"

    killed = pd.read_parquet(tmp_path)  # readable as it was left, no row twice
    assert killed["id"].is_unique
    committed = sum(json.loads(c.read_text())["rows"] for c in _commits(tmp_path))

    server.reset()
    pd.DataFrame({"id": np.arange(n), "sym": [f"S{i % 4}" for i in range(n)]}).aapi.to_parquet(
        tmp_path, f"{server.url}/slow", params={"delay": "0.02", "id": "{id}"},
        batch_size=batch, concurrency=concurrency, partition_cols=["sym"],
    )  # fmt: skip
    second = [int(r.query["id"]) for r in server.requests_to("/slow")]
    assert len(second) == n - committed  # exactly the rows no commit holds
    again = first & set(second)  # fetched before the kill, but not yet committed
    assert len(again) <= 2 * batch + concurrency  # the batch being written and the one filling
    back = pd.read_parquet(tmp_path)
    assert sorted(back["id"]) == list(range(n))  # each key exactly once


_MEMORY_CHILD = textwrap.dedent(
    """
    import resource, sys
    import numpy as np, pandas as pd
    import pandas_async
    url, path, n, batch, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), *sys.argv[4:]
    frame = pd.DataFrame({"id": np.arange(n)})
    frame.aapi.to_parquet(path, url + "/blob", params={"id": "{id}", "size": size},
                          batch_size=int(batch), concurrency=50, progress=False)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux
    """
)


def _peak_rss(server: TestServer, path: Path, n: int, *, batch: int, size: int = 2_000) -> int:
    """Peak RSS in bytes of a child process writing ``n`` rows of ``size``-byte answers."""
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_CHILD, server.url, str(path), str(n), str(batch), str(size)],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert len(pd.read_parquet(path, columns=["id"])) == n
    return int(out.stdout.split()[-1]) * 1024


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.timeout(900)
def test_peak_memory_does_not_grow_with_the_batch_size(server: TestServer, tmp_path: Path) -> None:
    # A batch of 20,000 rows is the whole run: had its answers (8 KB each) been held until the
    # batch was written, the peak would grow by 160 MB or more (it did: 166 MB). They are
    # written a slice of SLICE_ROWS at a time as rows complete: only the requests of a batch
    # (well under 1 KB a row) grow with it.
    n, size = 20_000, 8_000
    peaks = {b: _peak_rss(server, tmp_path / str(b), n, batch=b, size=size) for b in (2_000, n)}
    # +12-18 MB alone; +41 MB once in a full CI run on the loaded 2-core machine. Holding the
    # batch's answers costs 160 MB or more, so 0.4 of them (64 MB) still tells the two apart.
    assert peaks[n] - peaks[2_000] < 0.4 * n * size, peaks


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.timeout(900)
def test_peak_memory_is_bounded_by_the_batch_not_the_rows(
    server: TestServer, tmp_path: Path
) -> None:
    peaks = {n: _peak_rss(server, tmp_path / str(n), n, batch=1_000) for n in (4_000, 40_000)}
    growth = peaks[40_000] - peaks[4_000]
    answers = 36_000 * 2_000  # the extra answers' bytes, had they been held in memory
    # Left per row: its key hash, its latency and its attempts' times (~40 bytes), and the
    # allocator's noise. Measured: +6 MB; +12 MB while an outcome per row was kept.
    assert growth < 0.2 * answers, peaks


def test_a_batch_is_written_in_slices_and_committed_once(
    server: TestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pandas_async._sink as sink

    monkeypatch.setattr(sink, "SLICE_ROWS", 3)  # slices of 3 rows within batches of 10
    frame = pd.DataFrame({"id": [i % 4 for i in range(25)]})  # rows share answers (dedupe)
    frame.aapi.to_parquet(tmp_path, f"{server.url}/record", params={"x": "{id}"}, batch_size=10)
    commits = [json.loads(c.read_text()) for c in _commits(tmp_path)]
    assert [c["rows"] for c in commits] == [10, 10, 5]
    assert [len(c["files"]) for c in commits] == [4, 4, 2]
    back = pd.read_parquet(tmp_path).sort_values("index")
    assert back["index"].tolist() == list(range(25))
    assert back["x"].tolist() == [str(i % 4) for i in range(25)]
    assert len(server.requests) == 12  # 4 distinct per batch of 10 (dedupe is per batch)


def test_a_run_keeps_no_outcome_per_row(
    server: TestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc

    import pandas_async._sink as sink
    from pandas_async._outcome import Outcome

    live: list[int] = []
    commit = sink.BatchWriter._commit

    def counting(self: sink.BatchWriter, batch: sink._Batch) -> None:
        gc.collect()  # what is still reachable
        live.append(sum(isinstance(o, Outcome) for o in gc.get_objects()))
        commit(self, batch)

    monkeypatch.setattr(sink.BatchWriter, "_commit", counting)
    n, batch = 3_000, 100
    report = _ids(n).aapi.to_parquet(
        tmp_path, f"{server.url}/record", params={"x": "{id}"}, batch_size=batch, concurrency=10
    )
    assert len(live) == n // batch
    # Two batches of requests are under way at most: their outcomes, and none kept for the
    # report (it is counted as rows complete). Keeping them all would reach ~3,000 by the end.
    assert max(live) < 5 * batch, live
    assert (report.rows, report.ok_rows, report.requests, report.distinct) == (n, n, n, n)
    assert len(report.latencies) == n and report.statuses == {200: n}


@pytest.mark.subprocess
def test_a_folder_without_partitions_never_imports_pyarrow_dataset(
    server: TestServer, tmp_path: Path
) -> None:
    # pyarrow.dataset (and the Acero libraries behind it) cost ~7 MiB of RSS for the whole run:
    # a folder without partition_cols gets one file per slice from pyarrow.parquet instead.
    child = textwrap.dedent(
        """
        import sys
        import pandas as pd
        import pandas_async
        pd.DataFrame({"id": range(30)}).aapi.to_parquet(
            sys.argv[2], sys.argv[1] + "/record", params={"x": "{id}"}, batch_size=10
        )
        print("pyarrow.dataset" in sys.modules)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", child, server.url, str(tmp_path / "out")],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert out.stdout.split()[-1] == "False"
    back = pd.read_parquet(tmp_path / "out")
    assert sorted(back["id"]) == list(range(30)) and sorted(back["index"]) == list(range(30))


def test_streaming_keeps_the_collection_threshold_as_it_is(
    server: TestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fetch raises the young-generation threshold while it runs (fewer collections); streaming
    # does not: the cyclic garbage a raised threshold lets pile up (~10 MiB measured) would count
    # against memory bounded by the batch.
    import gc

    import pandas_async._sink as sink

    seen: list[int] = []
    write = sink.BatchWriter._write_slice

    def looking(self: sink.BatchWriter, batch: sink._Batch, part: list[Any]) -> None:
        seen.append(gc.get_threshold()[0])
        write(self, batch, part)

    monkeypatch.setattr(sink.BatchWriter, "_write_slice", looking)
    before = gc.get_threshold()
    _ids(40).aapi.to_parquet(tmp_path, f"{server.url}/record", params={"x": "{id}"}, batch_size=10)
    assert len(seen) == 4 and set(seen) == {before[0]} and gc.get_threshold() == before
