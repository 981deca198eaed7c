"""The pure transforms on tiny hand-made frames (expected values worked out by hand)."""

from __future__ import annotations

import datetime as dt

import pytest

from crypto_assets.analytics.schema import LANDING_SCHEMA, TRADE_INPUTS
from crypto_assets.analytics.transforms import (
    REJECT_REASON,
    classify_landing,
    price_alerts,
    window_metrics,
)

pytestmark = pytest.mark.spark

T0 = 1723161600000  # 2024-08-09 00:00:00 UTC, a window boundary
UTC = dt.UTC


def trade(trade_id: int, offset_ms: int, price: float, qty: float, maker: bool, symbol="BTCUSDT"):
    return (symbol, trade_id, price, qty, T0 + offset_ms, maker)


def test_window_metrics_by_hand(spark) -> None:
    trades = [
        trade(3, 1_000, 101.0, 2.0, False),
        trade(2, 1_000, 100.0, 1.0, True),  # same time as id 3, lower id: it opens the window
        trade(4, 59_999, 99.0, 1.0, True),  # last millisecond of the window: it closes it
        trade(5, 60_000, 50.0, 1.0, False),  # first millisecond of the next window
    ]
    out = window_metrics(spark.createDataFrame(trades, TRADE_INPUTS), 60).toArrow().to_pylist()
    first, second = sorted(out, key=lambda r: r["window_start"])
    assert first["window_start"] == dt.datetime(2024, 8, 9, 0, 0, tzinfo=UTC)
    assert first["window_end"] == dt.datetime(2024, 8, 9, 0, 1, tzinfo=UTC)
    assert first["trade_count"] == 3
    assert first["volume"] == pytest.approx(4.0)
    assert first["quote_volume"] == pytest.approx(100 + 202 + 99)
    assert first["vwap"] == pytest.approx(401 / 4)
    assert (first["open"], first["close"], first["high"], first["low"]) == (100, 99, 101, 99)
    assert first["avg_price"] == pytest.approx(100.0)
    assert first["price_range_pct"] == pytest.approx(2.0)
    assert first["price_change_pct"] == pytest.approx(-1.0)
    assert (first["buy_volume"], first["sell_volume"]) == (2.0, 2.0)
    assert first["buy_sell_ratio"] == pytest.approx(1.0)
    assert second["trade_count"] == 1
    assert second["sell_volume"] == 0.0
    assert second["buy_sell_ratio"] is None  # no sells: undefined, not infinite


def analytics_rows(spark, counts: dict[int, int], change: float = 0.0):
    """trades_analytics-like rows: minute index -> trade_count."""
    rows = [
        (
            "ETHUSDT",
            dt.datetime.fromtimestamp((T0 + m * 60_000) / 1000, UTC),
            dt.datetime.fromtimestamp((T0 + (m + 1) * 60_000) / 1000, UTC),
            count,
            change,
        )
        for m, count in counts.items()
    ]
    schema = (
        "symbol string, window_start timestamp, window_end timestamp, trade_count long, "
        "price_change_pct double"
    )
    return spark.createDataFrame(rows, schema)


def alerts_of(df, **overrides) -> list[dict]:
    rules = {
        "window_seconds": 60,
        "price_change_threshold_pct": 0.5,
        "volume_spike_min_trades": 10,
        "volume_spike_factor": 2.0,
        "volume_spike_lookback": 4,
    }
    rules.update(overrides)
    return sorted(price_alerts(df, **rules).toArrow().to_pylist(), key=lambda r: r["window_start"])


def test_volume_spike_counts_empty_slots_and_never_fires_on_the_first_window(spark) -> None:
    # Minute 0 is the symbol's first window: never a spike even with 100 trades.
    # Minute 5: previous 4 slots (1..4) hold only minute 4 (8 trades) -> mean 2, alert at 10.
    spikes = alerts_of(analytics_rows(spark, {0: 100, 4: 8, 5: 10}))
    assert [(r["alert_type"], r["window_start"].minute) for r in spikes] == [("VOLUME_SPIKE", 5)]
    assert spikes[0]["metric_value"] == 10.0
    assert spikes[0]["threshold"] == 10.0
    assert "ETHUSDT" in spikes[0]["message"]
    # Minute 4 (8 trades) is below the minimum; minute 1 has minute 0 in its lookback:
    # 100 / 4 = 25 -> alert at 50, 49 trades do not fire.
    assert alerts_of(analytics_rows(spark, {0: 100, 1: 49})) == []


def test_price_move_both_directions(spark) -> None:
    moves = alerts_of(analytics_rows(spark, {0: 1}, change=-0.5)) + alerts_of(
        analytics_rows(spark, {0: 1}, change=0.49)
    )
    assert [(r["alert_type"], r["metric_value"], r["threshold"]) for r in moves] == [
        ("PRICE_MOVE", -0.5, 0.5)
    ]
    assert "-0.500%" in moves[0]["message"]


def test_classify_landing_reasons(spark) -> None:
    good = ("trade", 1, "BTCUSDT", 7, 1.0, 2.0, 2.0, T0, False, T0, None)
    rows = [
        good,
        (*good[:4], 0.0, *good[5:]),
        (*good[:2], None, *good[3:]),
        (*good[:10], '{"broken'),
    ]
    out = classify_landing(spark.createDataFrame(rows, LANDING_SCHEMA)).toArrow().to_pylist()
    assert [r[REJECT_REASON] for r in out] == [
        None,
        "non-positive price",
        "missing symbol",
        "malformed JSON or wrong field type",
    ]
    assert out[0]["raw_line"] is None
    assert out[3]["raw_line"] == '{"broken'
    assert '"trade_id":7' in out[1]["raw_line"]
