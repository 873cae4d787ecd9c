"""The per-request fast path (issue 16): URLs built a column at a time, one coroutine per request
when nothing paces or holds its host, and a call's garbage collection. Each shortcut must give
exactly what the ordinary path gives, and step aside the moment a limit applies."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pandas as pd
import pytest
from multidict import CIMultiDict, CIMultiDictProxy

import pandas_async
from pandas_async._heap import CALL_THRESHOLD
from pandas_async._limiter import Limiter
from pandas_async._options import Rate
from pandas_async._outcome import Outcome
from pandas_async._requests import RequestSpec, Template, build_requests
from pandas_async._rows import RowQueue
from tests.helpers import fast_retry
from tests.server import TestServer

CLOCK_TOLERANCE = 0.05

VALUES: list[Any] = [
    7, -3, 12.0, 2.5, "a b/c?d#e%f", ".", "..", "...", "é🙂", b"bytes", True, "", "x" * 50,
]  # fmt: skip


@pytest.mark.parametrize(
    "source",
    [
        "https://h/users/{v}",
        "https://h/users/{v}/posts",
        "https://h/{v}/{w}?x=1",
        "{v}",
        "https://h/x/{v}-{w}.json",
    ],
)
def test_urls_built_a_column_at_a_time_match_row_by_row(source: str) -> None:
    template = Template(source)
    columns = {"v": VALUES, "w": list(reversed(VALUES))}
    rows = [{"v": v, "w": w} for v, w in zip(VALUES, reversed(VALUES), strict=True)]
    expected = [template.render(row, encode=True) for row in rows]
    assert template.render_all(columns, len(VALUES)) == expected


def test_a_value_that_is_not_text_fails_its_row_only() -> None:
    df = pd.DataFrame({"v": [1, b"\xff\xfe", "ok"]})
    options = pandas_async._options.FetchOptions.build("fetch", {})
    specs = build_requests(df, "https://h/users/{v}", options)
    assert [s.url for s in specs] == ["https://h/users/1", "", "https://h/users/ok"]
    assert specs[1].problem is not None and "not UTF-8" in (specs[1].problem.error or "")


def test_a_shared_host_is_worked_out_once_and_right() -> None:
    df = pd.DataFrame({"v": [1, 2]})
    options = pandas_async._options.FetchOptions.build("fetch", {})
    for url, host in [
        ("https://user:pw@api.example.com:8443/u/{v}", "api.example.com:8443"),
        ("https://api.example.com?id={v}", "api.example.com"),
        ("https://{v}.example.com/x", None),  # the field is in the host: one per row
    ]:
        specs = build_requests(df, url, options)
        assert Template(url).fixed_host == host
        assert [s.host for s in specs] == [RequestSpec(s.method, s.url).host for s in specs]
        assert specs[0].host in ("api.example.com:8443", "api.example.com", "1.example.com")


def test_admit_now_only_when_nothing_paces_or_holds_the_host() -> None:
    now = [100.0]
    limiter = Limiter(None, None, 60.0, clock=lambda: now[0], wall=lambda: 0.0)
    ticket = limiter.admit_now("h")
    assert ticket is not None
    limiter.after_answer(ticket, 429, {"retry-after": "2"})  # the host asks for a pause
    assert limiter.admit_now("h") is None  # paused: the ordinary path waits it out
    assert limiter.admit_now("other") is not None  # other hosts are not held
    now[0] += 2.5
    assert limiter.admit_now("h") is None  # over, but it is now paced and needs a probe
    paced = Limiter(Rate(10, 1.0), None, 60.0)
    assert paced.admit_now("h") is None  # a rate: every send goes through the window


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        (200, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "30"}),  # a quota used up
        (200, {"RateLimit": '"default";r=0;t=30'}),
        (200, {"RateLimit-Remaining": "0", "RateLimit-Reset": "30"}),
        (429, {"Retry-After": "30"}),
        (503, {"Retry-After": "30"}),
        (418, {"Retry-After": "30"}),
    ],
)
def test_the_fast_answer_path_still_hears_every_limit(status: int, headers: dict[str, str]) -> None:
    # A plain 200 skips the limiter's bookkeeping and the queue hands rows out without asking
    # for holds; an answer that says "wait" (as the server spells it) must still hold the host.
    now = [100.0]
    limiter = Limiter(None, None, 60.0, clock=lambda: now[0], wall=lambda: 0.0)
    jobs = [(RequestSpec("GET", f"https://h/{i}"), [i]) for i in range(3)]
    queue = RowQueue(jobs, limiter, finish=lambda rows, outcome: asyncio.sleep(0))
    ok = limiter.admit_now("h")
    assert ok is not None
    limiter.after_answer(ok, 200, CIMultiDictProxy(CIMultiDict({"Content-Type": "text/plain"})))
    assert limiter.calm and limiter.hold("h").ready and queue.take() is jobs[0]
    ticket = limiter.admit_now("h")
    assert ticket is not None
    limiter.after_answer(ticket, status, CIMultiDictProxy(CIMultiDict(headers)))
    assert not limiter.calm and not limiter.hold("h").ready
    assert limiter.admit_now("h") is None and queue.take() is None  # the full path decides


def test_a_429_without_retry_after_on_the_fast_path_paces_the_host() -> None:
    limiter = Limiter(None, None, 60.0, clock=lambda: 100.0, wall=lambda: 0.0)
    ticket = limiter.admit_now("h")
    assert ticket is not None
    limiter.after_answer(ticket, 429, CIMultiDictProxy(CIMultiDict()))
    assert limiter.paces("h") and limiter.admit_now("h") is None


def test_a_host_that_gets_paused_leaves_the_fast_path(server: TestServer) -> None:
    # Default options: the fast path sends. The 429 pauses the host; every later request must
    # arrive after the pause, none through the fast path meanwhile.
    urls = [f"{server.url}/host-cooldown?retry_after=1"]
    urls += [f"{server.url}/users/{i}" for i in range(1, 9)]
    out = pd.DataFrame({"url": urls}).aapi.fetch("url", concurrency=3, retries=fast_retry(2))
    assert out["name"].tolist()[1:] == [f"User {i}" for i in range(1, 9)]
    assert server.cooldown_violations == 0
    first_429 = server.arrivals("/host-cooldown")[0]
    answered_late = [t for t in server.arrivals("/users/") if t > first_429 + 0.5]
    assert all(t >= first_429 + 1.0 - CLOCK_TOLERANCE for t in answered_late)
    report = pandas_async.last_report()
    assert report is not None and report.retries == 1 and report.failed_rows == 0


def test_the_heap_from_before_is_set_aside_during_a_call_only(server: TestServer) -> None:
    seen: list[int] = []

    def parse(response: Any) -> Any:
        seen.append(gc.get_freeze_count())
        return response.json()

    df = pd.DataFrame({"user_id": [1, 2, 3]})
    before = gc.get_freeze_count()
    df.aapi.fetch(server.url + "/users/{user_id}", parse=parse)
    assert before == 0 and min(seen) > 0  # during the call, the old heap is set aside
    assert gc.get_freeze_count() == 0  # and put back after it

    gc.freeze()  # someone else's freeze (a pre-fork server) is left exactly as it was
    try:
        mine = gc.get_freeze_count()
        seen.clear()
        df.aapi.fetch(server.url + "/users/{user_id}", parse=parse)
        # Not frozen again (the count would grow), not unfrozen (it would drop to 0).
        assert len(seen) == 3 and 0 < min(seen) <= max(seen) <= mine
        assert 0 < gc.get_freeze_count() <= mine
    finally:
        gc.unfreeze()


def test_fewer_young_collections_during_a_call_only(server: TestServer) -> None:
    seen: list[int] = []

    def parse(response: Any) -> Any:
        seen.append(gc.get_threshold()[0])
        return response.json()

    df = pd.DataFrame({"user_id": [1, 2]})
    before = gc.get_threshold()
    df.aapi.fetch(server.url + "/users/{user_id}", parse=parse)
    assert seen == [CALL_THRESHOLD] * 2 and gc.get_threshold() == before

    gc.set_threshold(CALL_THRESHOLD * 2, before[1], before[2])  # a higher one is left alone
    try:
        seen.clear()
        df.aapi.fetch(server.url + "/users/{user_id}", parse=parse)
        assert seen == [CALL_THRESHOLD * 2] * 2
        assert gc.get_threshold() == (CALL_THRESHOLD * 2, before[1], before[2])
    finally:
        gc.set_threshold(*before)


def test_overlapping_calls_share_one_freeze(server: TestServer) -> None:
    df = pd.DataFrame({"user_id": list(range(20))})

    async def both() -> list[pd.DataFrame]:
        url = server.url + "/slow?delay=0.05&id={user_id}"
        return list(await asyncio.gather(df.aapi.afetch(url), df.aapi.afetch(url)))

    before = gc.get_threshold()
    assert all(len(frame) == 20 for frame in asyncio.run(both()))
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == before


def test_outcomes_are_freed_when_the_call_ends_without_a_collection(server: TestServer) -> None:
    # No reference cycle keeps a call's outcomes (and their parsed answers) alive after it.
    df = pd.DataFrame({"user_id": list(range(1, 31))})
    gc.collect()
    gc.disable()
    try:
        df.aapi.fetch(server.url + "/users/{user_id}")
        left = sum(isinstance(o, Outcome) for o in gc.get_objects())
    finally:
        gc.enable()
    assert left == 0


def test_the_short_dedupe_key_of_a_plain_get_never_meets_a_fuller_one() -> None:
    plain = RequestSpec("GET", "https://h/x")
    assert plain.dedupe_key() == RequestSpec("GET", "https://h/x").dedupe_key()
    others = [
        RequestSpec("GET", "https://h/x", params={}),
        RequestSpec("GET", "https://h/x", headers={"a": "1"}),
        RequestSpec("GET", "https://h/x", json=None),  # a JSON null body is a body
        RequestSpec("GET", "https://h/x", data=""),
        RequestSpec("HEAD", "https://h/x"),
    ]
    keys = [s.dedupe_key() for s in others]
    assert plain.dedupe_key() not in keys and len(set(keys)) == len(keys)


def test_a_cached_call_sends_through_the_fast_path_and_keeps_its_answers(
    server: TestServer, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pandas_async._engine import Engine

    slow_path: list[str] = []
    real_fetch = Engine.fetch

    async def fetch(self: Engine, spec: RequestSpec, **kwargs: Any) -> Any:
        slow_path.append(spec.url)
        return await real_fetch(self, spec, **kwargs)

    monkeypatch.setattr(Engine, "fetch", fetch)
    df = pd.DataFrame({"user_id": [1, 2, 3]})
    url = server.url + "/users/{user_id}"
    first = df.aapi.fetch(url, cache=tmp_path)
    assert slow_path == [] and server.count("/users/") == 3
    again = df.aapi.fetch(url, cache=tmp_path)  # every answer was kept by the fast path
    assert server.count("/users/") == 3
    pd.testing.assert_frame_equal(first, again)
