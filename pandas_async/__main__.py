"""``python -m pandas_async``: the ``pandas-async`` command line."""

from __future__ import annotations

from pandas_async.cli import main

raise SystemExit(main())
