"""Shared fixtures: one real HTTP test API per session, its observations reset per test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.server import TestServer


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "notebook: runs a real Jupyter kernel (slower; selected with -m notebook)"
    )
    config.addinivalue_line("markers", "subprocess: runs Python in a child process")
    config.addinivalue_line(
        "markers",
        "slow: heavy or long (real nginx, clusters, memory ceilings); runs in CI (CI=true) "
        "or with --runslow, skipped by a plain local pytest",
    )


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow") or os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        return
    skip = pytest.mark.skip(reason="slow: runs in CI, or locally with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


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
