"""Metadata builders: the producer's report and the analytics' views of the tables."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from crypto_assets.analytics.show import latest_windows
from crypto_assets.orchestration.metadata import (
    alerts_metadata,
    analytics_metadata,
    newest_alerts_markdown,
    producer_metadata,
)
from crypto_assets.producer.producer import ProducerStats

T0 = dt.datetime(2024, 8, 9, 0, 0, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)


def _stats(trades: dict[str, int], files: int, seconds: float) -> ProducerStats:
    return ProducerStats(
        trades=sum(trades.values()),
        files=files,
        quarantined=1,
        duplicates_dropped=0,
        gaps_filled=2,
        gaps_unfilled=0,
        reconnects=1,
        seconds=seconds,
        per_symbol=trades,
    )


def test_producer_report_counts_what_landed_since_the_previous_one():
    first = _stats({"BTCUSDT": 100, "ETHUSDT": 50}, files=3, seconds=10.0)
    second = _stats({"BTCUSDT": 160, "ETHUSDT": 90}, files=5, seconds=30.0)
    meta = producer_metadata(second, first, "replay", "ws://127.0.0.1:9999")
    assert meta["trades"] == 100
    assert meta["files"] == 2
    assert meta["trades_per_second"] == 100 / 20
    assert meta["trades_btcusdt"] == 60
    assert meta["trades_ethusdt"] == 40
    assert meta["run_trades"] == 250
    assert (meta["source"], meta["reconnects"], meta["gaps_filled"]) == ("replay", 1, 2)
    whole = producer_metadata(first, None, "live", "wss://stream.binance.com:9443")
    assert (whole["trades"], whole["files"], whole["trades_per_second"]) == (150, 3, 15.0)


def _analytics() -> pa.Table:
    return pa.table(
        {
            "symbol": ["ETHUSDT", "BTCUSDT", "BTCUSDT", "ETHUSDT"],
            "window_start": [T0, T0, T0 + MINUTE, T0 + MINUTE],
            "trade_count": [5, 7, 9, 4],
            "vwap": [2500.5, 60000.25, 60100.75, 2501.0],
            "price_change_pct": [0.1, -0.2, 0.31234, None],
            "buy_sell_ratio": [1.0, 2.0, 0.5, None],
        }
    )


def test_latest_window_per_symbol_and_vwap_values():
    latest = latest_windows(_analytics())
    assert latest["symbol"].to_pylist() == ["BTCUSDT", "ETHUSDT"]
    assert latest["window_start"].to_pylist() == [T0 + MINUTE, T0 + MINUTE]
    meta = analytics_metadata(_analytics())
    assert meta["vwap_btcusdt"] == 60100.75
    assert meta["vwap_ethusdt"] == 2501.0
    table = meta["latest_windows"].value
    assert "| BTCUSDT | 2024-08-09 00:01 | 9 | 60,100.7500 | 0.312 | 0.500 |" in table
    assert "| ETHUSDT | 2024-08-09 00:01 | 4 | 2,501.0000 | n/a | n/a |" in table
    assert "2500.5" not in table


def test_empty_tables_say_so():
    assert "no windows yet" in analytics_metadata(None)["latest_windows"].value
    assert "no alerts yet" in alerts_metadata(None)["newest_alerts"].value


def test_newest_alerts_first_and_limited():
    alerts = pa.table(
        {
            "alert_type": ["PRICE_MOVE", "VOLUME_SPIKE", "PRICE_MOVE"],
            "symbol": ["BTCUSDT", "ETHUSDT", "ETHUSDT"],
            "window_start": [T0, T0 + 2 * MINUTE, T0 + MINUTE],
            "detected_time": [T0 + 3 * MINUTE] * 3,
            "message": ["BTCUSDT moved | 0.6%", "ETHUSDT 400 trades", "ETHUSDT moved 0.7%"],
        }
    )
    markdown = newest_alerts_markdown(alerts, limit=2)
    rows = [line for line in markdown.splitlines() if line.startswith("| 2024")]
    assert [r.split(" | ")[2] for r in rows] == ["VOLUME_SPIKE", "PRICE_MOVE"]
    assert "BTCUSDT" not in markdown  # the oldest alert is beyond the limit
