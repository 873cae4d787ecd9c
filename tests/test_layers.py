"""The package's layers: README "How it is built" draws the list import-linter checks."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _contract_layers() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    (main,) = [c for c in contracts if c.get("containers") == ["pandas_async"]]
    return list(main["layers"])


def _readme_layers() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## How it is built", 1)[1]
    diagram = re.search(r"```\n(.*?)```", section, re.DOTALL)
    assert diagram is not None, 'README "How it is built" has no layer diagram'
    # Each line: the layer as the contract spells it, then (after 2+ spaces) what it holds.
    return [re.split(r"\s{2,}", line.strip())[0] for line in diagram.group(1).splitlines()]


def test_readme_diagram_is_the_layer_contract() -> None:
    assert _readme_layers() == _contract_layers()
