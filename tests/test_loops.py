"""DESIGN.md sections 1 and 5: fetch from a script, under a running loop, after nest_asyncio,
afetch in a loop, asyncio never patched, and prompt cancellation (task cancel and Ctrl-C)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

import pandas_async
from tests.helpers import users_frame
from tests.server import TestServer

ROOT = Path(__file__).resolve().parent.parent

# Snapshot of asyncio's global entry points, taken before and after using pandas_async.
ASYNCIO_SNAPSHOT = """
import asyncio, asyncio.events, asyncio.tasks, asyncio.futures
def snapshot():
    return {
        "run": asyncio.run,
        "get_event_loop": asyncio.get_event_loop,
        "new_event_loop": asyncio.new_event_loop,
        "events._get_running_loop": asyncio.events._get_running_loop,
        "events.get_running_loop": asyncio.events.get_running_loop,
        "Task": asyncio.Task,
        "tasks.Task": asyncio.tasks.Task,
        "Future": asyncio.Future,
        "futures.Future": asyncio.futures.Future,
        "BaseEventLoop.run_until_complete": asyncio.BaseEventLoop.run_until_complete,
        "BaseEventLoop.run_forever": asyncio.BaseEventLoop.run_forever,
        "BaseEventLoop._run_once": asyncio.BaseEventLoop._run_once,
        "policy": asyncio.get_event_loop_policy(),
    }
def changed(before, after):
    return sorted(k for k in before if before[k] is not after[k])
"""


def run_script(body: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    code = textwrap.dedent(ASYNCIO_SNAPSHOT) + textwrap.dedent(body)
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )


def asyncio_snapshot() -> dict[str, object]:
    namespace: dict[str, object] = {}
    exec(ASYNCIO_SNAPSHOT, namespace)
    snapshot = namespace["snapshot"]
    assert callable(snapshot)
    result = snapshot()
    assert isinstance(result, dict)
    return result


# -- a plain script -------------------------------------------------------------------------


@pytest.mark.subprocess
def test_fetch_in_a_plain_script_without_patching_asyncio(server: TestServer) -> None:
    result = run_script(
        """
        import sys
        before = snapshot()
        import pandas as pd
        import pandas_async
        df = pd.DataFrame({"user_id": [1, 2]})
        out = df.aapi.fetch(sys.argv[1] + "/users/{user_id}")
        out2 = df.aapi.fetch(sys.argv[1] + "/users/{user_id}", dedupe=False)
        print("NAMES", out["name"].tolist(), out2["name"].tolist())
        print("CHANGED", changed(before, snapshot()))
        print("NEST", "nest_asyncio" in sys.modules, "nest_asyncio2" in sys.modules)
        """,
        server.url,
    )
    assert result.returncode == 0, result.stderr
    assert "NAMES ['User 1', 'User 2'] ['User 1', 'User 2']" in result.stdout
    assert "CHANGED []" in result.stdout
    assert "NEST False False" in result.stdout
    assert server.count("/users/") == 4


def test_fetch_in_this_process_without_a_loop(server: TestServer) -> None:
    before = asyncio_snapshot()
    out = users_frame([1]).aapi.fetch(server.url + "/users/{user_id}")
    assert out["name"].tolist() == ["User 1"]
    after = asyncio_snapshot()
    assert [k for k in before if before[k] is not after[k]] == []


# -- inside a running loop ------------------------------------------------------------------


def test_sync_fetch_inside_asyncio_run(server: TestServer) -> None:
    async def main() -> tuple[pd.DataFrame, pd.DataFrame, asyncio.AbstractEventLoop]:
        loop = asyncio.get_running_loop()
        first = users_frame([1, 2]).aapi.fetch(server.url + "/users/{user_id}")
        # A second call must work too (a private loop is reused or made again, not broken).
        second = users_frame([3]).aapi.fetch(server.url + "/users/{user_id}")
        assert asyncio.get_running_loop() is loop
        return first, second, loop

    before = asyncio_snapshot()
    first, second, _ = asyncio.run(main())
    after = asyncio_snapshot()
    assert first["name"].tolist() == ["User 1", "User 2"]
    assert second["name"].tolist() == ["User 3"]
    assert [k for k in before if before[k] is not after[k]] == []


def test_sync_fetch_inside_a_loop_with_errors_raise(server: TestServer) -> None:
    async def main() -> None:
        users_frame([5000]).aapi.fetch(server.url + "/users/{user_id}")

    with pytest.raises(pandas_async.FetchError):
        asyncio.run(main())


def test_await_afetch_inside_a_loop(server: TestServer) -> None:
    async def main() -> list[pd.DataFrame]:
        a = users_frame([1, 2]).aapi.afetch(server.url + "/users/{user_id}")
        b = users_frame([3]).aapi.afetch(server.url + "/users/{user_id}", how="rows")
        return list(await asyncio.gather(a, b))

    a, b = asyncio.run(main())
    assert a["name"].tolist() == ["User 1", "User 2"]
    assert b["name"].tolist() == ["User 3"]


def test_afetch_does_not_block_the_loop(server: TestServer) -> None:
    async def main() -> int:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        tick_task = asyncio.create_task(ticker())
        await pd.DataFrame({"i": range(3)}).aapi.afetch(
            server.url + "/slow", params={"delay": "0.3", "i": "{i}"}
        )
        tick_task.cancel()
        return ticks

    assert asyncio.run(main()) >= 10


@pytest.mark.subprocess
def test_fetch_after_nest_asyncio_apply(server: TestServer) -> None:
    result = run_script(
        """
        import sys, asyncio, warnings
        warnings.simplefilter("ignore", DeprecationWarning)
        import nest_asyncio
        nest_asyncio.apply()
        patched = snapshot()
        import pandas as pd
        import pandas_async
        url = sys.argv[1] + "/users/{user_id}"
        df = pd.DataFrame({"user_id": [1, 2]})
        plain = df.aapi.fetch(url)
        async def main():
            return df.aapi.fetch(url, dedupe=False)
        nested = asyncio.run(main())
        loop = asyncio.get_event_loop()
        again = loop.run_until_complete(main())
        print("NAMES", plain["name"].tolist(), nested["name"].tolist(), again["name"].tolist())
        print("CHANGED", changed(patched, snapshot()))
        """,
        server.url,
    )
    assert result.returncode == 0, result.stderr
    names = "['User 1', 'User 2']"
    assert f"NAMES {names} {names} {names}" in result.stdout
    assert "CHANGED []" in result.stdout


# -- cancellation ---------------------------------------------------------------------------


def test_cancelling_afetch_stops_requests_and_closes_connections(server: TestServer) -> None:
    df = pd.DataFrame({"i": range(5)})

    async def main() -> float:
        task = asyncio.create_task(
            df.aapi.afetch(server.url + "/slow", params={"delay": "5", "i": "{i}"}, concurrency=5)
        )
        for _ in range(300):
            if server.in_flight >= 5:
                break
            await asyncio.sleep(0.01)
        assert server.in_flight == 5
        started = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic() - started

    took = asyncio.run(main())
    assert took < 0.5
    assert server.wait_for(lambda: server.in_flight == 0, timeout=1.0), server.in_flight
    assert server.cancelled == 5  # the server saw every connection go away
    assert server.count("/slow") == 5


def test_wait_for_timeout_around_afetch_is_prompt(server: TestServer) -> None:
    df = pd.DataFrame({"i": range(3)})

    async def main() -> None:
        await asyncio.wait_for(
            df.aapi.afetch(server.url + "/slow", params={"delay": "5", "i": "{i}"}), 0.3
        )

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        asyncio.run(main())
    assert time.monotonic() - started < 0.9
    assert server.wait_for(lambda: server.in_flight == 0, timeout=1.0), server.in_flight


@pytest.mark.subprocess
@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process is POSIX-only")
def test_ctrl_c_during_fetch_stops_promptly(server: TestServer) -> None:
    code = textwrap.dedent(
        """
        import sys
        import pandas as pd
        import pandas_async
        df = pd.DataFrame({"i": range(4)})
        df.aapi.fetch(sys.argv[1] + "/slow", params={"delay": "10", "i": "{i}"})
        print("FINISHED")
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, server.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert server.wait_for(lambda: server.in_flight == 4, timeout=20), proc.poll()
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=5)
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert "FINISHED" not in stdout
    assert proc.returncode != 0
    assert "KeyboardInterrupt" in stderr
    assert took < 2.0
    assert server.wait_for(lambda: server.in_flight == 0, timeout=1.0), server.in_flight
