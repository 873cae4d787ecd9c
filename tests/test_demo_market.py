"""The demo's 300 trading pairs and its optional /candles rate limit (the OHLCV notebook's API)."""

from __future__ import annotations

import datetime as dt

import httpx
import pandas as pd

import pandas_async
from pandas_async import demo


def test_three_hundred_pairs_have_candles() -> None:
    assert len(demo.PAIRS) == len(set(demo.PAIRS)) == 300
    assert demo.PAIRS[0] == "BTC-USDT"
    day = dt.date(2024, 3, 1)
    for pair in (demo.PAIRS[0], demo.PAIRS[-1]):
        rows = demo.candles(pair, day)
        assert len(rows) == 24 and rows[0]["symbol"] == pair
        assert all(r["low"] <= min(r["open"], r["close"]) for r in rows)
    assert demo.candles(demo.PAIRS[-1], day) == demo.candles(demo.PAIRS[-1], day)  # deterministic


def test_candle_limit_answers_429_beyond_it_and_rate_keeps_under_it() -> None:
    with demo.DemoServer(latency=0.0, candle_limit=(5, 1.0)) as server:
        url = f"{server.url}/candles"
        with httpx.Client() as client:
            unknown = client.get(url, params={"symbol": "NOPE", "date": "2024-03-01"})
            assert unknown.status_code == 404 and "BTC-USDT" in unknown.text
            codes = [
                client.get(url, params={"symbol": "BTC-EUR", "date": "2024-03-01"}).status_code
                for _ in range(8)
            ]
            assert codes[:4] == [200] * 4 and set(codes[4:]) == {429}  # 5 in the window
            assert client.get(url, params={"symbol": "X", "date": "d"}).headers["Retry-After"]
    with demo.DemoServer(latency=0.0, candle_limit=(5, 1.0)) as server:
        jobs = pd.DataFrame({"symbol": list(demo.PAIRS[:8]), "date": "2024-03-01"})
        out = jobs.aapi.fetch(
            f"{server.url}/candles", params={"symbol": "{symbol}", "date": "{date}"},
            rate="5/s", retries=0,
        )  # fmt: skip
        assert len(out) == 8 * 24
        report = pandas_async.last_report()
        assert report is not None and report.statuses == {200: 8}
