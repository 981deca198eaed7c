"""Touched windows as disjoint runs: sized by the data, never by its time span."""

from __future__ import annotations

import pyarrow as pa

from crypto_assets.analytics.window_runs import (
    Run,
    TradeSpan,
    chunks,
    id_runs,
    runs_of,
    trade_spans,
    widened,
    window_starts,
)

MINUTE = 60_000
T0 = 1_723_161_600_000  # 2024-08-09T00:00Z
YEAR = 365 * 86_400_000


def test_window_starts_floor_to_the_window() -> None:
    times = pa.array([T0, T0 + 59_999, T0 + 60_000, T0 - 1], pa.int64())
    assert window_starts(times, MINUTE).to_pylist() == [T0, T0, T0 + MINUTE, T0 - MINUTE]


def test_close_windows_join_far_ones_stay_apart() -> None:
    symbols = pa.array(["BTC", "BTC", "BTC", "BTC", "ETH", "BTC"])
    starts = pa.array([T0, T0 + MINUTE, T0 + 3 * MINUTE, T0 + 20 * MINUTE, T0, T0], pa.int64())
    # Lookback 2: windows up to 2 slots apart are one run (0, 1, 3), 20 is alone.
    assert runs_of(symbols, starts, MINUTE, 2) == [
        Run("BTC", T0, T0 + 3 * MINUTE),
        Run("BTC", T0 + 20 * MINUTE, T0 + 20 * MINUTE),
        Run("ETH", T0, T0),
    ]


def test_years_apart_cost_two_runs_not_a_span() -> None:
    symbols = pa.array(["BTC"] * 4)
    starts = pa.array([T0 - 7 * YEAR, T0 - 7 * YEAR + MINUTE, T0, T0 + MINUTE], pa.int64())
    runs = runs_of(symbols, starts, MINUTE, 10)
    assert runs == [Run("BTC", T0 - 7 * YEAR, T0 - 7 * YEAR + MINUTE), Run("BTC", T0, T0 + MINUTE)]


def test_id_runs_join_across_small_gaps() -> None:
    symbols = pa.array(["BTC"] * 5)
    ids = pa.array([10, 11, 500, 5000, 5001], pa.int64())
    assert id_runs(symbols, ids, 1000) == [Run("BTC", 10, 500), Run("BTC", 5000, 5001)]


def test_chunks_bound_every_piece() -> None:
    runs = [Run("BTC", i * MINUTE, i * MINUTE) for i in range(130)]
    pieces = list(chunks(runs, 64))
    assert [len(p) for p in pieces] == [64, 64, 2]
    assert [r for p in pieces for r in p] == runs


def test_widened() -> None:
    assert widened([Run("BTC", 100, 200)], before=10, after=5) == [Run("BTC", 90, 205)]


def test_trade_spans_are_id_runs_with_the_span_of_their_trade_times():
    trades = pa.table(
        {
            "symbol": ["ETHUSDT", "BTCUSDT", "BTCUSDT", "BTCUSDT", "ETHUSDT", "BTCUSDT"],
            "trade_id": [500, 7, 8, 5_000, 501, 9],
            "trade_time": [T0 + 5, T0 + 2, T0 + 1, T0 + YEAR, T0 + 4, T0 + 3],
        }
    )
    # BTCUSDT #5000 is more than the gap away from #9: a span of its own, its own time.
    assert trade_spans(trades, join_gap=1_000) == [
        TradeSpan("BTCUSDT", 7, 9, T0 + 1, T0 + 3),
        TradeSpan("BTCUSDT", 5_000, 5_000, T0 + YEAR, T0 + YEAR),
        TradeSpan("ETHUSDT", 500, 501, T0 + 4, T0 + 5),
    ]
    assert trade_spans(trades, join_gap=10_000)[0] == TradeSpan(
        "BTCUSDT", 7, 5_000, T0 + 1, T0 + YEAR
    )
    assert trade_spans(trades.slice(0, 1), join_gap=1) == [
        TradeSpan("ETHUSDT", 500, 500, T0 + 5, T0 + 5)
    ]
    assert trade_spans(trades.slice(0, 0), join_gap=1) == []
