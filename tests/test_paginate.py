"""DESIGN.md section 6: per-row pagination, every style followed at the real test server.

The paginated endpoints of ``tests/server.py`` serve ``n`` records ``{"item": i, "label":
"<key>:<i>"}`` per key, ``size`` at a time, so what a row should get is known exactly.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import httpx
import pandas as pd
import pytest

import pandas_async
from pandas_async import Cursor, LinkHeader, NextUrl, Offset, PageNumber, Paginator
from tests.helpers import OUTCOME_COLUMNS, fast_retry, unique
from tests.server import TestServer

CLOCK_TOLERANCE = 0.05


def labels(key: str, n: int) -> list[str]:
    return [f"{key}:{i}" for i in range(1, n + 1)]


def max_in_any_window(arrivals: list[float], period: float) -> int:
    """The largest number of arrivals inside any window of ``period`` seconds (less tolerance)."""
    arrivals = sorted(arrivals)
    best = start = 0
    for end, t in enumerate(arrivals):
        while t - arrivals[start] >= period - CLOCK_TOLERANCE:
            start += 1
        best = max(best, end - start + 1)
    return best


def queries(server: TestServer, prefix: str) -> list[dict[str, str]]:
    return [r.query for r in server.requests_to(prefix)]


# One way to read each paginated endpoint: (path, paginator, fetch options), for a dataset of
# `n` records served `size` at a time (the row's columns `n` and `size` go in the query).
STYLES: dict[str, tuple[str, Paginator, dict[str, Any]]] = {
    "page_number": ("/pages/{key}", PageNumber("page", "size", 2), {}),
    "offset": (
        "/offset/{key}",
        Offset("offset", "limit", 2, total_path="meta.total"),
        {"record_path": "items"},
    ),
    "cursor": ("/cursor/{key}", Cursor("cursor", "next_cursor"), {"record_path": "data"}),
    "link_header": ("/link/{key}", LinkHeader(), {}),
    "next_url": ("/nexturl/{key}", NextUrl("next"), {"record_path": "results"}),
}


def fetch_style(
    server: TestServer,
    style: str,
    frame: pd.DataFrame,
    paginator: Paginator | None = None,
    extra: dict[str, Any] | None = None,
    **options: Any,
) -> pd.DataFrame:
    """Fetch ``frame`` (columns ``key`` and ``n``) from the endpoint of ``style``, pages of 2."""
    path, default, style_options = STYLES[style]
    params = {"n": "{n}", **({"size": "2"} if style not in ("page_number", "offset") else {})}
    params.update(extra or {})
    return frame.aapi.fetch(
        server.url + path,
        params=params,
        paginate=paginator or default,
        **style_options,
        **options,
    )


# -- every style, end to end ----------------------------------------------------------------


@pytest.mark.parametrize("style", list(STYLES))
def test_every_style_returns_all_records_in_page_order(server: TestServer, style: str) -> None:
    a, b = unique("a"), unique("b")
    df = pd.DataFrame({"key": [a, b], "n": [5, 3], "tag": ["x", "y"]}, index=["r1", "r2"])
    out = fetch_style(server, style, df)
    assert out.index.tolist() == ["r1"] * 5 + ["r2"] * 3
    assert out["key"].tolist() == [a] * 5 + [b] * 3
    assert out["tag"].tolist() == ["x"] * 5 + ["y"] * 3
    assert out["n"].tolist() == [5] * 5 + [3] * 3
    assert out["item"].tolist() == [1, 2, 3, 4, 5, 1, 2, 3]
    assert out["label"].tolist() == labels(a, 5) + labels(b, 3)
    assert list(out.columns[:3]) == ["key", "n", "tag"]
    assert not set(OUTCOME_COLUMNS) & set(out.columns)
    # 5 records in pages of 2: 3 pages; 3 records: 2 pages. No style needs an extra request.
    assert server.count(f"/{STYLES[style][0].split('/')[1]}/{a}") == 3
    assert server.count(f"/{STYLES[style][0].split('/')[1]}/{b}") == 2


def test_page_number_sends_page_and_size_and_stops_on_a_short_page(server: TestServer) -> None:
    key = unique()
    df = pd.DataFrame({"key": [key]})
    out = df.aapi.fetch(
        server.url + "/pages/{key}", params={"n": "7"}, paginate=PageNumber("page", "size", 3)
    )
    assert out["item"].tolist() == list(range(1, 8))
    # 3 + 3 + 1: the short third page is the last; no empty fourth page is asked for.
    assert queries(server, "/pages/") == [
        {"n": "7", "page": str(p), "size": "3"} for p in (1, 2, 3)
    ]


def test_page_number_with_size_asks_one_empty_page_when_the_last_is_full(
    server: TestServer,
) -> None:
    key = unique()
    out = pd.DataFrame({"key": [key]}).aapi.fetch(
        server.url + "/pages/{key}", params={"n": "6"}, paginate=PageNumber("page", "size", 3)
    )
    assert out["item"].tolist() == list(range(1, 7))
    assert [q["page"] for q in queries(server, "/pages/")] == ["1", "2", "3"]


def test_page_number_without_size_stops_on_the_empty_page(server: TestServer) -> None:
    key = unique()
    out = pd.DataFrame({"key": [key]}).aapi.fetch(
        server.url + "/pages/{key}", params={"n": "5"}, paginate=PageNumber("page")
    )
    assert out["label"].tolist() == labels(key, 5)
    # The server's default size is 2: pages 1-3 hold 2, 2, 1 records and page 4 is empty.
    assert [q["page"] for q in queries(server, "/pages/")] == ["1", "2", "3", "4"]
    assert all("size" not in q for q in queries(server, "/pages/"))


def test_page_number_start(server: TestServer) -> None:
    key = unique()
    out = pd.DataFrame({"key": [key]}).aapi.fetch(
        server.url + "/pages/{key}",
        params={"n": "3", "first": "0"},
        paginate=PageNumber("page", "size", 2, start=0),
    )
    assert out["item"].tolist() == [1, 2, 3]
    assert [q["page"] for q in queries(server, "/pages/")] == ["0", "1"]


def test_offset_with_total_sends_no_probe_request(server: TestServer) -> None:
    key = unique()
    out = pd.DataFrame({"key": [key]}).aapi.fetch(
        server.url + "/offset/{key}",
        params={"n": "10"},
        record_path="items",
        paginate=Offset("offset", "limit", 5, total_path="meta.total"),
    )
    assert out["item"].tolist() == list(range(1, 11))
    # Two full pages make the total of 10: the third (empty) page is never asked for.
    assert queries(server, "/offset/") == [
        {"n": "10", "offset": "0", "limit": "5"},
        {"n": "10", "offset": "5", "limit": "5"},
    ]


def test_offset_without_total_stops_on_an_empty_or_short_page(server: TestServer) -> None:
    full, short = unique("full"), unique("short")
    df = pd.DataFrame({"key": [full, short], "n": [10, 7]})
    out = df.aapi.fetch(
        server.url + "/offset/{key}",
        params={"n": "{n}"},
        record_path="items",
        paginate=Offset("offset", "limit", 5),
    )
    assert out["item"].tolist() == list(range(1, 11)) + list(range(1, 8))
    assert [q["offset"] for q in queries(server, f"/offset/{full}")] == ["0", "5", "10"]
    assert [q["offset"] for q in queries(server, f"/offset/{short}")] == ["0", "5"]


def test_offset_with_total_follows_an_api_that_caps_the_limit(server: TestServer) -> None:
    key = unique()
    out = pd.DataFrame({"key": [key]}).aapi.fetch(
        server.url + "/offset/{key}",
        params={"n": "7", "max_limit": "3"},
        record_path="items",
        paginate=Offset("offset", "limit", 5, total_path=["meta", "total"]),
    )
    # Pages of 3 although 5 were asked: the total, not the short page, says when to stop, and
    # each offset advances by the records received.
    assert out["item"].tolist() == list(range(1, 8))
    assert [q["offset"] for q in queries(server, "/offset/")] == ["0", "3", "6"]


def test_cursor_sends_each_next_cursor(server: TestServer) -> None:
    key = unique()
    out = pd.DataFrame({"key": [key]}).aapi.fetch(
        server.url + "/cursor/{key}",
        params={"n": "7", "size": "3"},
        record_path="data",
        paginate=Cursor("cursor", "paging.next"),
    )
    assert out["item"].tolist() == list(range(1, 8))
    assert [q.get("cursor") for q in queries(server, "/cursor/")] == [None, "c3", "c6"]
    assert all(q["n"] == "7" and q["size"] == "3" for q in queries(server, "/cursor/"))


def test_link_header_follows_rel_next_without_sending_params_twice(server: TestServer) -> None:
    key = unique()
    out = pd.DataFrame({"key": [key]}).aapi.fetch(
        server.url + "/link/{key}", params={"n": "5", "size": "2"}, paginate=LinkHeader()
    )
    assert out["label"].tolist() == labels(key, 5)
    seen = server.requests_to("/link/")
    assert [r.query.get("page") for r in seen] == [None, "2", "3"]
    # The next link carries n and size already: they are not sent a second time.
    assert [r.query_string.count("n=5") for r in seen] == [1, 1, 1]
    assert [r.query_string.count("size=2") for r in seen] == [1, 1, 1]


@pytest.mark.parametrize("style", ["path", "absolute", "query"])
def test_next_url_relative_or_absolute(server: TestServer, style: str) -> None:
    key = unique()
    out = pd.DataFrame({"key": [key]}).aapi.fetch(
        server.url + "/nexturl/{key}",
        params={"n": "5", "size": "2", "style": style},
        record_path="results",
        paginate=NextUrl(["links", "next"]),
    )
    assert out["label"].tolist() == labels(key, 5)
    assert [q.get("page") for q in queries(server, "/nexturl/")] == [None, "2", "3"]


def test_index_labels_repeat_in_page_order_with_a_duplicate_index(server: TestServer) -> None:
    a, b = unique("a"), unique("b")
    df = pd.DataFrame({"key": [a, b]}, index=[7, 7])
    out = df.aapi.fetch(
        server.url + "/pages/{key}", params={"n": "3"}, paginate=PageNumber("page", "size", 2)
    )
    assert out.index.tolist() == [7] * 6
    assert out["label"].tolist() == labels(a, 3) + labels(b, 3)


def test_a_row_with_no_records_keeps_one_row(server: TestServer) -> None:
    empty, full = unique("empty"), unique("full")
    df = pd.DataFrame({"key": [empty, full], "n": [0, 2]}, index=["e", "f"])
    out = df.aapi.fetch(
        server.url + "/pages/{key}",
        params={"n": "{n}"},
        paginate=PageNumber("page", "size", 2),
        errors="collect",
    )
    assert out.index.tolist() == ["e", "f", "f"]
    assert pd.isna(out.loc["e", "item"])
    assert out["_error"].isna().all()
    assert server.count(f"/pages/{empty}") == 1


def test_outcome_columns_sum_every_page(server: TestServer) -> None:
    key = unique()
    out = pd.DataFrame({"key": [key]}).aapi.fetch(
        server.url + "/pages/{key}",
        params={"n": "5", "delay": "0.02"},
        paginate=PageNumber("page", "size", 2),
        errors="collect",
    )
    assert out["_attempts"].tolist() == [3] * 5
    assert out["_status"].tolist() == [200] * 5
    assert (out["_elapsed"] >= 3 * 0.02 - CLOCK_TOLERANCE).all()


def test_record_path_and_meta_with_object_pages(server: TestServer) -> None:
    key = unique()
    out = pd.DataFrame({"key": [key]}).aapi.fetch(
        server.url + "/offset/{key}",
        params={"n": "5"},
        record_path="items",
        meta=[["meta", "total"], ["meta", "offset"]],
        paginate=Offset("offset", "limit", 2),
    )
    assert out["item"].tolist() == [1, 2, 3, 4, 5]
    assert out["meta.total"].tolist() == [5] * 5
    # meta comes from the page each record was on.
    assert out["meta.offset"].tolist() == [0, 0, 2, 2, 4]
    assert "items" not in out.columns


def test_object_pages_without_record_path_fail_the_row(server: TestServer) -> None:
    key = unique()
    out = pd.DataFrame({"key": [key]}).aapi.fetch(
        server.url + "/cursor/{key}",
        paginate=Cursor("cursor", "next_cursor"),
        errors="collect",
    )
    assert len(out) == 1
    assert "record_path" in out["_error"].iloc[0]
    assert server.count("/cursor/") == 1


def test_identical_rows_share_their_pages(server: TestServer) -> None:
    key = unique()
    df = pd.DataFrame({"key": [key, key]}, index=["a", "b"])
    out = df.aapi.fetch(
        server.url + "/pages/{key}", params={"n": "3"}, paginate=PageNumber("page", "size", 2)
    )
    assert out.index.tolist() == ["a"] * 3 + ["b"] * 3
    assert out["item"].tolist() == [1, 2, 3] * 2
    assert server.count("/pages/") == 2


def test_afetch_paginates(server: TestServer) -> None:
    key = unique()
    df = pd.DataFrame({"key": [key]})

    async def main() -> pd.DataFrame:
        return await df.aapi.afetch(
            server.url + "/link/{key}", params={"n": "3"}, paginate=LinkHeader()
        )

    assert asyncio.run(main())["label"].tolist() == labels(key, 3)


def test_series_of_urls_paginates(server: TestServer) -> None:
    key = unique()
    urls = pd.Series([f"{server.url}/link/{key}?n=3"], name="src")
    out = urls.aapi.fetch(paginate=LinkHeader())
    assert out["item"].tolist() == [1, 2, 3]
    assert out["src"].tolist() == [urls.iloc[0]] * 3


# -- max_pages ------------------------------------------------------------------------------


@pytest.mark.parametrize("style", list(STYLES))
def test_max_pages_caps_the_pages_of_every_row(server: TestServer, style: str) -> None:
    path, default, _ = STYLES[style]
    paginator = dataclasses.replace(default, max_pages=2)  # type: ignore[type-var]
    a, b = unique("a"), unique("b")
    df = pd.DataFrame({"key": [a, b], "n": [9, 3]})
    out = fetch_style(server, style, df, paginator)
    assert out["label"].tolist() == labels(a, 4) + labels(b, 3)
    endpoint = path.split("/")[1]
    assert server.count(f"/{endpoint}/{a}") == 2
    assert server.count(f"/{endpoint}/{b}") == 2


def test_max_pages_one_sends_one_request(server: TestServer) -> None:
    key = unique()
    out = pd.DataFrame({"key": [key]}).aapi.fetch(
        server.url + "/link/{key}", params={"n": "9"}, paginate=LinkHeader(max_pages=1)
    )
    assert out["item"].tolist() == [1, 2]
    assert server.count("/link/") == 1


# -- loops ----------------------------------------------------------------------------------


def test_a_repeated_cursor_fails_the_row_and_keeps_its_pages(server: TestServer) -> None:
    looping, fine = unique("loop"), unique("fine")
    df = pd.DataFrame({"key": [looping, fine], "loop": ["1", ""]}, index=["l", "f"])
    options: dict[str, Any] = {
        "params": {"n": "9", "size": "2", "loop": "{loop}"},
        "record_path": "data",
        "paginate": Cursor("cursor", "next_cursor"),
    }
    with pytest.raises(pandas_async.FetchError) as caught:
        df.aapi.fetch(server.url + "/cursor/{key}", **options)
    assert caught.value.counts == {"pagination loop": 1}
    assert "1 of 2 rows failed (1 pagination loop)" in str(caught.value)

    collected = df.aapi.fetch(server.url + "/cursor/{key}", errors="collect", **options)
    for out in (caught.value.frame, collected):
        # Page 1 gives cursor c2, page 2 gives c2 again: pages 1-2 are kept, no page 3 is sent.
        assert out.loc["l", "label"].tolist() == labels(looping, 4)
        assert out.loc["f", "label"].tolist() == labels(fine, 9)
        errors = out.loc["l", "_error"].tolist()
        assert all("loop" in e and "page 3" in e for e in errors)
        assert out.loc["f", "_error"].isna().all()
    assert [q.get("cursor") for q in queries(server, f"/cursor/{looping}")] == [None, "c2"] * 2


@pytest.mark.parametrize("style", ["link_header", "next_url"])
def test_a_link_back_to_the_first_page_is_a_loop(server: TestServer, style: str) -> None:
    key = unique()
    df = pd.DataFrame({"key": [key], "n": [5]})
    out = fetch_style(server, style, df, extra={"loop": "1"}, errors="collect")
    # The last page (3) links back to the first, which was sent with the same query as params:
    # the loop is seen before page 1 is fetched again, so no record is duplicated.
    assert out["label"].tolist() == labels(key, 5)
    assert out["_error"].str.contains("pagination loop").all()
    assert server.count(f"/{STYLES[style][0].split('/')[1]}/") == 3


def test_a_custom_paginator_that_repeats_itself_is_stopped(server: TestServer) -> None:
    class SamePage(Paginator):
        def next_request(self, spec: Any, page: Any) -> Any:
            return dataclasses.replace(spec)

    key = unique()
    out = pd.DataFrame({"key": [key]}).aapi.fetch(
        server.url + "/pages/{key}", params={"n": "9"}, paginate=SamePage(), errors="collect"
    )
    assert out["item"].tolist() == [1, 2]
    assert out["_error"].str.contains("loop").all()
    assert server.count("/pages/") == 1


# -- failures -------------------------------------------------------------------------------


@pytest.mark.parametrize("style", list(STYLES))
def test_a_failing_page_fails_the_row_and_keeps_the_pages_before(
    server: TestServer, style: str
) -> None:
    bad, good = unique("bad"), unique("good")
    df = pd.DataFrame({"key": [bad, good], "fail": ["3", "0"], "n": [9, 5]}, index=["b", "g"])
    extra = {"fail_page": "{fail}", "fail_status": "404"}
    with pytest.raises(pandas_async.FetchError) as caught:
        fetch_style(server, style, df, extra=extra, retries=fast_retry(3))
    assert caught.value.counts == {"HTTP 404 Not Found": 1}
    frame = caught.value.frame
    collected = fetch_style(server, style, df, extra=extra, retries=fast_retry(3), errors="collect")
    for out in (frame, collected):
        assert out.loc["b", "label"].tolist() == labels(bad, 4)  # pages 1-2
        assert out.loc["b", "_error"].tolist() == ["HTTP 404 Not Found"] * 4
        assert out.loc["b", "_status"].tolist() == [404] * 4
        assert out.loc["b", "_attempts"].tolist() == [3] * 4  # 404 is not retried
        assert out.loc["g", "label"].tolist() == labels(good, 5)
        assert out.loc["g", "_error"].isna().all()
    endpoint = STYLES[style][0].split("/")[1]
    assert server.count(f"/{endpoint}/{bad}") == 3 * 2  # pages 1-3, twice; nothing after page 3


def test_a_failing_first_page_leaves_one_empty_row(server: TestServer) -> None:
    key = unique()
    out = pd.DataFrame({"key": [key]}, index=["k"]).aapi.fetch(
        server.url + "/pages/{key}",
        params={"n": "5", "fail_page": "1", "fail_status": "404"},
        paginate=PageNumber("page", "size", 2),
        errors="collect",
    )
    assert out.index.tolist() == ["k"]
    assert out["_error"].tolist() == ["HTTP 404 Not Found"]


def test_retries_apply_to_each_page(server: TestServer) -> None:
    key = unique()
    out = pd.DataFrame({"key": [key]}).aapi.fetch(
        server.url + "/pages/{key}",
        params={"n": "5", "fail_page": "2", "fail_times": "1", "fail_status": "503"},
        paginate=PageNumber("page", "size", 2),
        retries=fast_retry(2),
        errors="collect",
    )
    assert out["label"].tolist() == labels(key, 5)
    assert out["_error"].isna().all()
    assert out["_attempts"].tolist() == [4] * 5  # 3 pages, page 2 twice
    assert [q["page"] for q in queries(server, "/pages/")] == ["1", "2", "2", "3"]


def test_a_page_that_outlives_its_retries_fails_the_row(server: TestServer) -> None:
    key = unique()
    out = pd.DataFrame({"key": [key]}).aapi.fetch(
        server.url + "/link/{key}",
        params={"n": "5", "fail_page": "2", "fail_status": "500"},
        paginate=LinkHeader(),
        retries=fast_retry(1),
        errors="collect",
    )
    assert out["label"].tolist() == labels(key, 2)
    assert out["_error"].tolist() == ["HTTP 500 Internal Server Error"] * 2
    assert out["_attempts"].tolist() == [3] * 2
    assert server.count("/link/") == 3


# -- concurrency and rate -------------------------------------------------------------------


def test_pages_of_many_rows_run_at_once_under_the_cap(server: TestServer) -> None:
    keys = [unique(f"r{i}") for i in range(8)]
    df = pd.DataFrame({"key": keys})
    started = time.monotonic()
    out = df.aapi.fetch(
        server.url + "/pages/{key}",
        params={"n": "5", "delay": "0.05"},
        paginate=PageNumber("page", "size", 2),  # pages of 2, 2 and 1 per row
        concurrency=4,
    )
    elapsed = time.monotonic() - started
    assert len(out) == 8 * 5
    assert server.count("/pages/") == 8 * 3
    assert server.max_in_flight == 4
    # 24 pages of 0.05 s, 4 at a time: about 0.3 s; one after the other would be 1.2 s.
    assert elapsed < 0.9


def test_pages_of_one_row_follow_one_another(server: TestServer) -> None:
    key = unique()
    pd.DataFrame({"key": [key]}).aapi.fetch(
        server.url + "/cursor/{key}",
        params={"n": "8", "size": "2", "delay": "0.02"},
        record_path="data",
        paginate=Cursor("cursor", "next_cursor"),
        concurrency=10,
    )
    assert server.count("/cursor/") == 4
    assert server.max_in_flight == 1


def test_rate_applies_to_pages(server: TestServer) -> None:
    df = pd.DataFrame({"key": [unique(f"r{i}") for i in range(5)]})
    started = time.monotonic()
    df.aapi.fetch(
        server.url + "/pages/{key}",
        params={"n": "10"},
        paginate=PageNumber("page", "size", 2),  # 5 full pages + 1 empty per row
        rate="20/s",
        concurrency=30,
    )
    elapsed = time.monotonic() - started
    arrivals = server.arrivals("/pages/")
    assert len(arrivals) == 30
    # 30 pages at 20 per second: the last 10 wait for the first window to pass.
    assert elapsed >= 1.0 - CLOCK_TOLERANCE
    assert max_in_any_window(arrivals, 1.0) <= 20


# -- the value objects ----------------------------------------------------------------------


def test_reprs() -> None:
    assert repr(PageNumber("page")) == (
        "PageNumber(param='page', size_param=None, size=None, start=1, max_pages=None)"
    )
    assert repr(Offset("offset", "limit", 100, total_path="meta.total")) == (
        "Offset(param='offset', limit_param='limit', limit=100, total_path='meta.total', "
        "max_pages=None)"
    )
    assert repr(Cursor("cursor", "next_cursor", max_pages=3)) == (
        "Cursor(param='cursor', next_path='next_cursor', max_pages=3)"
    )
    assert repr(LinkHeader()) == "LinkHeader(max_pages=None)"
    assert repr(NextUrl("links.next")) == "NextUrl(path='links.next', max_pages=None)"


def test_equality_hashing_and_immutability() -> None:
    assert PageNumber("page", "size", 50) == PageNumber("page", size_param="size", size=50)
    assert PageNumber("page") != PageNumber("p")
    assert LinkHeader() == LinkHeader()
    assert LinkHeader() != NextUrl("next")
    assert len({Cursor("c", "next"), Cursor("c", "next"), Cursor("c", "next", max_pages=2)}) == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        LinkHeader().max_pages = 3  # type: ignore[misc]
    every = (PageNumber("p"), Offset("o", "l", 1), Cursor("c", "n"), LinkHeader(), NextUrl("n"))
    for paginator in every:
        assert isinstance(paginator, Paginator)


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda: PageNumber(""), TypeError),
        (lambda: PageNumber(1), TypeError),
        (lambda: PageNumber("page", size_param="size"), ValueError),
        (lambda: PageNumber("page", size=10), ValueError),
        (lambda: PageNumber("page", "size", 0), ValueError),
        (lambda: PageNumber("page", "size", True), ValueError),
        (lambda: PageNumber("page", start="1"), TypeError),
        (lambda: PageNumber("page", max_pages=0), ValueError),
        (lambda: PageNumber("page", max_pages=2.5), ValueError),
        (lambda: PageNumber("page", max_pages=True), ValueError),
        (lambda: Offset("offset", "limit", 0), ValueError),
        (lambda: Offset("offset", "limit", "100"), ValueError),
        (lambda: Offset("offset", None, 100), TypeError),
        (lambda: Offset("offset", "limit", 10, total_path=5), TypeError),
        (lambda: Offset("offset", "limit", 10, total_path=""), TypeError),
        (lambda: Cursor("", "next"), TypeError),
        (lambda: Cursor("cursor", None), TypeError),
        (lambda: Cursor("cursor", ["meta", 1]), TypeError),
        (lambda: Cursor("cursor", "next", max_pages=-1), ValueError),
        (lambda: LinkHeader(max_pages=0), ValueError),
        (lambda: NextUrl(None), TypeError),
        (lambda: NextUrl([]), TypeError),
    ],
)
def test_bad_paginator_arguments(make: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        make()


def test_paginate_needs_a_paginator(server: TestServer) -> None:
    df = pd.DataFrame({"key": ["k"]})
    with pytest.raises(TypeError, match="paginate="):
        df.aapi.fetch(server.url + "/pages/{key}", paginate="page")
    with pytest.raises(TypeError, match="paginate="):
        df.aapi.fetch(server.url + "/pages/{key}", paginate=PageNumber)
    assert server.count() == 0


def test_paginate_with_how_columns_is_refused(server: TestServer) -> None:
    df = pd.DataFrame({"key": ["k"]})
    with pytest.raises(ValueError, match="how="):
        df.aapi.fetch(server.url + "/pages/{key}", paginate=PageNumber("page"), how="columns")
    assert server.count() == 0


def test_paginate_with_how_rows(server: TestServer) -> None:
    key = unique()
    out = pd.DataFrame({"key": [key]}).aapi.fetch(
        server.url + "/pages/{key}", params={"n": "3"}, paginate=PageNumber("page"), how="rows"
    )
    assert out["item"].tolist() == [1, 2, 3]


# -- your own paginator ---------------------------------------------------------------------


def test_a_custom_paginator(server: TestServer) -> None:
    """Pages of /pages/ asked by number, stopping once 5 records are in (whatever the API has)."""
    seen: list[Any] = []

    @dataclasses.dataclass(frozen=True)
    class UpTo(Paginator):
        wanted: int

        def first_request(self, spec: Any) -> Any:
            return dataclasses.replace(spec, params={**spec.params, "page": 1})

        def next_request(self, spec: Any, page: Any) -> Any:
            seen.append(page)
            if page.records_so_far >= self.wanted:
                return None
            return dataclasses.replace(spec, params={**spec.params, "page": page.number + 1})

    key = unique()
    out = pd.DataFrame({"key": [key]}).aapi.fetch(
        server.url + "/pages/{key}", params={"n": "20"}, paginate=UpTo(5)
    )
    assert repr(UpTo(5)) == "test_a_custom_paginator.<locals>.UpTo(wanted=5)"
    assert out["label"].tolist() == labels(key, 6)  # pages of 2: 3 pages make 6 >= 5
    assert [q["page"] for q in queries(server, "/pages/")] == ["1", "2", "3"]
    assert [(p.number, p.records, p.records_so_far) for p in seen] == [
        (1, 2, 2),
        (2, 2, 4),
        (3, 2, 6),
    ]
    assert isinstance(seen[0].response, httpx.Response)
    assert seen[0].response.status_code == 200
    assert seen[0].value == [{"item": 1, "label": f"{key}:1"}, {"item": 2, "label": f"{key}:2"}]


def test_a_plain_class_paginator_with_max_pages(server: TestServer) -> None:
    class EveryOtherPage(Paginator):
        def __init__(self, max_pages: int | None = None) -> None:
            self.max_pages = max_pages

        def next_request(self, spec: Any, page: Any) -> Any:
            current = int(spec.params.get("page", 1))
            return dataclasses.replace(spec, params={**spec.params, "page": current + 2})

    key = unique()
    out = pd.DataFrame({"key": [key]}).aapi.fetch(
        server.url + "/pages/{key}", params={"n": "20"}, paginate=EveryOtherPage(max_pages=3)
    )
    assert out["item"].tolist() == [1, 2, 5, 6, 9, 10]
    assert [q.get("page") for q in queries(server, "/pages/")] == [None, "3", "5"]


def test_a_mutable_dataclass_paginator(server: TestServer) -> None:
    @dataclasses.dataclass
    class Pages(Paginator):
        last: int
        max_pages: int | None = None

        def next_request(self, spec: Any, page: Any) -> Any:
            if page.number >= self.last:
                return None
            return dataclasses.replace(spec, params={**spec.params, "page": page.number + 1})

    key = unique()
    out = pd.DataFrame({"key": [key]}).aapi.fetch(
        server.url + "/pages/{key}", params={"n": "20"}, paginate=Pages(last=3)
    )
    assert out["item"].tolist() == [1, 2, 3, 4, 5, 6]


def test_a_paginator_that_raises_fails_its_row_only(server: TestServer) -> None:
    class Broken(Paginator):
        def next_request(self, spec: Any, page: Any) -> Any:
            if page.number == 2:
                raise RuntimeError("no idea what comes next")
            return dataclasses.replace(spec, params={**spec.params, "page": page.number + 1})

    bad, good = unique("bad"), unique("good")
    df = pd.DataFrame({"key": [bad, good], "n": [9, 2]}, index=["b", "g"])
    with pytest.raises(pandas_async.FetchError) as caught:
        df.aapi.fetch(server.url + "/pages/{key}", params={"n": "{n}"}, paginate=Broken())
    assert caught.value.counts == {"paginator error": 1}
    out = caught.value.frame
    assert out.loc["b", "label"].tolist() == labels(bad, 4)
    assert (
        out.loc["b", "_error"].tolist()
        == ["paginator error after page 2: RuntimeError: no idea what comes next"] * 4
    )
    assert out.loc["g", "label"].tolist() == labels(good, 2)  # page 2 is empty: never asked


def test_pages_parsed_as_frames(server: TestServer) -> None:
    key = unique()
    out = pd.DataFrame({"key": [key]}).aapi.fetch(
        server.url + "/pages/{key}",
        params={"n": "3"},
        parse=lambda r: pd.DataFrame(r.json(), columns=["item", "label"]),
        paginate=PageNumber("page", "size", 2),
    )
    assert out["label"].tolist() == labels(key, 3)


def test_text_pages_fail_with_a_clear_error(server: TestServer) -> None:
    key = unique()
    out = pd.DataFrame({"key": [key]}).aapi.fetch(
        server.url + "/pages/{key}", parse="text", paginate=PageNumber("page"), errors="collect"
    )
    assert out["_error"].tolist() == [
        "unexpected answer: page 1 is a str, not a list of records; "
        "give record_path= to say where its records are"
    ]


def test_a_custom_paginator_that_pages_through_the_json_body(server: TestServer) -> None:
    @dataclasses.dataclass(frozen=True)
    class BodyPage(Paginator):
        max_pages: int | None = 10

        def next_request(self, spec: Any, page: Any) -> Any:
            return dataclasses.replace(spec, json={**spec.json, "page": page.number + 1})

    key = unique()
    out = pd.DataFrame({"key": [key]}).aapi.fetch(
        server.url + "/pages/{key}",
        method="POST",
        params={"n": "5"},
        json={"page": 1, "size": 2},
        paginate=BodyPage(),
    )
    # Each page is a different body to the same URL: not a loop.
    assert out["label"].tolist() == labels(key, 5)
    assert [r.body for r in server.requests_to("/pages/")] == [
        b'{"page":1,"size":2}',
        b'{"page":2,"size":2}',
        b'{"page":3,"size":2}',
        b'{"page":4,"size":2}',
    ]


def test_a_next_link_to_another_origin_drops_the_secret_headers(server: TestServer) -> None:
    # 127.0.0.1 and localhost are different origins of the same test server.
    key = unique()
    port = server.url.rsplit(":", 1)[1]
    pd.DataFrame({"key": [key]}).aapi.fetch(
        server.url + "/nexturl/{key}",
        params={"n": "3", "size": "2", "style": "absolute", "next_host": f"localhost:{port}"},
        headers={"Authorization": "Bearer s3cr3t-token", "X-Api-Key": "k3y", "X-Trace": "t1"},
        record_path="results",
        paginate=NextUrl("next"),
    )
    first, second = server.requests_to("/nexturl/")
    assert first.headers["authorization"] == "Bearer s3cr3t-token"
    assert first.headers["x-api-key"] == "k3y"
    assert "localhost" in second.headers["host"]
    assert "authorization" not in second.headers
    assert "x-api-key" not in second.headers
    assert second.headers["x-trace"] == "t1"
