"""The pure transforms on tiny hand-made frames (expected values worked out by hand)."""

from __future__ import annotations

import datetime as dt

import pytest

from crypto_assets.analytics.schema import trade_inputs
from crypto_assets.analytics.transforms import price_alerts, window_metrics

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
    out = window_metrics(spark.createDataFrame(trades, trade_inputs()), 60).toArrow().to_pylist()
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


def analytics_rows(spark, counts: dict[int, int], change: float = 0.0, symbol: str = "ETHUSDT"):
    """trades_analytics-like rows of `symbol`: minute index -> trade_count."""
    rows = [
        (
            symbol,
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
        "volume_spike_min_history": 3,
    }
    rules.update(overrides)
    return sorted(
        price_alerts(df, **rules).toArrow().to_pylist(),
        key=lambda r: (r["symbol"], r["window_start"]),
    )


def spikes_of(df, **overrides) -> list[tuple[str, int, float, float]]:
    """(symbol, minute index, metric_value, threshold) of every VOLUME_SPIKE."""
    return [
        (r["symbol"], r["window_start"].minute, r["metric_value"], r["threshold"])
        for r in alerts_of(df, **overrides)
        if r["alert_type"] == "VOLUME_SPIKE"
    ]


def test_fresh_symbol_never_spikes_even_with_a_huge_count(spark) -> None:
    # Minute 3's previous 4 slots are -1..2; only 1 and 2 start after the first window (0):
    # 2 history slots < 3, so 100,000 trades do not fire. Minutes 1 and 2 have 0 and 1.
    fresh = analytics_rows(spark, {0: 5, 1: 5, 2: 5, 3: 100_000})
    assert alerts_of(fresh) == []
    # The same data with min_history 2: baseline (5 + 5) / 2 = 5, threshold max(10, 2 x 5) = 10.
    assert spikes_of(fresh, volume_spike_min_history=2) == [("ETHUSDT", 3, 100_000.0, 10.0)]


def test_a_symbol_history_starts_after_its_own_first_window(spark) -> None:
    # BTCUSDT from minute 0: minute 4 has history 1..3 (3 slots), baseline 30 / 3 = 10,
    # threshold max(10, 20) = 20 <= 40. ETHUSDT starts at minute 3: minute 4 has 0 history
    # slots (minute 3 is its first window) and never spikes, though BTCUSDT traded before.
    btc = analytics_rows(spark, {0: 10, 1: 10, 2: 10, 3: 10, 4: 40}, symbol="BTCUSDT")
    eth = analytics_rows(spark, {3: 10, 4: 1_000})
    assert spikes_of(btc.unionByName(eth)) == [("BTCUSDT", 4, 40.0, 20.0)]


def test_slots_before_the_history_are_unknown_not_zero(spark) -> None:
    # min_history 1, min_trades 1: minute 2's only history slot is 1 (minute 0 is the first
    # window, -2 and -1 precede it), baseline 5, threshold 2 x 5 = 10. Counting the three
    # slots before slot 1 as 0 would give baseline 5 / 4 and threshold 2.5.
    rows = analytics_rows(spark, {0: 5, 1: 5, 2: 10})
    spikes = spikes_of(rows, volume_spike_min_history=1, volume_spike_min_trades=1)
    assert spikes == [("ETHUSDT", 2, 10.0, 10.0)]


def test_the_first_partial_window_is_excluded_from_the_baseline(spark) -> None:
    # Minute 4: previous slots 0..3, history 1..3 (minute 0 is the first window): baseline
    # 30 / 3 = 10, threshold max(10, 2 x 10) = 20 <= 25. With minute 0's 1,000 trades in it the
    # baseline would be 1030 / 4 = 257.5 and nothing would fire.
    rows = analytics_rows(spark, {0: 1_000, 1: 10, 2: 10, 3: 10, 4: 25})
    alerts = alerts_of(rows)
    assert [(a["alert_type"], a["window_start"].minute) for a in alerts] == [("VOLUME_SPIKE", 4)]
    assert (alerts[0]["metric_value"], alerts[0]["threshold"]) == (25.0, 20.0)
    assert "ETHUSDT had 25 trades" in alerts[0]["message"]
    assert "baseline 10.0 trades a window over 3 history slots" in alerts[0]["message"]
    assert "(alert at 20.0)" in alerts[0]["message"]


def test_an_empty_slot_inside_the_history_counts_zero(spark) -> None:
    # Minute 5: history 1..4 with minute 2 empty: (20 + 0 + 20 + 20) / 4 = 15, threshold 30 <= 30.
    # Skipping the empty slot would give baseline 20 and threshold 40. Minute 4: history 1..3,
    # 40 / 3 = 13.3, threshold 26.7 > 20: no spike; minute 3 has only 2 history slots.
    rows = analytics_rows(spark, {0: 50, 1: 20, 3: 20, 4: 20, 5: 30})
    alerts = alerts_of(rows)
    assert [(a["alert_type"], a["window_start"].minute) for a in alerts] == [("VOLUME_SPIKE", 5)]
    assert (alerts[0]["metric_value"], alerts[0]["threshold"]) == (30.0, 30.0)
    assert "baseline 15.0 trades a window over 4 history slots" in alerts[0]["message"]


def test_exactly_min_history_slots_is_enough(spark) -> None:
    # Minute 3 has 2 history slots (1, 2): never. Minute 4 has exactly 3 (1..3):
    # (10 + 10 + 40) / 3 = 20, threshold max(10, 40) = 40 <= 40, so it fires.
    rows = analytics_rows(spark, {0: 10, 1: 10, 2: 10, 3: 40, 4: 40})
    assert spikes_of(rows) == [("ETHUSDT", 4, 40.0, 40.0)]
    # One more required history slot than minute 4 has: nothing fires.
    assert spikes_of(rows, volume_spike_min_history=4) == []


def test_the_lookback_bounds_the_history(spark) -> None:
    # Lookback 4: minute 6's history is slots 2..5 (not 1), (10 + 10 + 10 + 10) / 4 = 10,
    # threshold 20 <= 20. Minute 1's 1,000 trades are outside it; with lookback 5 the baseline
    # is (1000 + 40) / 5 = 208 and nothing fires.
    rows = analytics_rows(spark, {0: 10, 1: 1_000, 2: 10, 3: 10, 4: 10, 5: 10, 6: 20})
    assert spikes_of(rows) == [("ETHUSDT", 6, 20.0, 20.0)]
    assert spikes_of(rows, volume_spike_lookback=5) == []


def test_price_move_both_directions(spark) -> None:
    moves = alerts_of(analytics_rows(spark, {0: 1}, change=-0.5)) + alerts_of(
        analytics_rows(spark, {0: 1}, change=0.49)
    )
    assert [(r["alert_type"], r["metric_value"], r["threshold"]) for r in moves] == [
        ("PRICE_MOVE", -0.5, 0.5)
    ]
    assert "-0.500%" in moves[0]["message"]
