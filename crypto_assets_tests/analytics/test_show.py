"""The terminal view's pieces on tiny tables."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from crypto_assets.analytics.show import format_table, latest_windows, recent_alerts

T = dt.datetime(2024, 8, 9, tzinfo=dt.UTC)


def test_latest_window_per_symbol() -> None:
    table = pa.table(
        {
            "symbol": ["BTCUSDT", "BTCUSDT", "ETHUSDT"],
            "window_start": [T, T + dt.timedelta(minutes=1), T],
            "vwap": [1.0, 2.0, 3.0],
        }
    )
    latest = latest_windows(table).to_pylist()
    assert [(r["symbol"], r["vwap"]) for r in latest] == [("BTCUSDT", 2.0), ("ETHUSDT", 3.0)]


def test_recent_alerts_newest_first_and_limited() -> None:
    table = pa.table(
        {"symbol": ["A", "B", "C"], "window_start": [T, T + dt.timedelta(minutes=2), T]}
    )
    assert [r["symbol"] for r in recent_alerts(table, 2)] == ["B", "A"]


def test_format_table_aligns_columns() -> None:
    text = format_table(["a", "long header"], [["xyz", "1"], ["", "22"]])
    lines = text.splitlines()
    assert lines[0] == "a    long header"
    assert lines[1] == "---  -----------"
    assert lines[2] == "xyz  1"
    assert lines[3] == "     22"
