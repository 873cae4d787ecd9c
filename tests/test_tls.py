"""TLS: certificates are verified by default; trust is configured on a client of your own."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator

import httpx
import pandas as pd
import pytest
import trustme

import pandas_async  # noqa: F401  (registers the accessors)
from tests.server import TestServer


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_server(ca: trustme.CA) -> Iterator[TestServer]:
    """The test API over HTTPS, with a certificate from a CA nobody trusts by default."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    server = TestServer(ssl_context=context)
    server.start()
    yield server
    server.stop()


def test_an_untrusted_certificate_fails_the_row_by_default(tls_server: TestServer) -> None:
    tls_server.reset()
    df = pd.DataFrame({"id": [1, 2]})
    out = df.aapi.fetch(tls_server.url + "/users/{id}", errors="collect", retries=0)
    # Said in words (not a bare ConnectError, like a refused port), and not retried.
    assert out["_error"].str.startswith("certificate verify failed").all(), out["_error"][0]
    assert out["_attempts"].tolist() == [1, 1]
    assert out["_status"].isna().all()
    assert tls_server.requests == []  # the handshake failed: no request reached the API


def test_a_client_that_trusts_the_ca_gets_the_answers(
    tls_server: TestServer, ca: trustme.CA
) -> None:
    tls_server.reset()
    context = ssl.create_default_context()
    ca.configure_trust(context)

    async def main() -> pd.DataFrame:
        async with httpx.AsyncClient(verify=context) as client:
            df = pd.DataFrame({"id": [1, 2]})
            return await df.aapi.afetch(tls_server.url + "/users/{id}", client=client)

    out = asyncio.run(main())
    assert out["name"].tolist() == ["User 1", "User 2"]


def test_the_ca_bundle_is_loaded_once_per_process_and_only_for_https(
    tls_server: TestServer, server: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loading certifi's CAs costs ~20 ms of CPU: an http:// call never pays it, https once."""
    from pandas_async import _transport

    made: list[ssl.SSLContext] = []
    real = httpx.create_ssl_context

    def counting() -> ssl.SSLContext:
        made.append(real())
        return made[-1]

    monkeypatch.setattr(httpx, "create_ssl_context", counting)
    _transport.tls_context.cache_clear()
    df = pd.DataFrame({"id": [1, 2]})
    for _ in range(2):
        assert df.aapi.fetch(server.url + "/users/{id}")["name"].tolist() == ["User 1", "User 2"]
    assert made == []
    for _ in range(2):
        out = df.aapi.fetch(tls_server.url + "/users/{id}", errors="collect", retries=0)
        assert out["_status"].isna().all()  # still verified: the test CA is not trusted
    assert len(made) == 1
    _transport.tls_context.cache_clear()
