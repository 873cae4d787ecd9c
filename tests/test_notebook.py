"""DESIGN.md section 1: fetch works in a real Jupyter kernel (a running loop), no setup."""

from __future__ import annotations

from pathlib import Path

import nbclient
import nbformat
import pytest

from tests.server import TestServer

# nbclient, nbformat and ipykernel are in the [test] extra: a missing one fails this test rather
# than skipping it, so CI always runs a real kernel.


def _text_of(outputs: list[dict[str, object]]) -> str:
    parts: list[str] = []
    for output in outputs:
        if output.get("output_type") == "stream":
            parts.append(str(output.get("text", "")))
        elif output.get("output_type") in {"execute_result", "display_data"}:
            data = output.get("data", {})
            assert isinstance(data, dict)
            parts.append(str(data.get("text/plain", "")))
        elif output.get("output_type") == "error":
            parts.append(f"ERROR {output.get('ename')}: {output.get('evalue')}")
    return "".join(parts)


@pytest.mark.notebook
def test_fetch_in_a_jupyter_kernel(server: TestServer, tmp_path: Path) -> None:
    url = server.url
    setup = """
import asyncio
run_before, get_loop_before = asyncio.run, asyncio.get_event_loop
import pandas as pd
import pandas_async
df = pd.DataFrame({"user_id": [1, 2]}, index=["a", "b"])
"""
    sync_cell = f"""
out = df.aapi.fetch("{url}/users/{{user_id}}")
print("SYNC", out["name"].tolist(), out.index.tolist())
out
"""
    async_cell = f"""
out2 = await df.aapi.afetch("{url}/users/{{user_id}}", prefix="u_")
print("ASYNC", out2["u_address.city"].tolist())
"""
    check_cell = """
print("PATCHED", asyncio.run is not run_before or asyncio.get_event_loop is not get_loop_before)
"""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(src) for src in (setup, sync_cell, async_cell, check_cell)
    ]
    client = nbclient.NotebookClient(
        nb,
        timeout=60,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()

    sync_text = _text_of(nb.cells[1].outputs)
    assert "SYNC ['User 1', 'User 2'] ['a', 'b']" in sync_text
    assert "User 2" in sync_text.split("SYNC", 1)[1]  # the displayed frame
    assert "ASYNC ['City 1', 'City 2']" in _text_of(nb.cells[2].outputs)
    assert "PATCHED False" in _text_of(nb.cells[3].outputs)
    assert server.count("/users/") == 4
