"""pandas_async: enrich pandas DataFrames from HTTP APIs, concurrently, in one call.

>>> import pandas_async  # registers DataFrame.aapi and Series.aapi
>>> url = "https://api.example.com/users/{user_id}"
>>> enriched = users.aapi.fetch(url, concurrency=20)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib.metadata as _metadata

from . import _accessor  # noqa: F401  (registers the .aapi accessors)
from ._defaults import defaults, reset_defaults, set_defaults
from ._errors import FetchError, PandasAsyncError
from ._options import Retry
from ._paginate import Cursor, LinkHeader, NextUrl, Offset, PageNumber, Paginator
from ._report import Report, last_report
from ._secrets import install_log_redaction as _install_log_redaction

try:
    __version__ = _metadata.version("pandas-async")
except _metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

_install_log_redaction()

__all__ = [
    "Cursor",
    "FetchError",
    "LinkHeader",
    "NextUrl",
    "Offset",
    "PageNumber",
    "Paginator",
    "PandasAsyncError",
    "Report",
    "Retry",
    "__version__",
    "defaults",
    "last_report",
    "reset_defaults",
    "set_defaults",
]
