"""http2=True: requests go through pandas_async's own httpx.AsyncClient(http2=True), over TLS
to a real hypercorn server (certificate from a trustme CA) that says which HTTP version it saw."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
import trustme

import pandas_async
from pandas_async import _transport
from tests.h2_server import H2Server
from tests.server import TestServer

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def h2(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[H2Server]:
    folder = tmp_path_factory.mktemp("h2")
    cert = ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(folder / "cert.pem"))
    for pem in cert.cert_chain_pems[1:]:
        pem.write_to_path(str(folder / "cert.pem"), append=True)
    cert.private_key_pem.write_to_path(str(folder / "key.pem"))
    server = H2Server(str(folder / "cert.pem"), str(folder / "key.pem")).start()
    yield server
    server.stop()


@pytest.fixture
def trusted(ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process trusts the test CA the way a user trusts a private CA: SSL_CERT_FILE."""
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    _transport.tls_context.cache_clear()  # made once per process: make it again with the CA
    yield
    _transport.tls_context.cache_clear()


def test_http2_true_speaks_http2_to_the_server(h2: H2Server, trusted: None) -> None:
    h2.app.versions.clear()
    df = pd.DataFrame({"user_id": [1, 2, 3, 4]}, index=list("abcd"))
    out = df.aapi.fetch(f"{h2.url}/users/{{user_id}}", http2=True)
    assert out["name"].tolist() == ["User 1", "User 2", "User 3", "User 4"]
    assert out["http_version"].tolist() == ["2"] * 4
    assert out.index.tolist() == list("abcd")
    assert h2.app.versions == ["2"] * 4  # the server saw HTTP/2 for every request


def test_the_default_sender_speaks_http1_to_the_same_server(h2: H2Server, trusted: None) -> None:
    h2.app.versions.clear()
    out = pd.DataFrame({"user_id": [1, 2]}).aapi.fetch(f"{h2.url}/users/{{user_id}}")
    assert out["http_version"].tolist() == ["1.1", "1.1"]
    assert h2.app.versions == ["1.1", "1.1"]


def test_retries_redirects_and_the_report_work_over_http2(h2: H2Server, trusted: None) -> None:
    h2.app.versions.clear()
    df = pd.DataFrame({"key": ["a1", "b2"]})
    out = df.aapi.fetch(
        f"{h2.url}/flaky/{{key}}", http2=True, retries=pandas_async.Retry(attempts=2, backoff=0.01)
    )
    assert out["call"].tolist() == [2, 2]  # each row's first try got a 503
    report = pandas_async.last_report()
    assert report is not None and report.retries == 2 and report.requests == 4
    moved = pd.DataFrame({"to": ["/users/7"]}).aapi.fetch(
        f"{h2.url}/redirect?to={{to}}", http2=True
    )
    assert moved["name"].tolist() == ["User 7"]
    assert set(h2.app.versions) == {"2"}


def test_http2_works_from_afetch_and_from_fetch_in_a_running_loop(
    h2: H2Server, trusted: None
) -> None:
    """The client is made on the loop that runs the call, so every loop gets its own."""
    url = f"{h2.url}/users/{{user_id}}"

    async def main() -> list[str]:
        first = await pd.DataFrame({"user_id": [1]}).aapi.afetch(url, http2=True)
        second = pd.DataFrame({"user_id": [2]}).aapi.fetch(url, http2=True)  # background loop
        third = await pd.DataFrame({"user_id": [3]}).aapi.afetch(url, http2=True)
        return [*first["name"], *second["name"], *third["name"]]

    assert asyncio.run(main()) == ["User 1", "User 2", "User 3"]
    assert pd.DataFrame({"user_id": [4]}).aapi.fetch(url, http2=True)["name"].tolist() == ["User 4"]


def test_the_http2_client_is_closed_at_the_end_of_each_call(
    h2: H2Server, trusted: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[httpx.AsyncClient] = []
    real = _transport.Http2Sender.__init__

    def spy(self: _transport.Http2Sender, **kwargs: object) -> None:
        real(self, **kwargs)  # type: ignore[arg-type]
        made.append(self.client)

    monkeypatch.setattr(_transport.Http2Sender, "__init__", spy)
    df = pd.DataFrame({"user_id": [1, 2]})
    df.aapi.fetch(f"{h2.url}/users/{{user_id}}", http2=True)
    df.aapi.fetch(f"{h2.url}/users/{{user_id}}", http2=True, errors="collect")
    assert len(made) == 2 and made[0] is not made[1]
    assert all(client.is_closed for client in made)


def test_an_untrusted_certificate_still_fails_with_http2(h2: H2Server) -> None:
    _transport.tls_context.cache_clear()
    out = pd.DataFrame({"user_id": [1]}).aapi.fetch(
        f"{h2.url}/users/{{user_id}}", http2=True, errors="collect", retries=0
    )
    assert out["_error"].str.startswith("certificate verify failed").tolist() == [True]


def test_http2_with_a_client_of_your_own_is_refused_before_any_request(
    server: TestServer,
) -> None:
    async def main() -> None:
        async with httpx.AsyncClient() as client:
            await pd.DataFrame({"user_id": [1]}).aapi.afetch(
                f"{server.url}/users/{{user_id}}", client=client, http2=True
            )

    with pytest.raises(
        ValueError, match=r"http2=True .* client= .*httpx.AsyncClient\(http2=True\)"
    ):
        asyncio.run(main())
    with pytest.raises(TypeError, match="http2= expects True or False"):
        pd.DataFrame({"user_id": [1]}).aapi.fetch(f"{server.url}/users/{{user_id}}", http2="yes")
    assert server.count() == 0


def test_your_own_http2_client_works_too(h2: H2Server, ca: trustme.CA) -> None:
    import ssl

    context = ssl.create_default_context()
    ca.configure_trust(context)
    h2.app.versions.clear()

    async def main() -> pd.DataFrame:
        async with httpx.AsyncClient(http2=True, verify=context) as client:
            return await pd.DataFrame({"user_id": [5]}).aapi.afetch(
                f"{h2.url}/users/{{user_id}}", client=client
            )

    assert asyncio.run(main())["http_version"].tolist() == ["2"]
    assert h2.app.versions == ["2"]


@pytest.mark.subprocess
def test_without_h2_http2_true_fails_before_any_request_naming_the_extra(
    server: TestServer,
) -> None:
    code = textwrap.dedent(
        """
        import json, sys
        sys.modules["h2"] = None  # as if h2 were not installed: importing it fails
        import pandas as pd
        import pandas_async
        try:
            pd.DataFrame({"user_id": [1]}).aapi.fetch(sys.argv[1] + "/users/{user_id}", http2=True)
        except ImportError as exc:
            print(json.dumps({"error": str(exc)}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code, server.url],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    error = json.loads(result.stdout.strip().splitlines()[-1])["error"]
    assert "http2=True needs the h2 package" in error
    assert "pip install 'pandas-async[http2]'" in error
    assert server.count() == 0
