"""Shared fixtures: one real HTTP test API per session, its observations reset per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.server import TestServer


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "notebook: runs a real Jupyter kernel (slower; selected with -m notebook)"
    )
    config.addinivalue_line("markers", "subprocess: runs Python in a child process")


@pytest.fixture(scope="session")
def _server_session() -> Iterator[TestServer]:
    server = TestServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def server(_server_session: TestServer) -> Iterator[TestServer]:
    """The running test API, with every counter and record cleared for this test."""
    _server_session.reset()
    yield _server_session
    _server_session.reset()
