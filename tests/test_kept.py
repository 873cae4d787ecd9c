"""Issue 13: a cached re-run answers kept rows in bulk, before any row enters the engine.

Against the suite's real server: what it counts is what was sent. The frames must be exactly the
ones a call without the cache returns, whichever way the kept rows are read (looked up by key, or
the whole file read in order when most of it is wanted).
"""

from __future__ import annotations

import gc
import hashlib
from pathlib import Path

import pandas as pd
import pytest

import pandas_async
from pandas_async._cache import _FORMAT, AnswerCache
from pandas_async._options import UNSET
from pandas_async._requests import RequestSpec, freeze
from tests.helpers import users_frame
from tests.server import TestServer


def _report() -> pandas_async.Report:
    found = pandas_async.last_report()
    assert found is not None
    return found


@pytest.mark.parametrize("kept", [3, 30])  # few kept rows: look-ups; most: the file in order
def test_some_rows_kept_only_the_others_sent(server: TestServer, tmp_path: Path, kept: int) -> None:
    url = server.url + "/users/{user_id}"
    users_frame(list(range(1, 41))).aapi.fetch(url, cache=tmp_path)  # 40 entries on disk
    cache = AnswerCache(tmp_path)
    try:
        assert cache.scan_pays(kept + 5) == (kept == 30)
    finally:
        cache.close()
    ids = list(range(1, kept + 1)) + list(range(100, 105))  # kept rows, then 5 new ones
    frame = users_frame(ids[::-1], index=[f"r{i}" for i in range(len(ids))])  # mixed order
    expected = frame.aapi.fetch(url)
    server.reset()
    got = frame.aapi.fetch(url, cache=tmp_path)
    assert server.count() == 5  # only the rows not kept
    pd.testing.assert_frame_equal(got, expected)
    assert _report().cache_hits == kept and _report().requests == 5
    server.reset()
    pd.testing.assert_frame_equal(frame.aapi.fetch(url, cache=tmp_path), expected)
    assert server.count() == 0  # the 5 sent rows were kept by the engine


@pytest.mark.parametrize("dedupe", [True, False])
def test_repeated_rows_share_a_hit_as_they_share_a_request(
    server: TestServer, tmp_path: Path, dedupe: bool
) -> None:
    url = server.url + "/users/{user_id}"
    frame = users_frame([1, 2, 1, 1, 2])
    first = frame.aapi.fetch(url, cache=tmp_path, dedupe=dedupe)
    assert _report().requests == (2 if dedupe else 5)
    server.reset()
    again = frame.aapi.fetch(url, cache=tmp_path, dedupe=dedupe, errors="collect")
    assert server.count() == 0
    assert _report().cache_hits == (2 if dedupe else 5)
    assert again["_attempts"].tolist() == [0] * 5  # nothing was sent for any row
    pd.testing.assert_frame_equal(again.drop(columns=["_status", "_error", "_elapsed",
                                                      "_attempts"]), first)  # fmt: skip


def test_a_kept_answer_the_parser_cannot_read_is_asked_again(
    server: TestServer, tmp_path: Path
) -> None:
    """A notebook changes parse= between runs: the kept text is not JSON, so the row is sent
    again (and fails as the fresh answer would), rather than failing on a stale copy."""
    frame = pd.DataFrame({"url": [server.url + "/text?value=hello", server.url + "/users/1"]})
    frame["url"].aapi.fetch(cache=tmp_path, parse="text")
    server.reset()
    out = frame["url"].aapi.fetch(cache=tmp_path, errors="collect")
    assert server.count() == 1  # the text answer only; the JSON one was read from disk
    assert out["_error"].tolist()[0].startswith("invalid JSON")
    assert out["name"].tolist()[1] == "User 1"
    assert _report().cache_hits == 1


@pytest.mark.parametrize("enabled", [True, False])
def test_the_garbage_collector_is_left_as_it_was(
    server: TestServer, tmp_path: Path, enabled: bool
) -> None:
    url = server.url + "/users/{user_id}"
    users_frame([1, 2]).aapi.fetch(url, cache=tmp_path)
    try:
        if not enabled:
            gc.disable()
        users_frame([1, 2]).aapi.fetch(url, cache=tmp_path)
        assert _report().cache_hits == 2
        assert gc.isenabled() == enabled
        assert gc.get_freeze_count() == 0  # the answers set aside during the call are back
    finally:
        gc.enable()


def test_the_quick_key_is_the_canonical_key(tmp_path: Path) -> None:
    """The usual GET's key is built without repr() of a tuple: it must be the same bytes, so
    folders filled before keep answering."""
    cache = AnswerCache(tmp_path)
    try:
        for url in ["http://127.0.0.1:9/users/1", "http://h/é?x='1'", 'http://h/"q"\\', "h\udc80"]:
            for method in ("GET", "HEAD"):
                spec = RequestSpec(method, url)
                canonical = (_FORMAT, method, url, None, None, "-", None, None)
                text = repr(canonical).encode("utf-8", "surrogatepass")
                assert cache.key(spec) == hashlib.sha256(text).digest()
        spec = RequestSpec("GET", "http://h/", params={"a": 1}, headers={"X-K": "v"}, json=[1])
        canonical = (_FORMAT, "GET", "http://h/", freeze({"a": 1}), [("x-k", "v")],
                     freeze([1]), None, None)  # fmt: skip
        text = repr(canonical).encode("utf-8", "surrogatepass")
        assert cache.key(spec) == hashlib.sha256(text).digest()
        assert cache.key(RequestSpec("GET", "http://h/", json=UNSET)) != cache.key(
            RequestSpec("GET", "http://h/", json=None)
        )
    finally:
        cache.close()
