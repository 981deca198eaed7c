"""The transforms' SQL on tiny hand-made tables (expected values worked out by hand), run by both
engines: Spark (Databricks) and DuckDB (the local deployment)."""

from __future__ import annotations

import datetime as dt
import random

import pyarrow as pa
import pytest

from crypto_assets.analytics.schema import (
    TRADE_INPUT_FIELDS,
    TRADES_ANALYTICS_SCHEMA,
    TRADES_RAW_SCHEMA,
)
from crypto_assets.analytics.transforms import (
    ALERT_INPUTS,
    AlertRules,
    alert_rows,
    window_alerts_sql,
    window_metrics_sql,
)
from crypto_assets.local.sql_engine import SqlEngine
from crypto_assets_tests.analytics import reference
from crypto_assets_tests.analytics.expectations import FLOAT_COLUMNS, close
from crypto_assets_tests.analytics.sql_engines import Engine, SparkEngine
from crypto_assets_tests.analytics.tables import epoch_ms

pytestmark = pytest.mark.spark

T0 = 1723161600000  # 2024-08-09 00:00:00 UTC, a window boundary
UTC = dt.UTC


def trade(trade_id: int, offset_ms: int, price: float, qty: float, maker: bool, symbol="BTCUSDT"):
    return (symbol, trade_id, price, qty, T0 + offset_ms, maker)


def trades_table(trades: list[tuple]) -> pa.Table:
    return pa.Table.from_pylist(
        [dict(zip(TRADE_INPUT_FIELDS, t, strict=True)) for t in trades],
        pa.schema(TRADES_RAW_SCHEMA.field(name) for name in TRADE_INPUT_FIELDS),
    )


def test_window_metrics_by_hand(engine: Engine) -> None:
    trades = [
        trade(3, 1_000, 101.0, 2.0, False),
        trade(2, 1_000, 100.0, 1.0, True),  # same time as id 3, lower id: it opens the window
        trade(4, 59_999, 99.0, 1.0, True),  # last millisecond of the window: it closes it
        trade(5, 60_000, 50.0, 1.0, False),  # first millisecond of the next window
    ]
    out = engine.run(window_metrics_sql(60_000), trades=trades_table(trades)).to_pylist()
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


class Windows:
    """trades_analytics-like rows (the alert inputs) of one or more symbols."""

    def __init__(self, rows: list[dict]) -> None:
        self.rows = rows

    def union(self, other: Windows) -> Windows:
        return Windows(self.rows + other.rows)

    def table(self) -> pa.Table:
        schema = pa.schema(TRADES_ANALYTICS_SCHEMA.field(name) for name in ALERT_INPUTS)
        return pa.Table.from_pylist(self.rows, schema)


def window_row(symbol: str, start_ms: int, count: int, change: float) -> dict:
    return {
        "symbol": symbol,
        "window_start": dt.datetime.fromtimestamp(start_ms / 1000, UTC),
        "window_end": dt.datetime.fromtimestamp((start_ms + 60_000) / 1000, UTC),
        "trade_count": count,
        "price_change_pct": change,
    }


def analytics_rows(counts: dict[int, int], change: float = 0.0, symbol: str = "ETHUSDT") -> Windows:
    """Windows of `symbol`: minute index -> trade_count."""
    return Windows(
        [window_row(symbol, T0 + m * 60_000, count, change) for m, count in counts.items()]
    )


def price_alerts(engine: Engine, windows: Windows, rules: AlertRules) -> list[dict]:
    """The price_alerts rows (but detected_time) of `windows`, by `engine`."""
    scored = engine.run(window_alerts_sql(60_000, rules), analytics=windows.table())
    return alert_rows(scored).to_pylist()


def alerts_of(engine: Engine, windows: Windows, **overrides) -> list[dict]:
    rules = {
        "price_change_threshold_pct": 0.5,
        "volume_spike_min_trades": 10,
        "volume_spike_factor": 2.0,
        "volume_spike_lookback": 4,
        "volume_spike_min_history": 3,
    }
    rules.update(overrides)
    return sorted(
        price_alerts(engine, windows, AlertRules(**rules)),
        key=lambda r: (r["symbol"], r["window_start"]),
    )


def spikes_of(engine: Engine, windows: Windows, **overrides) -> list[tuple[str, int, float, float]]:
    """(symbol, minute index, metric_value, threshold) of every VOLUME_SPIKE."""
    return [
        (r["symbol"], r["window_start"].minute, r["metric_value"], r["threshold"])
        for r in alerts_of(engine, windows, **overrides)
        if r["alert_type"] == "VOLUME_SPIKE"
    ]


def test_fresh_symbol_never_spikes_even_with_a_huge_count(engine: Engine) -> None:
    # Minute 3's previous 4 slots are -1..2: -1 has no row, 0 is the first window (an edge), so
    # its history is 1 and 2: 2 slots < 3, and 100,000 trades do not fire.
    fresh = analytics_rows({0: 5, 1: 5, 2: 5, 3: 100_000})
    assert alerts_of(engine, fresh) == []
    # The same data with min_history 2: baseline (5 + 5) / 2 = 5, threshold max(10, 2 x 5) = 10.
    assert spikes_of(engine, fresh, volume_spike_min_history=2) == [("ETHUSDT", 3, 100_000.0, 10.0)]


def test_a_symbol_history_starts_after_its_own_first_window(engine: Engine) -> None:
    # BTCUSDT from minute 0: minute 4 has history 1..3 (3 slots), baseline 30 / 3 = 10,
    # threshold max(10, 20) = 20 <= 40. ETHUSDT starts at minute 3: minute 4 has 0 history
    # slots (minute 3 is its first window, an edge) and never spikes, though BTCUSDT traded.
    btc = analytics_rows({0: 10, 1: 10, 2: 10, 3: 10, 4: 40}, symbol="BTCUSDT")
    eth = analytics_rows({3: 10, 4: 1_000})
    assert spikes_of(engine, btc.union(eth)) == [("BTCUSDT", 4, 40.0, 20.0)]


def test_slots_before_the_history_are_unknown_not_zero(engine: Engine) -> None:
    # min_history 1, min_trades 1: minute 2's only history slot is 1 (minute 0 is the first
    # window, -2 and -1 precede it), baseline 5, threshold 2 x 5 = 10. Counting the three
    # slots before slot 1 as 0 would give baseline 5 / 4 and threshold 2.5.
    rows = analytics_rows({0: 5, 1: 5, 2: 10})
    spikes = spikes_of(engine, rows, volume_spike_min_history=1, volume_spike_min_trades=1)
    assert spikes == [("ETHUSDT", 2, 10.0, 10.0)]


def test_the_first_partial_window_is_excluded_from_the_baseline(engine: Engine) -> None:
    # Minute 4: previous slots 0..3, history 1..3 (minute 0 is the first window): baseline
    # 30 / 3 = 10, threshold max(10, 2 x 10) = 20 <= 25. With minute 0's 1,000 trades in it the
    # baseline would be 1030 / 4 = 257.5 and nothing would fire.
    rows = analytics_rows({0: 1_000, 1: 10, 2: 10, 3: 10, 4: 25})
    alerts = alerts_of(engine, rows)
    assert [(a["alert_type"], a["window_start"].minute) for a in alerts] == [("VOLUME_SPIKE", 4)]
    assert (alerts[0]["metric_value"], alerts[0]["threshold"]) == (25.0, 20.0)
    assert "ETHUSDT had 25 trades" in alerts[0]["message"]
    assert "baseline 10.0 trades a window over 3 history slots" in alerts[0]["message"]
    assert "(alert at 20.0)" in alerts[0]["message"]


def test_an_empty_slot_inside_the_history_is_unknown_not_zero(engine: Engine) -> None:
    # Minute 5: previous slots 1..4, minute 4 empty: history 1..3, (20 + 20 + 20) / 3 = 20,
    # threshold 40 <= 40. Counting the empty slot as 0 would give baseline 60 / 4 = 15 and
    # threshold 30. Minute 3 has only 2 history slots (1, 2).
    rows = analytics_rows({0: 50, 1: 20, 2: 20, 3: 20, 5: 40})
    alerts = alerts_of(engine, rows)
    assert [(a["alert_type"], a["window_start"].minute) for a in alerts] == [("VOLUME_SPIKE", 5)]
    assert (alerts[0]["metric_value"], alerts[0]["threshold"]) == (40.0, 40.0)
    assert "baseline 20.0 trades a window over 3 history slots" in alerts[0]["message"]
    # 35 trades reach the threshold of 30 that a 0 for the empty slot would give, not 40.
    assert spikes_of(engine, analytics_rows({0: 50, 1: 20, 2: 20, 3: 20, 5: 35})) == []


def test_the_edge_after_a_gap_is_excluded_from_the_baseline(engine: Engine) -> None:
    # Lookback 5, minute 6: previous slots 1..5; 3 is empty, so 4 is an edge (likely a partial
    # minute) and left out: history 1, 2, 5, (20 + 20 + 20) / 3 = 20, threshold 40 <= 40. With
    # the edge's 99 trades the baseline would be 159 / 4 and nothing would fire. Minutes 4 and
    # 5 have 2 history slots (1, 2): not enough.
    rows = analytics_rows({0: 50, 1: 20, 2: 20, 4: 99, 5: 20, 6: 40})
    alerts = alerts_of(engine, rows, volume_spike_lookback=5)
    assert [(a["alert_type"], a["window_start"].minute) for a in alerts] == [("VOLUME_SPIKE", 6)]
    assert (alerts[0]["metric_value"], alerts[0]["threshold"]) == (40.0, 40.0)
    assert "baseline 20.0 trades a window over 3 history slots" in alerts[0]["message"]


def test_a_window_right_after_a_15_minute_gap_never_spikes(engine: Engine) -> None:
    # The producer stopped after minute 5 and restarted in minute 21. Minute 21's previous 4
    # slots (17..20) are empty, minute 22's only row (21) is an edge, minutes 23 and 24 have 1
    # and 2 history slots: none can spike, whatever their counts. Counting the empty slots as
    # 0 would give minute 21 baseline 0.0 and threshold max(10, 0) = 10 <= 500.
    rows = analytics_rows({**dict.fromkeys(range(6), 10), 21: 500, 22: 1_000, 23: 1_000})
    assert spikes_of(engine, rows.union(analytics_rows({24: 1_000}))) == []
    # Minute 25 is the first with 3 history slots (22..24): baseline 1000, threshold 2000.
    late = analytics_rows({24: 1_000, 25: 2_000})
    assert spikes_of(engine, rows.union(late)) == [("ETHUSDT", 25, 2000.0, 2000.0)]


def test_the_baseline_is_never_zero(engine: Engine) -> None:
    # min_trades 0, factor 1, min_history 1: the threshold is the baseline itself, and a window
    # spikes when it has at least its baseline. Every history slot has a row, so at least 1
    # trade: no threshold is below 1.0, though most slots are empty. Edges: 0, 5, 9, 20, 40.
    counts = {0: 1, 1: 1, 2: 1, 5: 3, 6: 1, 7: 2, 9: 2, 20: 1, 21: 1, 22: 5, 40: 7}
    alerts = alerts_of(
        engine,
        analytics_rows(counts),
        volume_spike_min_trades=0,
        volume_spike_factor=1.0,
        volume_spike_min_history=1,
        volume_spike_lookback=10,
    )
    spikes = [a for a in alerts if a["alert_type"] == "VOLUME_SPIKE"]
    # Minute 9's history is 1, 2, 6, 7: 5 / 4. Minutes 20 and 40 have none (empty slots before
    # them, not 0 trades) and 21's only row is an edge; counting empty slots as 0 would fire
    # 20 and 40 at baseline 0.0.
    assert [(a["window_start"].minute, a["threshold"]) for a in spikes] == [
        (2, 1.0),
        (5, 1.0),
        (6, 1.0),
        (7, 1.0),
        (9, 1.25),
        (22, 1.0),
    ]
    assert not any("baseline 0.0" in a["message"] for a in spikes)


def test_price_alerts_equal_the_plain_python_reference_on_gappy_data(engine: Engine) -> None:
    # Two symbols, random counts, a third of the minutes without a row: the transform and the
    # reference (written independently from the rule) agree on every alert and threshold.
    rng = random.Random(7)
    rules = reference.Rules(
        price_change_threshold_pct=0.5,
        volume_spike_min_trades=3,
        volume_spike_factor=1.5,
        volume_spike_lookback=6,
        volume_spike_min_history=2,
    )
    windows: dict[tuple[str, int], dict] = {}
    for symbol in ("BTCUSDT", "ETHUSDT"):
        for minute in range(120):
            if rng.random() < 1 / 3:
                continue
            windows[(symbol, T0 + minute * 60_000)] = {
                "trade_count": rng.choice([1, 2, 5, 10, 20, 50]),
                "price_change_pct": rng.uniform(-1.0, 1.0),
            }
    table = Windows(
        [
            window_row(symbol, start, row["trade_count"], row["price_change_pct"])
            for (symbol, start), row in windows.items()
        ]
    )
    got = {
        (a["alert_type"], a["symbol"], round(a["window_start"].timestamp() * 1000)): (
            a["metric_value"],
            a["threshold"],
        )
        for a in price_alerts(
            engine,
            table,
            AlertRules(
                rules.price_change_threshold_pct,
                rules.volume_spike_min_trades,
                rules.volume_spike_factor,
                rules.volume_spike_lookback,
                rules.volume_spike_min_history,
            ),
        )
    }
    want = {
        key: (value["metric_value"], value["threshold"])
        for key, value in reference.alerts(windows, rules, 60_000).items()
    }
    assert sum(kind == "VOLUME_SPIKE" for kind, _, _ in want) >= 5
    assert sorted(got) == sorted(want)
    for key, (metric, threshold) in want.items():
        assert got[key] == (pytest.approx(metric), pytest.approx(threshold)), key


def test_exactly_min_history_slots_is_enough(engine: Engine) -> None:
    # Minute 3 has 2 history slots (1, 2): never. Minute 4 has exactly 3 (1..3):
    # (10 + 10 + 40) / 3 = 20, threshold max(10, 40) = 40 <= 40, so it fires.
    rows = analytics_rows({0: 10, 1: 10, 2: 10, 3: 40, 4: 40})
    assert spikes_of(engine, rows) == [("ETHUSDT", 4, 40.0, 40.0)]
    # One more required history slot than minute 4 has: nothing fires.
    assert spikes_of(engine, rows, volume_spike_min_history=4) == []


def test_the_lookback_bounds_the_history(engine: Engine) -> None:
    # Lookback 4: minute 6's history is slots 2..5 (not 1), (10 + 10 + 10 + 10) / 4 = 10,
    # threshold 20 <= 20. Minute 1's 1,000 trades are outside it; with lookback 5 the baseline
    # is (1000 + 40) / 5 = 208 and nothing fires.
    rows = analytics_rows({0: 10, 1: 1_000, 2: 10, 3: 10, 4: 10, 5: 10, 6: 20})
    assert spikes_of(engine, rows) == [("ETHUSDT", 6, 20.0, 20.0)]
    assert spikes_of(engine, rows, volume_spike_lookback=5) == []


def test_price_move_both_directions(engine: Engine) -> None:
    moves = alerts_of(engine, analytics_rows({0: 1}, change=-0.5)) + alerts_of(
        engine, analytics_rows({0: 1}, change=0.49)
    )
    assert [(r["alert_type"], r["metric_value"], r["threshold"]) for r in moves] == [
        ("PRICE_MOVE", -0.5, 0.5)
    ]
    assert "-0.500%" in moves[0]["message"]


def test_both_engines_give_the_same_bits_in_any_order_and_the_reference(
    spark, landing_records: list[dict]
) -> None:
    # The recording's 34,419 trades in three orders (as files, batches and compactions would lay
    # them out): Spark and DuckDB give bit-identical windows, equal to the plain-Python reference.
    unique = list(reference.unique_trades(landing_records).values())
    orders = [unique, sorted(unique, key=lambda t: -t["trade_id"])]
    orders.append(random.Random(3).sample(unique, len(unique)))
    results = []
    for engine in (SparkEngine(spark), SqlEngine()):
        for trades in orders:
            table = trades_table([tuple(t[f] for f in TRADE_INPUT_FIELDS) for t in trades])
            out = engine.run(window_metrics_sql(60_000), trades=table)
            results.append(sorted(out.to_pylist(), key=lambda r: (r["symbol"], r["window_start"])))
    assert all(result == results[0] for result in results[1:])
    want = reference.windows(landing_records, 60_000)
    got = {(r["symbol"], epoch_ms(r["window_start"])): r for r in results[0]}
    assert sorted(got) == sorted(want)
    for key, row in want.items():
        for column in FLOAT_COLUMNS:
            assert close(got[key][column], row[column]), (key, column)
