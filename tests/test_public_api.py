"""The public surface: pandas_async.__all__ (like httpx's tests/test_exported_members.py)."""

from __future__ import annotations
import __future__

import importlib.metadata
import types

import pandas as pd

import pandas_async

REQUIRED = {
    "FetchError",
    "Report",
    "Retry",
    "__version__",
    "defaults",
    "last_report",
    "reset_defaults",
    "set_defaults",
}


def test_all_lists_exactly_the_public_names() -> None:
    public = {
        name
        for name, value in vars(pandas_async).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and not isinstance(value, __future__._Feature)
    }
    exported = set(pandas_async.__all__)
    assert public == exported - {"__version__"}
    assert len(pandas_async.__all__) == len(exported)  # no duplicates


def test_required_names_are_exported_and_importable() -> None:
    assert set(pandas_async.__all__) >= REQUIRED
    for name in pandas_async.__all__:
        assert getattr(pandas_async, name) is not None


def test_star_import_gives_the_public_names() -> None:
    namespace: dict[str, object] = {}
    exec("from pandas_async import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(pandas_async.__all__)


def test_version_matches_the_distribution() -> None:
    assert isinstance(pandas_async.__version__, str)
    assert pandas_async.__version__ == importlib.metadata.version("pandas-async")


def test_retry_is_a_value_object() -> None:
    retry = pandas_async.Retry(attempts=2, backoff=0.01)
    assert retry == pandas_async.Retry(attempts=2, backoff=0.01)
    assert retry != pandas_async.Retry(attempts=3, backoff=0.01)
    assert "Retry(" in repr(retry)
    assert "attempts=2" in repr(retry)


def test_retry_defaults() -> None:
    default = pandas_async.Retry()
    assert default == pandas_async.Retry(
        attempts=3, backoff=0.5, max_wait=30.0, statuses=(408, 425, 429, 500, 502, 503, 504)
    )


def test_accessors_have_documented_methods() -> None:
    frame_accessor = pd.DataFrame({"a": [1]}).aapi
    series_accessor = pd.Series(["http://x/"]).aapi
    for accessor in (frame_accessor, series_accessor):
        for name in ("fetch", "afetch", "preview"):
            method = getattr(accessor, name)
            assert callable(method)
            assert method.__doc__


def test_all_is_sorted() -> None:
    assert pandas_async.__all__ == sorted(pandas_async.__all__)
