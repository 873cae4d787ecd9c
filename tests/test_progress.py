"""progress=: a tqdm.auto bar with rows done, failed rows, retries and requests/s (terminal side).

The notebook side (an ipywidgets bar in a real kernel) is checked in tests/test_notebooks.py.
"""

from __future__ import annotations

import re

import pandas as pd
import pytest

from tests.helpers import fast_retry, unique, users_frame
from tests.server import TestServer


def _last_bar(err: str) -> str:
    return re.split(r"[\r\n]", err.strip())[-1]


def test_bar_shows_rows_failed_retries_and_requests_per_second(
    server: TestServer, capsys: pytest.CaptureFixture[str]
) -> None:
    df = pd.DataFrame({"key": [unique(), unique(), unique()]})
    df.aapi.fetch(
        f"{server.url}/flaky/{{key}}?fail=1",
        retries=fast_retry(2),
        progress=True,
    )
    users_frame([1, 9999]).aapi.fetch(
        f"{server.url}/users/{{user_id}}", progress=True, errors="collect", retries=0
    )
    first, second = [line for line in capsys.readouterr().err.split("\n") if line.strip()][-2:]
    first, second = _last_bar(first), _last_bar(second)
    assert "3/3" in first
    assert "failed=0 retries=3 req/s=" in first  # three rows, each retried once
    assert "2/2" in second
    assert "failed=1 retries=0 req/s=" in second
    rate = float(re.search(r"req/s=([0-9.]+)", first).group(1))  # type: ignore[union-attr]
    assert rate > 0


def test_progress_false_shows_nothing(server: TestServer, capsys: pytest.CaptureFixture[str]):
    users_frame([1, 2]).aapi.fetch(f"{server.url}/users/{{user_id}}", progress=False)
    assert capsys.readouterr().err == ""


def test_progress_none_stays_quiet_for_quick_calls(
    server: TestServer, capsys: pytest.CaptureFixture[str]
) -> None:
    users_frame([1, 2, 3]).aapi.fetch(f"{server.url}/users/{{user_id}}")
    assert "pandas_async" not in capsys.readouterr().err


def test_progress_none_shows_the_bar_once_the_call_is_slow(
    server: TestServer, capsys: pytest.CaptureFixture[str]
) -> None:
    # No row finishes before the 2 s mark: the bar appears anyway, at 0 of 1.
    pd.DataFrame({"d": [2.4]}).aapi.fetch(f"{server.url}/slow", params={"delay": "{d}"})
    err = capsys.readouterr().err
    assert "pandas_async:   0%" in err
    assert "0/1" in err
