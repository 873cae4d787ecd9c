"""cache= and cache_ttl=: answers kept on disk, against the suite's real server.

Every test counts what the server saw: a cache hit is a request the server never received.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from urllib.parse import quote, quote_plus

import httpx
import pandas as pd
import pytest

import pandas_async
from pandas_async._cache import FILE_NAME, AnswerCache, default_cache_folder
from pandas_async._outcome import Answer
from pandas_async._requests import RequestSpec
from tests.helpers import unique, users_frame
from tests.server import TestServer

ROOT = Path(__file__).resolve().parents[1]


def cache_bytes(folder: Path) -> bytes:
    """Every byte of every file in the cache folder (the database, and a WAL if one is left)."""
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


def entries(folder: Path) -> int:
    with sqlite3.connect(folder / FILE_NAME) as db:
        return int(db.execute("SELECT count(*) FROM answers").fetchone()[0])


def report() -> pandas_async.Report:
    found = pandas_async.last_report()
    assert found is not None
    return found


def test_rerun_sends_nothing_and_gives_the_same_frame(server: TestServer, tmp_path: Path) -> None:
    frame = users_frame([1, 2, 3, 2])
    url = server.url + "/users/{user_id}"
    first = frame.aapi.fetch(url, cache=tmp_path)
    assert server.count("/users") == 3
    assert report().cache_hits == 0 and report().requests == 3

    server.reset()
    again = frame.aapi.fetch(url, cache=tmp_path)
    assert server.count() == 0
    pd.testing.assert_frame_equal(again, first)
    assert report().cache_hits == 3 and report().requests == 0
    assert "3 answers read from disk" in str(report())
    assert report().to_dict()["cache_hits"] == 3


def test_hits_wait_for_no_rate_limit(server: TestServer, tmp_path: Path) -> None:
    frame = users_frame([1, 2, 3])
    url = server.url + "/users/{user_id}"
    frame.aapi.fetch(url, cache=tmp_path)
    started = time.monotonic()
    # One request a minute: three rows would take two minutes if a hit waited for its turn.
    frame.aapi.fetch(url, cache=tmp_path, rate="1/min", concurrency=1)
    assert time.monotonic() - started < 10
    assert server.count() == 3


def test_no_cache_option_counts_no_hits(server: TestServer) -> None:
    users_frame([1]).aapi.fetch(server.url + "/users/{user_id}")
    assert report().cache_hits is None
    assert "cache" not in str(report()).split("\n", 2)[2]


def test_cache_true_uses_the_user_cache_folder(
    server: TestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if sys.platform in ("win32", "darwin"):
        pytest.skip("XDG_CACHE_HOME is the rule on Linux and other Unixes")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_folder() == tmp_path / "pandas-async"
    users_frame([1]).aapi.fetch(server.url + "/users/{user_id}", cache=True)
    assert entries(tmp_path / "pandas-async") == 1
    users_frame([1]).aapi.fetch(server.url + "/users/{user_id}", cache=True)
    assert server.count() == 1
    # Readable by the user only: answers may be private.
    assert (tmp_path / "pandas-async" / FILE_NAME).stat().st_mode & 0o077 == 0


def test_ttl_expired_entries_are_fetched_again(server: TestServer, tmp_path: Path) -> None:
    frame = users_frame([1, 2])
    url = server.url + "/users/{user_id}"
    frame.aapi.fetch(url, cache=tmp_path)
    frame.aapi.fetch(url, cache=tmp_path, cache_ttl=60)
    assert server.count() == 2  # young enough: served from disk
    time.sleep(0.3)
    before = time.time()
    frame.aapi.fetch(url, cache=tmp_path, cache_ttl=0.2)
    assert server.count() == 4  # older than 0.2 s: sent again
    assert report().cache_hits == 0
    with sqlite3.connect(tmp_path / FILE_NAME) as db:  # ...and replaced by the fresh answers
        assert min(s for (s,) in db.execute("SELECT stored FROM answers")) >= before
    frame.aapi.fetch(url, cache=tmp_path, cache_ttl=pd.Timedelta(minutes=1))
    assert server.count() == 4


def test_failures_are_never_cached(server: TestServer, tmp_path: Path) -> None:
    key = unique("flaky")
    frame = pd.DataFrame(
        {
            "url": [
                f"{server.url}/flaky/{key}?fail=1&status=500",
                f"{server.url}/users/5000",  # 404
                f"{server.url}/badjson",  # 200, but parse="json" fails
                f"{server.url}/users/7",
            ]
        }
    )
    first = frame["url"].aapi.fetch(cache=tmp_path, retries=0, errors="collect")
    assert first["_status"].tolist() == [500, 404, 200, 200]
    assert entries(tmp_path) == 1  # only /users/7

    seen = len(server.requests)  # no reset: /flaky counts its calls per key
    second = frame["url"].aapi.fetch(cache=tmp_path, retries=0, errors="collect")
    sent = sorted(r.path for r in server.requests[seen:])
    assert sent == ["/badjson", f"/flaky/{key}", "/users/5000"]
    assert second["_status"].tolist() == [200, 404, 200, 200]
    assert report().cache_hits == 1

    seen = len(server.requests)
    frame["url"].aapi.fetch(cache=tmp_path, retries=0, errors="collect")
    assert sorted(r.path for r in server.requests[seen:]) == ["/badjson", "/users/5000"]


def test_other_methods_are_not_cached(server: TestServer, tmp_path: Path) -> None:
    frame = pd.DataFrame({"k": [1]})
    for _ in range(2):
        frame.aapi.fetch(server.url + "/echo", method="POST", cache=tmp_path)
    assert server.count("/echo") == 2
    assert entries(tmp_path) == 0


def test_head_answers_are_cached(server: TestServer, tmp_path: Path) -> None:
    frame = pd.DataFrame({"k": [1]})
    for _ in range(2):
        out = frame.aapi.fetch(server.url + "/users/1", method="HEAD", cache=tmp_path)
    assert server.count() == 1
    assert out.columns.tolist() == ["k"]


def test_credentials_never_share_an_answer(server: TestServer, tmp_path: Path) -> None:
    frame = users_frame([1])
    url = server.url + "/users/{user_id}"
    frame.aapi.fetch(url, cache=tmp_path, headers={"Authorization": "Bearer token-of-alice"})
    frame.aapi.fetch(url, cache=tmp_path, headers={"Authorization": "Bearer token-of-bob"})
    frame.aapi.fetch(url, cache=tmp_path, params={"api_key": "key-of-alice"})
    frame.aapi.fetch(url, cache=tmp_path, params={"api_key": "key-of-bob"})
    frame.aapi.fetch(url, cache=tmp_path)  # no credential at all
    assert server.count() == 5
    # Header names are case-insensitive: the same credential is the same entry.
    frame.aapi.fetch(url, cache=tmp_path, headers={"authorization": "Bearer token-of-bob"})
    assert server.count() == 5


def test_clients_with_different_auth_never_share(server: TestServer, tmp_path: Path) -> None:
    frame = users_frame([1, 2])
    url = server.url + "/users/{user_id}"

    async def run(client: httpx.AsyncClient) -> None:
        async with client:
            await frame.aapi.afetch(url, cache=tmp_path, client=client)

    asyncio.run(run(httpx.AsyncClient(auth=("alice", "pw-of-alice"))))
    asyncio.run(run(httpx.AsyncClient(auth=("bob", "pw-of-bob"))))
    asyncio.run(run(httpx.AsyncClient(headers={"X-Api-Key": "key-of-carol"})))
    asyncio.run(run(httpx.AsyncClient()))
    assert server.count() == 8
    asyncio.run(run(httpx.AsyncClient(auth=("bob", "pw-of-bob"))))  # a new client, same auth
    assert server.count() == 8
    assert b"pw-of-bob" not in cache_bytes(tmp_path)


SECRETS = ["Bearer s3cr3t/+tok=en", "k3y &sec=ret/+", "pa55 w0rd?&"]


def _secret_forms(secret: str) -> list[bytes]:
    forms = {secret, quote(secret, safe=""), quote(secret), quote_plus(secret)}
    forms |= {part for part in secret.split(" ") if len(part) >= 4}
    return [f.encode() for f in forms]


def test_no_secret_in_any_cache_file(server: TestServer, tmp_path: Path) -> None:
    frame = users_frame([1, 2, 3])
    options = {
        "headers": {"Authorization": SECRETS[0], "Cookie": f"session={SECRETS[2]}"},
        "params": {"api_key": SECRETS[1]},
    }
    frame.aapi.fetch(server.url + "/users/{user_id}", cache=tmp_path, **options)
    # An answer that echoes the request's secrets (query, headers) is not kept at all.
    pd.DataFrame({"k": [1]}).aapi.fetch(server.url + "/echo", cache=tmp_path, **options)
    # A redirect whose target carries the key in its query.
    target = "/users/4?" + httpx.QueryParams({"token": SECRETS[1]}).__str__()
    pd.DataFrame({"k": [1]}).aapi.fetch(
        server.url + "/redirect", params={"to": target}, cache=tmp_path
    )
    assert entries(tmp_path) == 3
    stored = cache_bytes(tmp_path)
    assert stored  # the test reads real files
    for secret in SECRETS:
        for form in _secret_forms(secret):
            assert form not in stored, form
    # And the kept answers still serve the re-run.
    server.reset()
    frame.aapi.fetch(server.url + "/users/{user_id}", cache=tmp_path, **options)
    assert server.count() == 0


def test_set_cookie_is_not_kept(server: TestServer, tmp_path: Path) -> None:
    async def run() -> None:
        async with httpx.AsyncClient() as client:
            client.cookies.set("sessionid", "cookie-s3cret-value")
            await users_frame([1]).aapi.afetch(
                server.url + "/users/{user_id}", cache=tmp_path, client=client
            )

    asyncio.run(run())
    assert entries(tmp_path) == 1
    assert b"cookie-s3cret-value" not in cache_bytes(tmp_path)


def test_parsers_work_from_the_cache(server: TestServer, tmp_path: Path) -> None:
    def length_and_type(response: httpx.Response) -> dict[str, object]:
        return {
            "length": len(response.content),
            "type": response.headers["content-type"],
            "url": str(response.url),
        }

    cases: list[tuple[str, dict[str, object]]] = [
        ("/text?value=hello", {"parse": "text"}),
        ("/csv?n=3", {"parse": "csv"}),
        ("/users/3", {"parse": "bytes"}),
        ("/users/4?x=1", {"parse": length_and_type}),
        ("/redirect?to=/users/5", {"parse": length_and_type}),
        ("/nested-list?n=2", {"record_path": "data", "meta": ["total"]}),
    ]
    for path, options in cases:
        frame = pd.DataFrame({"url": [server.url + path]})
        server.reset()
        first = frame["url"].aapi.fetch(cache=tmp_path, **options)  # type: ignore[arg-type]
        assert server.count() > 0
        server.reset()
        again = frame["url"].aapi.fetch(cache=tmp_path, **options)  # type: ignore[arg-type]
        assert server.count() == 0, path
        pd.testing.assert_frame_equal(again, first)


@pytest.mark.parametrize(
    ("paginate", "path"),
    [
        (pandas_async.PageNumber("page", size_param="size", size=2), "/pages/{key}"),
        (pandas_async.LinkHeader(), "/link/{key}?size=2"),
        (pandas_async.Cursor("cursor", next_path="next_cursor"), "/cursor/{key}?size=2"),
    ],
)
def test_pages_are_cached(
    server: TestServer, tmp_path: Path, paginate: pandas_async.Paginator, path: str
) -> None:
    frame = pd.DataFrame({"key": [unique("p"), unique("p")]})
    url = server.url + path
    record_path = "data" if isinstance(paginate, pandas_async.Cursor) else None
    first = frame.aapi.fetch(url, paginate=paginate, record_path=record_path, cache=tmp_path)
    sent = server.count()
    assert sent >= 6 and len(first) == 10  # 5 records per key, 2 per page
    server.reset()
    again = frame.aapi.fetch(url, paginate=paginate, record_path=record_path, cache=tmp_path)
    assert server.count() == 0
    assert report().cache_hits == sent
    pd.testing.assert_frame_equal(again, first)


_WRITER = textwrap.dedent(
    """
    import sys, time
    import pandas as pd
    import pandas_async
    base, folder, start, first, last = sys.argv[1:6]
    frame = pd.DataFrame({"user_id": range(int(first), int(last))})
    time.sleep(max(0.0, float(start) - time.time()))  # both processes start together
    frame.aapi.fetch(
        base + "/users/{user_id}", cache=folder, concurrency=20, progress=False, timeout=60,
        retries=pandas_async.Retry(attempts=5, backoff=0.05),
    )  # generous: a loaded CI machine must not fail a row
    report = pandas_async.last_report()
    print(report.ok_rows, report.cache_hits)  # one may read what the other already kept
    """
)


@pytest.mark.subprocess
def test_two_processes_share_one_folder(server: TestServer, tmp_path: Path) -> None:
    folder = tmp_path / "shared"  # created by the processes themselves, at the same moment
    start = str(time.time() + 3.0)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ranges = [(1, 401), (200, 601)]  # overlapping: both write ids 200..400
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, server.url, str(folder), start, str(a), str(b)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for a, b in ranges
    ]
    for child, (a, b) in zip(children, ranges, strict=True):
        out, err = child.communicate(timeout=240)
        assert child.returncode == 0, err
        ok_rows, _hits = map(int, out.split())
        assert ok_rows == b - a
    assert entries(folder) == 600
    with sqlite3.connect(folder / FILE_NAME) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    server.reset()
    out = users_frame(list(range(1, 601))).aapi.fetch(server.url + "/users/{user_id}", cache=folder)
    assert server.count() == 0
    assert out["name"].tolist() == [f"User {n}" for n in range(1, 601)]


def test_bad_cache_options_fail_before_any_request(server: TestServer, tmp_path: Path) -> None:
    frame = users_frame([1])
    url = server.url + "/users/{user_id}"
    with pytest.raises(TypeError, match="cache="):
        frame.aapi.fetch(url, cache=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cache="):
        frame.aapi.fetch(url, cache="")
    with pytest.raises(ValueError, match="cache_ttl="):
        frame.aapi.fetch(url, cache=tmp_path, cache_ttl=-1)
    with pytest.raises(TypeError, match="cache_ttl="):
        frame.aapi.fetch(url, cache=tmp_path, cache_ttl="1h")  # type: ignore[arg-type]
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    with pytest.raises(OSError, match="cache="):
        frame.aapi.fetch(url, cache=a_file)
    assert server.count() == 0


def test_to_parquet_reads_the_cache_too(server: TestServer, tmp_path: Path) -> None:
    frame = users_frame([1, 2, 3])
    url = server.url + "/users/{user_id}"
    frame.aapi.to_parquet(tmp_path / "first", url, cache=tmp_path / "cache")
    assert server.count() == 3
    report = frame.aapi.to_parquet(tmp_path / "second", url, cache=tmp_path / "cache")
    assert server.count() == 3
    assert report.cache_hits == 3
    written = pd.read_parquet(tmp_path / "second")
    assert sorted(written["name"]) == ["User 1", "User 2", "User 3"]


def test_a_row_that_cannot_be_sent_is_not_looked_up(server: TestServer, tmp_path: Path) -> None:
    frame = pd.DataFrame({"user_id": [1, 2], "note": [b"ok", b"\xff\xfe"]})  # not UTF-8
    url = server.url + "/users/{user_id}"
    for _ in range(2):
        out = frame.aapi.fetch(url, params={"note": "{note}"}, cache=tmp_path, errors="collect")
        assert out["_status"].tolist()[0] == 200 and out["_error"].notna().tolist() == [False, True]
    assert server.count() == 1


def test_large_answers_are_written_before_the_batch_is_full(tmp_path: Path) -> None:
    cache = AnswerCache(tmp_path)
    body = b"x" * (7 * 1024 * 1024)
    try:
        for i in range(3):  # 21 MB waiting: over the 16 MB a batch may hold in memory
            spec = RequestSpec("GET", f"http://127.0.0.1:1/big/{i}")
            cache.put(spec, Answer(200, "OK", {}, body, "GET", spec.url))
        assert entries(tmp_path) == 3  # committed while the cache is still open
    finally:
        cache.close()
