"""A bundled demo JSON API, and the demo job that ``pandas-async demo`` runs against it.

The server imitates a public placeholder API (users, posts, comments) plus a synthetic market-data
endpoint, with deterministic data and a realistic per-request latency, so that examples, tests and
notebooks run offline and give the same answers every time. It only ever listens on 127.0.0.1.

Endpoints (every answer is JSON)::

    GET /users                     list of users (1..1000), filterable and paginated
    GET /users/{id}                one user, with nested ``address`` (``address.geo``), ``company``
    GET /posts                     list of posts (1..3000, three per user); ``?userId=`` filters
    GET /posts/{id}                one post
    GET /posts/{id}/comments       the post's five comments (a list)
    GET /comments?postId=          comments, filtered by post
    GET /candles?symbol=BTC&date=2024-01-01[&interval=1h]
                                   synthetic OHLCV candles for one UTC day (a list of records);
                                   symbol: BTC, ETH, SOL, ADA, XRP, DOGE or one of the 300
                                   ``PAIRS`` (``BTC-USDT``...). ``DemoServer(candle_limit=(n, s))``
                                   makes it answer 429 with Retry-After beyond n requests per s
    GET /status/{code}[?retry_after=S]
                                   answers with that status code (for trying retries and errors)

List endpoints filter on any top-level field given as a query parameter (``/posts?userId=3``) and
paginate json-server style: ``?_page=2&_limit=20`` (``page``/``limit`` also accepted; the size
defaults to 10 when only a page is given) or ``?_start=40&_limit=20``. A paginated answer carries
an ``X-Total-Count`` header and an RFC 5988 ``Link`` header (``first``, ``prev``, ``next``,
``last``); a page past the end is an empty list. Any endpoint takes ``?_delay=S`` to override the
latency of that one request (capped at 30 s). Unknown ids answer 404 with ``{"error": ...}``.

Use it from Python::

    from pandas_async import demo

    with demo.serve(latency=0.05) as server:
        users = pd.DataFrame({"user_id": [1, 2, 3]})
        users.aapi.fetch(f"{server.url}/users/{{user_id}}")
"""

from __future__ import annotations

from .data import (
    COMMENTS_PER_POST,
    N_COMMENTS,
    N_POSTS,
    N_USERS,
    PAIRS,
    POSTS_PER_USER,
    candles,
    comment,
    post,
    post_comments,
    user,
)
from .job import SEQUENTIAL_SAMPLE, DemoReport, run_demo
from .routes import DEFAULT_LATENCY, DEFAULT_PAGE_SIZE, MAX_DELAY, create_app
from .server import HOST, DemoServer, serve

__all__ = [
    "COMMENTS_PER_POST",
    "DEFAULT_LATENCY",
    "DEFAULT_PAGE_SIZE",
    "HOST",
    "MAX_DELAY",
    "N_COMMENTS",
    "N_POSTS",
    "N_USERS",
    "PAIRS",
    "POSTS_PER_USER",
    "SEQUENTIAL_SAMPLE",
    "DemoReport",
    "DemoServer",
    "candles",
    "comment",
    "create_app",
    "post",
    "post_comments",
    "run_demo",
    "serve",
    "user",
]
