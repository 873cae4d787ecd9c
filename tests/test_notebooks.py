"""Every notebook in notebooks/ runs top to bottom in a real Jupyter kernel, offline.

nbclient, nbformat, ipykernel, ipywidgets, matplotlib and pyarrow are in the [test] extra: a
missing one fails these tests rather than skipping them, so CI always runs the notebooks.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbclient
import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))
# A cluster of worker processes and 100,000 requests: minutes, so slow (CI runs it), with
# room for its longest cell.
LONG = {"04_dask": 600}


def _run_params() -> list[object]:
    return [
        pytest.param(
            path,
            id=path.stem,
            marks=[pytest.mark.slow, pytest.mark.timeout(4 * LONG[path.stem])]
            if path.stem in LONG
            else [],
        )
        for path in PATHS
    ]


WIDGET = "application/vnd.jupyter.widget-view+json"


def _outputs(nb: nbformat.NotebookNode) -> list[dict[str, object]]:
    return [output for cell in nb.cells for output in cell.get("outputs", [])]


def test_there_are_at_least_three_notebooks() -> None:
    names = [path.name for path in PATHS]
    assert len(names) >= 3, names
    assert any("quickstart" in n for n in names)
    assert any("parquet" in n for n in names)
    assert any("performance" in n for n in names)


@pytest.mark.notebook
@pytest.mark.parametrize("path", _run_params())
def test_notebook_runs_top_to_bottom(path: Path, tmp_path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=LONG.get(path.stem, 90),
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    errors = [o for o in _outputs(nb) if o.get("output_type") == "error"]
    assert not errors
    stderr = [
        str(o.get("text", ""))
        for o in _outputs(nb)
        if o.get("name") == "stderr" and "pandas_async" not in str(o.get("text", ""))
    ]
    assert not stderr, stderr  # no warnings either
    assert not list(tmp_path.iterdir())  # the Parquet notebook cleans up its temporary folder


@pytest.mark.notebook
def test_progress_true_is_a_widget_in_a_kernel_and_quick_calls_make_none(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(src)
        for src in (
            "import pandas as pd\nimport pandas_async\nfrom pandas_async import demo\n"
            "server = demo.DemoServer(latency=0.01).start()\n"
            "df = pd.DataFrame({'user_id': [1, 2, 3]})",
            "_ = df.aapi.fetch(server.url + '/users/{user_id}', progress=True)",
            "_ = df.aapi.fetch(server.url + '/users/{user_id}')",
            "server.stop()",
        )
    ]
    client = nbclient.NotebookClient(
        nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    shown = [o for o in nb.cells[1].outputs if WIDGET in o.get("data", {})]
    assert len(shown) == 1
    assert nb.cells[2].outputs == []  # progress=None, a quick call: no bar, no widget
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    bars = [m for m in state.values() if m["model_name"] == "HBoxModel"]
    assert len(bars) == 1  # the quick call did not even create a hidden widget
    texts = [str(m["state"].get("value", "")).replace("\u2007", " ") for m in state.values()]
    assert any("3/3" in t and "failed=0 retries=0 req/s=" in t for t in texts), texts


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_committed_with_outputs_and_without_local_paths(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code and all(cell.get("execution_count") for cell in code), "run notebooks/_build.py"
    assert any(cell.outputs for cell in code)
    text = json.dumps(nb)
    for marker in ("/tmp/", "/home/", "/Users/", "/work/", "site-packages", "Traceback"):
        assert marker not in text, marker
    for secret in ("my-secret-key", "my-secret-token"):  # the preview shows *** instead
        sources = "".join(cell.source for cell in code)
        outputs = json.dumps([cell.outputs for cell in code])
        assert secret not in outputs
        if secret in sources:
            assert "***" in outputs
    assert path.stat().st_size < 250_000
