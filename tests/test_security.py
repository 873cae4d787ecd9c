"""Issue 10, items 1-2 and the leak sweep: no secret follows a redirect to another origin or
over a downgrade to http, and no secret shows in any text, raw, percent-encoded or base64-ish.

Real servers only: two origins on two ports (tests/security_servers.py) and an HTTPS one whose
certificate comes from a trustme CA.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import ssl
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pandas as pd
import pytest
import trustme

import pandas_async
from pandas_async import _transport
from tests.security_servers import EchoServer

SECRET_HEADERS = {
    "X-Api-Key": "hk-Q/a+b=1",
    "X-Auth-Token": "ht-Q/a+b=2",
    "Private-Token": "hp-Q/a+b=3",
    "Authorization": "Bearer hb-Q/a+b=4",
    "Cookie": "sid=hc-Q/a+b=5",
}
PLAIN = {"X-Plain": "kept"}


@pytest.fixture(scope="module")
def origin_a() -> Iterator[EchoServer]:
    server = EchoServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def origin_b() -> Iterator[EchoServer]:
    server = EchoServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_origin(ca: trustme.CA) -> Iterator[EchoServer]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    server = EchoServer(ssl_context=context).start()
    yield server
    server.stop()


@pytest.fixture
def a(origin_a: EchoServer) -> EchoServer:
    origin_a.reset()
    return origin_a


@pytest.fixture
def b(origin_b: EchoServer) -> EchoServer:
    origin_b.reset()
    return origin_b


@pytest.fixture
def trusted(ca: trustme.CA, monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    """A client context trusting the test CA; the default sender uses it for this test."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    monkeypatch.setattr(_transport, "tls_context", lambda: context)
    return context


def _secret_names(headers: dict[str, str]) -> set[str]:
    return {k for k in headers if k in {h.lower() for h in SECRET_HEADERS}}


def _leaked_values(headers: dict[str, str]) -> list[str]:
    raw = " ".join(f"{k}: {v}" for k, v in headers.items())
    return [v for v in SECRET_HEADERS.values() if v in raw or v.split(" ")[-1] in raw]


def run_with_client(frame: pd.DataFrame, url: str, **options: Any) -> pd.DataFrame:
    """``afetch`` through a user's own httpx client (which follows redirects)."""
    verify = options.pop("verify", True)
    client_headers = options.pop("client_headers", None)
    cookies = options.pop("cookies", None)

    async def main() -> pd.DataFrame:
        async with httpx.AsyncClient(
            follow_redirects=True, verify=verify, headers=client_headers, cookies=cookies
        ) as client:
            return await frame.aapi.afetch(url, client=client, **options)

    return asyncio.run(main())


# -- 1. redirects ------------------------------------------------------------------------------


def test_default_sender_drops_secret_headers_on_a_redirect_to_another_origin(
    a: EchoServer, b: EchoServer
) -> None:
    df = pd.DataFrame({"to": [b.url + "/echo"]})
    out = df.aapi.fetch(a.url + "/to", params={"url": "{to}"}, headers={**SECRET_HEADERS, **PLAIN})
    assert out["method"].tolist() == ["GET"]  # the answer is B's
    [arrived] = b.seen("/echo")
    assert arrived.headers["x-plain"] == "kept"
    assert _secret_names(arrived.headers) == set()
    assert _leaked_values(arrived.headers) == []
    # A itself got them: they were meant for A.
    [asked] = a.seen("/to")
    assert asked.headers["x-api-key"] == SECRET_HEADERS["X-Api-Key"]


def test_default_sender_keeps_headers_on_a_redirect_within_the_origin(a: EchoServer) -> None:
    df = pd.DataFrame({"to": ["/echo"]})
    df.aapi.fetch(a.url + "/to", params={"url": "{to}"}, headers={**SECRET_HEADERS, **PLAIN})
    [arrived] = a.seen("/echo")
    assert arrived.headers["x-api-key"] == SECRET_HEADERS["X-Api-Key"]
    assert arrived.headers["authorization"] == SECRET_HEADERS["Authorization"]


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_every_redirect_status_drops_them_and_keeps_the_method_as_http_says(
    a: EchoServer, b: EchoServer, status: int
) -> None:
    df = pd.DataFrame({"to": [b.url + "/echo"]})
    out = df.aapi.fetch(
        a.url + "/to",
        method="POST",
        params={"url": "{to}", "status": str(status)},
        headers=SECRET_HEADERS,
        json={"q": 1},
    )
    [arrived] = b.seen("/echo")
    assert _secret_names(arrived.headers) == set()
    expected = "POST" if status in (307, 308) else "GET"
    assert out["method"].tolist() == [expected]
    assert (arrived.body == b'{"q":1}') == (expected == "POST")


def test_a_users_httpx_client_drops_secret_headers_and_cookies_across_origins(
    a: EchoServer, b: EchoServer
) -> None:
    df = pd.DataFrame({"to": [b.url + "/echo"]})
    out = run_with_client(
        df,
        a.url + "/to",
        params={"url": "{to}"},
        headers={"X-Auth-Token": "row-Q/a+b=7", **PLAIN},
        client_headers={"X-Api-Key": SECRET_HEADERS["X-Api-Key"]},
        cookies={"sid": "hc-Q/a+b=5"},
    )
    assert out["method"].tolist() == ["GET"]
    [arrived] = b.seen("/echo")
    assert arrived.headers["x-plain"] == "kept"
    assert "x-api-key" not in arrived.headers
    assert "x-auth-token" not in arrived.headers
    assert "cookie" not in arrived.headers
    [asked] = a.seen("/to")  # A got all of them
    assert asked.headers["x-api-key"] == SECRET_HEADERS["X-Api-Key"]
    assert "sid=" in asked.headers["cookie"]


def test_a_users_client_keeps_headers_within_the_origin(a: EchoServer) -> None:
    df = pd.DataFrame({"to": ["/echo"]})
    run_with_client(df, a.url + "/to", params={"url": "{to}"}, headers=SECRET_HEADERS)
    [arrived] = a.seen("/echo")
    assert arrived.headers["x-api-key"] == SECRET_HEADERS["X-Api-Key"]


def test_https_to_http_downgrade_sends_no_secret_in_clear_default_sender(
    tls_origin: EchoServer, a: EchoServer, trusted: ssl.SSLContext
) -> None:
    tls_origin.reset()
    df = pd.DataFrame({"to": [a.url + "/echo"]})
    out = df.aapi.fetch(
        tls_origin.url + "/to", params={"url": "{to}"}, headers={**SECRET_HEADERS, **PLAIN}
    )
    assert out["method"].tolist() == ["GET"]
    assert len(tls_origin.seen("/to")) == 1  # over TLS, with the secrets
    [arrived] = a.seen("/echo")  # in clear text: without them
    assert arrived.headers["x-plain"] == "kept"
    assert _secret_names(arrived.headers) == set()
    assert _leaked_values(arrived.headers) == []


def test_https_to_http_downgrade_on_the_same_host_and_port_too(
    tls_origin: EchoServer, trusted: ssl.SSLContext
) -> None:
    """Same host, same port, only the scheme drops to http: still another origin."""
    tls_origin.reset()
    plain_twin = tls_origin.url.replace("https://", "http://")
    df = pd.DataFrame({"to": [plain_twin + "/echo"]})
    out = df.aapi.fetch(
        tls_origin.url + "/to",
        params={"url": "{to}"},
        headers=SECRET_HEADERS,
        errors="collect",
        retries=0,
    )
    # The TLS server cannot speak http: whatever the error, no secret was sent in clear (the
    # server saw one request, the TLS one) and the error text names none.
    assert [r.path for r in tls_origin.requests] == ["/to"]
    assert not any(v in str(out.to_dict()) for v in SECRET_HEADERS.values())


def test_https_to_http_downgrade_with_a_users_client(
    tls_origin: EchoServer, a: EchoServer, trusted: ssl.SSLContext
) -> None:
    tls_origin.reset()
    df = pd.DataFrame({"to": [a.url + "/echo"]})
    run_with_client(
        df,
        tls_origin.url + "/to",
        params={"url": "{to}"},
        headers={**SECRET_HEADERS, **PLAIN},
        verify=trusted,
    )
    [arrived] = a.seen("/echo")
    assert arrived.headers["x-plain"] == "kept"
    assert _secret_names(arrived.headers) == set()


def test_a_number_timeout_bounds_the_whole_attempt_redirects_included(a: EchoServer) -> None:
    """Three hops of 0.4 s each under timeout=0.9: each hop fits, the attempt does not."""
    final = a.url + "/echo"
    second = a.url + "/to?delay=0.4&url=" + quote(final, safe="")
    first = a.url + "/to?delay=0.4&url=" + quote(second, safe="")
    df = pd.DataFrame({"url": [a.url + "/to?delay=0.4&url=" + quote(first, safe="")]})
    out = df.aapi.fetch("url", timeout=0.9, retries=0, errors="collect")
    assert out["_error"].iloc[0] == "ReadTimeout"
    assert a.seen("/echo") == []


def test_a_redirect_loop_fails_its_row_only(a: EchoServer) -> None:
    df = pd.DataFrame({"url": [a.url + "/loop", a.url + "/echo"]})
    out = df.aapi.fetch("url", errors="collect")
    assert out["_error"].iloc[0].startswith("TooManyRedirects")
    assert "redirect" in out["_error"].iloc[0]
    assert pd.isna(out["_error"].iloc[1])
    assert len(a.seen("/loop")) <= 11


# -- 2. secrets scrubbed in every form --------------------------------------------------------

TOKEN = "Q/a+b=c&d e"  # every character that percent-encoding changes
KEY_IN_URL = "USERKEY/1+2="


def forms(secret: str) -> set[str]:
    """A secret as it may show in a text: raw, percent-encoded in each style, base64-ish."""
    out = {
        secret,
        quote(secret, safe=""),
        quote(secret, safe="/"),
        quote(secret),
        quote_plus(secret),
        quote_plus(secret, safe="/"),
        str(httpx.QueryParams({"k": secret}))[2:],
        base64.b64encode(secret.encode()).decode(),
        base64.urlsafe_b64encode(secret.encode()).decode(),
        base64.b64encode(f"{secret}:".encode()).decode(),  # basic auth of a URL user name
    }
    out |= {f.lower() for f in out if "%" in f}  # %2f as well as %2F
    out |= {f.rstrip("=") for f in out}
    return {f for f in out if len(f) >= 4}


def leaks(text: str, secrets: list[str]) -> list[str]:
    return sorted({f for s in secrets for f in forms(s) if f in text})


def test_a_redirect_loop_text_names_no_percent_encoded_secret(
    a: EchoServer, caplog: pytest.LogCaptureFixture
) -> None:
    df = pd.DataFrame({"id": [1]})
    with caplog.at_level(logging.DEBUG), pytest.raises(pandas_async.FetchError) as info:
        df.aapi.fetch(a.url + "/loop", params={"api_key": TOKEN, "id": "{id}"}, retries=0)
    assert "TooManyRedirects" in str(info.value)
    texts = [str(info.value), info.value.frame.to_csv(), caplog.text]
    assert leaks("\n".join(texts), [TOKEN]) == []


def test_a_parse_callable_naming_the_url_leaks_no_secret(a: EchoServer) -> None:
    def parse(r: httpx.Response) -> Any:
        raise ValueError(f"cannot read {r.url} ({r.request.url!s})")

    df = pd.DataFrame({"id": [1]})
    out = df.aapi.fetch(
        a.url + "/echo", params={"token": TOKEN, "id": "{id}"}, parse=parse, errors="collect"
    )
    error = out["_error"].iloc[0]
    assert error.startswith("parse error") and "cannot read" in error
    assert leaks(error, [TOKEN]) == []


@pytest.mark.parametrize("sender", ["default", "client"])
def test_a_key_used_as_the_urls_user_name_is_scrubbed(a: EchoServer, sender: str) -> None:
    def parse(r: httpx.Response) -> Any:
        raise ValueError(f"cannot read {r.request.url} {r.request.headers.get('authorization')}")

    url = a.url.replace("http://", f"http://{quote(KEY_IN_URL, safe='')}:@") + "/echo"
    df = pd.DataFrame({"id": [1, 2]})
    options: dict[str, Any] = {"params": {"id": "{id}"}, "parse": parse, "errors": "collect"}
    if sender == "client":
        out = run_with_client(df, url, **options)
    else:
        out = df.aapi.fetch(url, **options)
    assert a.seen("/echo")[0].headers["authorization"].startswith("Basic ")  # it was sent
    text = out.to_csv() + repr(pandas_async.last_report())
    assert out["_error"].str.startswith("parse error").all()
    assert leaks(text, [KEY_IN_URL]) == []


def test_params_as_pairs_or_a_query_string_never_sink_the_call(a: EchoServer) -> None:
    """A params= callable may return what httpx takes: pairs, or a query string."""
    df = pd.DataFrame({"id": [1, 2, 3]})

    def params(row: pd.Series) -> Any:
        if row["id"] == 1:
            return [("api_key", TOKEN), ("id", "1")]
        if row["id"] == 2:
            return "api_key=" + quote(TOKEN, safe="") + "&id=2"
        return {"api_key": TOKEN, "id": "3"}

    def parse(r: httpx.Response) -> Any:
        raise ValueError(f"refused {r.url}")

    out = df.aapi.fetch(a.url + "/echo", params=params, parse=parse, errors="collect")
    assert out["_error"].str.startswith("parse error").all()
    assert leaks(out.to_csv(), [TOKEN]) == []
    seen = sorted(r.query_string for r in a.seen("/echo"))
    assert len(seen) == 3 and all("api_key=" in q for q in seen)


# -- the sweep: every output, every secret, every form ----------------------------------------

SWEEP = {
    "header": "hdr-S3cr3t/+=?&x",
    "bearer": "brr-T0ken/+=?&y",
    "param": "prm-K3y/+=?&z w",
    "user": "usr-N4me/+=",
    "password": "pwd-P4ss/+=?",
    "client_header": "cli-H3ad/+=",
}


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _naming_parse(r: httpx.Response) -> Any:
    """A parse= callable whose error quotes the URL and the request's headers."""
    if r.url.path == "/echo":
        raise ValueError(f"cannot read {r.url} from {r.request.url} with {r.request.headers}")
    return r.json()


def test_no_secret_in_any_output_in_any_form(
    a: EchoServer,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Secrets in a header, a bearer token, a query param, the URL's user name and password and
    a client's default header; rows that fail every way a row can (redirect loop, HTTP error,
    refused connection, unreadable and too-deep answers, a parse= callable quoting the request);
    then grep every text pandas_async produced for each secret, raw, percent-encoded and base64.
    """
    userinfo = f"{quote(SWEEP['user'], safe='')}:{quote(SWEEP['password'], safe='')}"
    closed = _closed_port()

    with_user = {"r0", "r1", "r3", "r5"}  # the others send a bearer token instead

    def url(row: pd.Series) -> str:
        port = closed if row["path"] == "closed" else a.port
        user = f"{userinfo}@" if row.name in with_user else ""
        return f"http://{user}127.0.0.1:{port}/{row['path']}"

    def headers(row: pd.Series) -> dict[str, str]:
        sent = {"X-Api-Key": SWEEP["header"]}
        if row.name not in with_user:  # aiohttp refuses both at once
            sent["Authorization"] = f"Bearer {SWEEP['bearer']}"
        return sent

    df = pd.DataFrame({"path": ["loop", "echo", "fail", "closed", "deep", "bigint", "echo"]})
    df.index = [f"r{i}" for i in range(len(df))]
    options: dict[str, Any] = {
        "headers": headers,
        "params": {"api_key": SWEEP["param"], "status": "500", "n": "1000"},
        "parse": _naming_parse,
        "retries": 0,
        "progress": True,
    }
    texts: list[str] = []
    with caplog.at_level(logging.DEBUG):
        for sender in ("default", "client"):
            if sender == "client":

                async def main() -> pd.DataFrame:
                    async with httpx.AsyncClient(
                        follow_redirects=True, headers={"X-Auth-Token": SWEEP["client_header"]}
                    ) as client:
                        return await df.aapi.afetch(url, client=client, **options)

                run = lambda: asyncio.run(main())  # noqa: E731
            else:
                run = lambda: df.aapi.fetch(url, **options)  # noqa: E731
            with pytest.raises(pandas_async.FetchError) as info:
                run()
            error = info.value
            frame = error.frame
            assert frame["_error"].notna().sum() >= 5, frame["_error"].tolist()
            report = pandas_async.last_report()
            texts += [
                str(error),
                repr(error),
                str(error.counts),
                frame.to_csv(),
                frame.to_string(),
                frame.to_html(),
                repr(frame.to_dict()),
                str(report),
                repr(report),
                report._repr_html_() if report is not None else "",
            ]
        preview = df.aapi.preview(url, n=7, **{k: v for k, v in options.items() if k != "parse"})
        texts += [preview.to_string(), repr(preview.to_dict()), preview.to_html()]
    captured = capsys.readouterr()
    texts += [caplog.text, captured.out, captured.err]
    assert "pandas_async" in captured.err  # the progress bar did draw
    text = "\n".join(texts)
    found = leaks(text, list(SWEEP.values()))
    where = [text[max(0, text.find(f) - 300) : text.find(f) + 50] for f in found]
    assert found == [], where


def test_a_cool_down_report_names_the_host_not_the_user_in_the_url(a: EchoServer) -> None:
    """The report lists hosts that kept rows waiting; a URL's user name is no part of a host."""
    url = a.url.replace("http://", f"http://{quote(KEY_IN_URL, safe='')}:@") + "/fail"
    df = pd.DataFrame({"id": [1, 2]})
    df.aapi.fetch(
        url,
        params={"status": "429", "retry_after": "0.2", "id": "{id}"},
        retries=pandas_async.Retry(attempts=1, backoff=0.01),
        errors="collect",
    )
    report = pandas_async.last_report()
    assert report is not None
    assert report.cooldown_by_host, "the 429 + Retry-After started a cool-down"
    assert list(report.cooldown_by_host) == [f"127.0.0.1:{a.port}"]
    text = str(report) + repr(report) + report._repr_html_()
    assert leaks(text, [KEY_IN_URL]) == []


def test_preview_masks_a_query_string_and_shows_rows_that_would_fail(a: EchoServer) -> None:
    def params(row: pd.Series) -> Any:
        if row["id"] == 2:
            raise LookupError("no key for this row")
        return "api_key=" + quote(TOKEN, safe="") + f"&id={row['id']}"

    df = pd.DataFrame({"id": [1, 2]})
    shown = df.aapi.preview(a.url + "/echo", params=params)
    assert shown["params"].iloc[0] == "api_key=***&id=1"
    assert pd.isna(shown["error"].iloc[0])
    assert shown["error"].iloc[1] == "params= callable raised LookupError: no key for this row"
    assert leaks(shown.to_string() + repr(shown.to_dict()), [TOKEN]) == []
    assert a.requests == []
