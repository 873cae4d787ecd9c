"""DESIGN.md sections 1, 2, 4 and 6: documented behaviour that must hold at the edges. Cookies are
kept for the call on IP hosts; parse="csv" honours the declared charset; JSON behind a UTF-8 BOM is
read; schemes match in any case; templates name columns of any label; whole-number floats fill as
integers; pages that repeat the previous page stop as a pagination loop; no widget warning in
Jupyter without ipywidgets.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import pandas_async
from tests.raw_server import RawServer
from tests.server import TestServer

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def raw() -> Iterator[RawServer]:
    with RawServer() as server:
        yield server


def fetch_urls(urls: list[str], **options: object) -> pd.DataFrame:
    out: pd.DataFrame = pd.DataFrame({"url": urls}).aapi.fetch(
        "url",
        errors="collect",
        **options,  # type: ignore[arg-type]
    )
    return out


def test_cookies_are_kept_for_the_call_on_an_ip_host(raw: RawServer) -> None:
    assert raw.url.startswith("http://127.0.0.1:")
    out = fetch_urls([f"{raw.url}/cookie/set", f"{raw.url}/cookie/get"], concurrency=1)
    assert out["cookie"].tolist()[1] == "sid=s3"


def test_csv_honours_the_declared_charset(raw: RawServer) -> None:
    out = fetch_urls([f"{raw.url}/latin1.csv"], parse="csv")
    assert out["name"].tolist() == ["José"]
    assert out["city"].tolist() == ["Málaga"]


def test_json_behind_a_utf8_byte_order_mark_is_read(raw: RawServer) -> None:
    out = fetch_urls([f"{raw.url}/bom.json"])
    assert out["_error"].isna().all(), out["_error"].iloc[0]
    assert out["name"].tolist() == ["Zoë"]


def test_an_upper_case_scheme_is_accepted(server: TestServer) -> None:
    url = server.url.replace("http://", "HTTP://") + "/users/1"
    out = pd.DataFrame({"url": [url]}).aapi.fetch("url")
    assert out["name"].tolist() == ["User 1"]


def test_a_template_names_a_column_of_any_label(server: TestServer) -> None:
    df = pd.read_csv(io.StringIO("1,x\n2,y\n"), header=None)
    assert list(df.columns) == [0, 1]
    out = df.aapi.fetch(server.url + "/users/{0}", params={"tag": "{1}"})
    assert out["name"].tolist() == ["User 1", "User 2"]
    assert [r.query["tag"] for r in server.requests_to("/users/")] == ["x", "y"]


def test_whole_number_floats_fill_as_integers(server: TestServer) -> None:
    df = pd.DataFrame({"user_id": [1.0, 2.0], "ratio": [0.5, 3.0]})
    out = df.aapi.fetch(
        server.url + "/echo/{user_id}",
        params={"id": "{user_id}", "ratio": "{ratio}", "label": "u{user_id}"},
        headers={"X-Id": "{user_id}"},
        how="columns",
    )
    assert out["path"].tolist() == ["/echo/1", "/echo/2"]
    assert out["query.id"].tolist() == ["1", "2"]
    assert out["query.label"].tolist() == ["u1", "u2"]
    assert out["query.ratio"].tolist() == ["0.5", "3"]
    assert out["headers.x-id"].tolist() == ["1", "2"]


def test_pages_that_repeat_the_previous_page_stop_as_a_pagination_loop(raw: RawServer) -> None:
    df = pd.DataFrame({"k": ["a"]})
    # The API ignores ?page=: every page is the first. max_pages only keeps a regression short.
    out = df.aapi.fetch(
        raw.url + "/same?k={k}",
        paginate=pandas_async.PageNumber("page", max_pages=50),
        errors="collect",
    )
    assert out["id"].tolist() == [1, 2]  # the records of the first page are kept
    error = out["_error"].iloc[0]
    assert error.startswith("pagination loop"), error
    assert "page 2" in error
    assert pandas_async.last_report().requests == 2


@pytest.mark.notebook
def test_no_widget_warning_in_jupyter_without_ipywidgets(server: TestServer) -> None:
    jupyter_client = pytest.importorskip("jupyter_client")
    manager = jupyter_client.KernelManager(kernel_name="python3")
    manager.start_kernel(cwd=str(ROOT), env={**os.environ, "PYTHONPATH": str(ROOT)})
    kc = manager.client()
    kc.start_channels()
    texts: list[str] = []

    def keep(msg: dict[str, object]) -> None:
        content = msg["content"]
        assert isinstance(content, dict)
        texts.append(str(content.get("text", "")) + str(content.get("data", "")))

    try:
        kc.wait_for_ready(timeout=60)
        code = (
            "import sys\n"
            "sys.modules['ipywidgets'] = None  # as if the [notebook] extra were not installed\n"
            "import pandas as pd, pandas_async\n"
            "df = pd.DataFrame({'user_id': [1, 2]})\n"
            f"out = df.aapi.fetch('{server.url}/users/{{user_id}}', progress=True)\n"
            "print('NAMES', out['name'].tolist())\n"
        )
        reply = kc.execute_interactive(code, timeout=60, output_hook=keep)
        assert reply["content"]["status"] == "ok", reply["content"]
    finally:
        kc.stop_channels()
        manager.shutdown_kernel(now=True)
    text = "".join(texts)
    assert "NAMES ['User 1', 'User 2']" in text
    assert "IProgress" not in text and "ipywidgets" not in text, text
    assert "2/2" in text  # the text bar was drawn
