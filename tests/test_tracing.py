"""OpenTelemetry spans: one per call, a CLIENT span per attempt, against the real test server.

The spans are collected with opentelemetry-sdk's InMemorySpanExporter. A tracer provider can be
set once per process, so the fixture resets OpenTelemetry's globals around each test (as
OpenTelemetry's own test utilities do): the rest of the suite runs with no provider set.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pandas as pd
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util._once import Once

import pandas_async
from pandas_async._requests import RequestSpec
from pandas_async._timeline import Timeline
from pandas_async._tracing import TracedTimeline, call_timeline
from tests.helpers import fast_retry, unique
from tests.server import TestServer

ROOT = Path(__file__).resolve().parents[1]


def _reset_tracing_globals() -> None:
    trace._TRACER_PROVIDER_SET_ONCE = Once()  # type: ignore[attr-defined]
    trace._TRACER_PROVIDER = None  # type: ignore[attr-defined]


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _reset_tracing_globals()
    trace.set_tracer_provider(provider)
    yield exporter
    provider.shutdown()
    _reset_tracing_globals()


def _split(exporter: InMemorySpanExporter) -> tuple[ReadableSpan, list[ReadableSpan]]:
    finished = exporter.get_finished_spans()
    calls = [s for s in finished if s.name.startswith("pandas_async.")]
    assert len(calls) == 1, [s.name for s in finished]
    attempts = sorted(
        (s for s in finished if s.kind is SpanKind.CLIENT), key=lambda s: s.start_time or 0
    )
    return calls[0], attempts


def test_each_fetch_is_a_span_and_each_attempt_a_client_span_under_it(
    server: TestServer, spans: InMemorySpanExporter
) -> None:
    df = pd.DataFrame({"user_id": [1, 2, 3]})
    df.aapi.fetch(f"{server.url}/users/{{user_id}}")
    call, attempts = _split(spans)
    assert call.name == "pandas_async.fetch"
    assert call.kind is SpanKind.INTERNAL
    assert call.attributes is not None
    assert call.attributes["pandas_async.rows"] == 3
    assert call.attributes["pandas_async.requests"] == 3
    assert call.attributes["pandas_async.failed_rows"] == 0
    assert call.attributes["url.template"] == "/users/{user_id}"
    assert len(attempts) == 3
    host, port = server.url.split("://")[1].split(":")
    urls = set()
    for span in attempts:
        assert span.name == "GET /users/{user_id}"  # the template, not the filled URL
        assert span.parent is not None and call.context is not None
        assert span.parent.span_id == call.context.span_id
        assert span.context is not None and span.context.trace_id == call.context.trace_id
        attrs = dict(span.attributes or {})
        assert attrs["http.request.method"] == "GET"
        assert attrs["server.address"] == host
        assert attrs["server.port"] == int(port)
        assert attrs["http.response.status_code"] == 200
        assert attrs["url.template"] == "/users/{user_id}"
        assert "error.type" not in attrs and "http.request.resend_count" not in attrs
        assert span.status.status_code is StatusCode.UNSET
        urls.add(attrs["url.full"])
        # The attempt span lies within the call span.
        assert call.start_time is not None and call.end_time is not None
        assert span.start_time is not None and span.end_time is not None
        assert call.start_time <= span.start_time <= span.end_time <= call.end_time
    assert urls == {f"{server.url}/users/{i}" for i in (1, 2, 3)}


def test_retries_are_spans_with_resend_count_and_error_type(
    server: TestServer, spans: InMemorySpanExporter
) -> None:
    key = unique()
    pd.DataFrame({"key": [key]}).aapi.fetch(
        f"{server.url}/flaky/{{key}}?fail=2", retries=fast_retry(3)
    )
    _, attempts = _split(spans)
    attrs = [dict(s.attributes or {}) for s in attempts]
    assert [a["http.response.status_code"] for a in attrs] == [503, 503, 200]
    assert [a.get("http.request.resend_count") for a in attrs] == [None, 1, 2]
    assert [a.get("error.type") for a in attrs] == ["503", "503", None]
    assert [s.status.status_code for s in attempts] == [
        StatusCode.ERROR, StatusCode.ERROR, StatusCode.UNSET,
    ]  # fmt: skip
    assert all(s.name == "GET /flaky/{key}?fail=2" for s in attempts)


def test_a_connection_error_has_an_error_type_and_no_status(
    server: TestServer, spans: InMemorySpanExporter
) -> None:
    pd.DataFrame({"key": [unique()]}).aapi.fetch(
        f"{server.url}/drop/{{key}}?fail=2",
        retries=fast_retry(2),  # aiohttp resends once itself
    )
    _, attempts = _split(spans)
    first, second = (dict(s.attributes or {}) for s in attempts)
    assert "http.response.status_code" not in first
    assert str(first["error.type"]).startswith("httpx.")  # the exception's class
    assert attempts[0].status.status_code is StatusCode.ERROR
    assert second["http.response.status_code"] == 200
    assert second["http.request.resend_count"] == 1


def test_pages_are_attempts_too(server: TestServer, spans: InMemorySpanExporter) -> None:
    pd.DataFrame({"key": [unique()]}).aapi.fetch(
        f"{server.url}/pages/{{key}}?n=5",
        paginate=pandas_async.PageNumber("page", size_param="size", size=2),
    )
    call, attempts = _split(spans)
    assert len(attempts) == 3  # 2 + 2 + 1 records
    pages = [dict(s.attributes or {})["url.full"] for s in attempts]
    assert [str(p).split("page=")[1][0] for p in pages] == ["1", "2", "3"]
    assert all(s.parent is not None and s.parent.span_id == call.context.span_id for s in attempts)


def test_the_call_span_is_a_child_of_the_callers_span_from_any_loop(
    server: TestServer, spans: InMemorySpanExporter
) -> None:
    tracer = trace.get_tracer("test")
    url = f"{server.url}/users/{{user_id}}"
    with tracer.start_as_current_span("notebook cell") as cell:
        pd.DataFrame({"user_id": [1]}).aapi.fetch(url)
    call, _ = _split(spans)
    assert call.parent is not None and call.parent.span_id == cell.get_span_context().span_id
    spans.clear()

    async def in_a_running_loop() -> int:  # fetch runs on the background loop's thread here
        with tracer.start_as_current_span("cell under asyncio.run") as outer:
            pd.DataFrame({"user_id": [2]}).aapi.fetch(url)
            return outer.get_span_context().span_id

    outer_id = asyncio.run(in_a_running_loop())
    call, _ = _split(spans)
    assert call.parent is not None and call.parent.span_id == outer_id


def test_afetch_is_a_span_too(server: TestServer, spans: InMemorySpanExporter) -> None:
    df = pd.DataFrame({"user_id": [1, 2]})
    asyncio.run(df.aapi.afetch(f"{server.url}/users/{{user_id}}"))
    call, attempts = _split(spans)
    assert call.name == "pandas_async.afetch"
    assert len(attempts) == 2


def test_a_column_of_urls_names_attempts_by_method_only(
    server: TestServer, spans: InMemorySpanExporter
) -> None:
    urls = pd.Series([f"{server.url}/users/1", f"{server.url}/users/2"], name="link")
    urls.aapi.fetch()
    call, attempts = _split(spans)
    assert "url.template" not in (call.attributes or {})
    assert [s.name for s in attempts] == ["GET", "GET"]  # no low-cardinality target to name


def test_no_secret_in_any_span_raw_or_percent_encoded(
    server: TestServer, spans: InMemorySpanExporter
) -> None:
    key = "k3y/with spaces+plus&amp=1"  # needs encoding: its encoded forms differ from it
    token = "tok:en/é secret"
    bearer = "bearer-s3cr3t-value"
    password = "pa ss/w0rd"
    df = pd.DataFrame({"user_id": [1, 2], "token": [token, token]})
    base = server.url.replace("://", f"://alice:{quote(password, safe='')}@")
    df.aapi.fetch(
        f"{server.url}/echo/{{user_id}}?access_token={{token}}",
        params={"api_key": key, "q": "visible"},
        headers={"Authorization": f"Bearer {bearer}", "X-Api-Key": key},
        retries=fast_retry(1),
    )
    everything = list(spans.get_finished_spans())
    spans.clear()
    df.aapi.fetch(f"{base}/echo/{{user_id}}?q=visible&api_key={quote(key, safe='')}")
    everything += spans.get_finished_spans()
    spans.clear()
    bot = "123:AB/C d"  # a token in the path (Telegram style): its column's name says secret
    pd.DataFrame({"bot_token": [bot], "user_id": [1]}).aapi.fetch(
        f"{server.url}/echo/bot{{bot_token}}/{{user_id}}?q=visible&api_key=x"
    )
    (path_span,) = [s for s in spans.get_finished_spans() if s.kind is SpanKind.CLIENT]
    everything += spans.get_finished_spans()
    path_url = str(dict(path_span.attributes or {})["url.full"])
    assert path_url == f"{server.url}/echo/bot***/1?q=visible&api_key=***", path_url
    assert len(everything) == 8
    texts: list[str] = []
    for span in everything:
        texts.append(span.name)
        texts.extend(str(v) for v in (span.attributes or {}).values())
        for event in span.events:
            texts.append(event.name)
            texts.extend(str(v) for v in (event.attributes or {}).values())
        texts.append(str(span.status.description))
    blob = "\n".join(texts)
    for secret in (key, token, bearer, password, bot):
        for form in {secret, quote(secret, safe=""), quote_plus(secret), quote(secret)}:
            assert form not in blob, form
    full = [
        str(dict(s.attributes or {})["url.full"]) for s in everything if s.kind is SpanKind.CLIENT
    ]
    assert all("q=visible" in u and "api_key=" in u for u in full)
    assert all("access_token=" in u for u in full[:2])
    assert all("alice" not in u for u in full)


def test_a_cool_down_is_an_event_on_the_call_span(
    server: TestServer, spans: InMemorySpanExporter
) -> None:
    urls = pd.Series([f"{server.url}/host-cooldown?retry_after=0.3"] * 1 + [
        f"{server.url}/users/{i}" for i in range(1, 4)
    ])  # fmt: skip
    urls.aapi.fetch(dedupe=False)
    call, attempts = _split(spans)
    events = [e for e in call.events if e.name == "pandas_async.cool_down"]
    assert len(events) == 1
    attrs = dict(events[0].attributes or {})
    assert attrs["server.address"] == "127.0.0.1"
    assert attrs["server.port"] == int(server.url.rsplit(":", 1)[1])
    assert attrs["pandas_async.seconds"] == pytest.approx(0.3)
    assert [dict(s.attributes or {}).get("http.response.status_code") for s in attempts].count(
        429
    ) == 1
    assert dict(call.attributes or {})["pandas_async.time.cool-down"] >= 0.2


def test_cache_hit_hook_adds_an_event_on_the_call_span(spans: InMemorySpanExporter) -> None:
    timeline = call_timeline(caller="fetch", method="GET", template=None, rows=1, parent=None)
    assert isinstance(timeline, TracedTimeline)
    timeline.cache_hit(RequestSpec("GET", "https://127.0.0.1:9/x?api_key=s3cr3t!"))
    timeline.finish(0)
    (call,) = spans.get_finished_spans()
    (event,) = call.events
    assert event.name == "pandas_async.cache_hit"
    assert dict(event.attributes or {})["url.full"] == "https://127.0.0.1:9/x?api_key=***"


def test_answers_from_the_cache_are_events_not_attempts(
    server: TestServer, spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    df = pd.DataFrame({"user_id": [1, 2]})
    url = f"{server.url}/users/{{user_id}}?api_key=s3cr3t-k3y"
    df.aapi.fetch(url, cache=tmp_path)
    spans.clear()
    df.aapi.fetch(url, cache=tmp_path)  # a re-run: both answers come from the cache
    call, attempts = _split(spans)
    assert attempts == []
    hits = [e for e in call.events if e.name == "pandas_async.cache_hit"]
    assert len(hits) == 2
    full = sorted(str(dict(e.attributes or {})["url.full"]) for e in hits)
    assert full == [f"{server.url}/users/{i}?api_key=***" for i in (1, 2)]
    assert dict(call.attributes or {})["pandas_async.requests"] == 0


def test_without_a_provider_the_plain_timeline_runs(server: TestServer) -> None:
    _reset_tracing_globals()  # the API is imported, but no provider set: spans are no-ops
    timeline = call_timeline(caller="fetch", method="GET", template=None, rows=1, parent=None)
    assert type(timeline) is Timeline
    pd.DataFrame({"user_id": [1]}).aapi.fetch(f"{server.url}/users/{{user_id}}")


CHILD = """
import importlib.abc, json, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)")
        return None

if sys.argv[2] == "block":
    sys.meta_path.insert(0, Block())
import pandas as pd
import pandas_async

url = sys.argv[1]
out = pd.DataFrame({"user_id": [1, 2, 3]}).aapi.fetch(url + "/users/{user_id}", retries=1)
try:
    import opentelemetry  # noqa: F401
    importable = True
except ImportError:
    importable = False
loaded = sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry")
print(json.dumps({"rows": len(out), "loaded": loaded, "importable": importable,
                  "requests": pandas_async.last_report().requests}))
"""


@pytest.mark.subprocess
@pytest.mark.parametrize("mode", ["block", "installed"])
def test_without_opentelemetry_nothing_of_it_is_imported(server: TestServer, mode: str) -> None:
    code = textwrap.dedent(CHILD)
    if mode == "installed":  # installed but never imported by the program: still not imported
        code = code.replace("    import opentelemetry  # noqa: F401\n", "    pass\n")
    result = subprocess.run(
        [sys.executable, "-c", code, server.url, mode],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    assert data["rows"] == 3 and data["requests"] == 3
    assert data["loaded"] == []
    if mode == "block":
        assert data["importable"] is False  # the block works: the run had no OpenTelemetry
