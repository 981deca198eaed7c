"""The terminal view's pieces on tiny tables."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa

from crypto_assets.analytics.lag import META_BATCH_LAG, BatchLag
from crypto_assets.analytics.ports import BatchTag
from crypto_assets.analytics.schema import PRICE_ALERTS_SCHEMA
from crypto_assets.analytics.show import format_table, latest_windows, recent_alerts, render
from crypto_assets.analytics.window_runs import Run
from crypto_assets.local.delta_sink import DeltaSink
from crypto_assets.local.lakehouse import LocalLakehouse
from crypto_assets.local.layout import LocalLayout

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


def test_freshness_says_so_when_no_batch_lag_is_recorded(tmp_path: Path) -> None:
    DeltaSink(tmp_path / "delta").ensure_tables()
    text = render(LocalLakehouse(LocalLayout(tmp_path)))
    assert "Freshness\n(no batch lags recorded yet" in text


def test_freshness_shows_the_lags_stored_with_the_alerts_commits(tmp_path: Path) -> None:
    sink = DeltaSink(tmp_path / "delta")
    sink.ensure_tables()
    finished = int(dt.datetime(2024, 8, 9, 0, 1, 2, tzinfo=dt.UTC).timestamp() * 1000)
    run = [Run("BTCUSDT", 0, 0)]
    for batch_id, raw in ((3, [1.0, 2.0, 3.0]), (4, [0.5, 0.5])):
        lag = BatchLag.of("q", batch_id, finished + batch_id, {"raw": raw, "alert": [2.5]})
        empty = PRICE_ALERTS_SCHEMA.empty_table()
        record = {META_BATCH_LAG: lag.to_json()}
        sink.replace_alerts(empty, run, BatchTag("q", batch_id), final=True, record=record)
    lines = render(LocalLakehouse(LocalLayout(tmp_path))).splitlines()
    start = lines.index("Freshness (lag p50 / p95 / max in seconds, latest 2 batches)")
    header, _, newest, older, summary = lines[start + 1 : start + 6]
    assert header.split() == [
        "batch",
        "at",
        "(UTC)",
        "trades",
        "trade->raw",
        "trade->window",
        "trade->alert",
    ]
    # numpy's linear percentiles of [1, 2, 3]: p50 2, p95 2.9; of [0.5, 0.5]: 0.5.
    assert newest.split() == [
        "4",
        "00:01:02",
        "2",
        "0.50",
        "/",
        "0.50",
        "/",
        "0.50",
        "-",
        "2.50",
        "/",
        "2.50",
        "/",
        "2.50",
    ]
    assert older.split()[:9] == ["3", "00:01:02", "3", "2.00", "/", "2.90", "/", "3.00", "-"]
    assert summary == "newest batch 4 at 2024-08-09 00:01:02 UTC"
