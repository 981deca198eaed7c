"""The batch algorithm's pure helpers on hand-made Arrow tables (no Spark)."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from crypto_assets.analytics.batch import alerts_in, first_per_trade
from crypto_assets.analytics.schema import PRICE_ALERTS_SCHEMA, PRICE_MOVE, VOLUME_SPIKE
from crypto_assets.analytics.transforms import ALERT_TYPES, alert_column
from crypto_assets.analytics.window_runs import Run

_TS = pa.timestamp("us", tz="UTC")


def scored_windows(rows: list[dict]) -> pa.Table:
    """Scored windows as the transforms give them: each alert type's columns, NULL where it
    does not fire (a row gives a type's message, metric and threshold, or leaves it out)."""
    columns: dict[str, pa.Array] = {
        "symbol": pa.array([r["symbol"] for r in rows], pa.string()),
        "window_start": pa.array([r["start"] for r in rows], _TS),
        "window_end": pa.array([r["start"] + dt.timedelta(minutes=1) for r in rows], _TS),
    }
    for alert_type in ALERT_TYPES:
        fired = [r.get(alert_type) for r in rows]
        values = [None if f is None else f[0] for f in fired]
        columns[alert_column(alert_type, "metric_value")] = pa.array(values, pa.float64())
        thresholds = [None if f is None else f[1] for f in fired]
        columns[alert_column(alert_type, "threshold")] = pa.array(thresholds, pa.float64())
        messages = [
            None if f is None else f"{alert_type} {r['symbol']}"
            for f, r in zip(fired, rows, strict=True)
        ]
        columns[alert_column(alert_type, "message")] = pa.array(messages, pa.string())
    return pa.table(columns)


T0 = dt.datetime(2024, 8, 9, tzinfo=dt.UTC)
T0_MS = 1723161600000
DETECTED = dt.datetime(2024, 8, 9, 0, 3, 2, 250000, tzinfo=dt.UTC)


def test_the_alerts_of_the_windows_inside_the_runs_one_row_each() -> None:
    minute = dt.timedelta(minutes=1)
    scored = scored_windows(
        [
            {"symbol": "BTCUSDT", "start": T0, PRICE_MOVE: (0.6, 0.5)},
            {
                "symbol": "BTCUSDT",
                "start": T0 + minute,
                PRICE_MOVE: (-0.7, 0.5),
                VOLUME_SPIKE: (90, 30),
            },
            {"symbol": "BTCUSDT", "start": T0 + 2 * minute},
            {"symbol": "ETHUSDT", "start": T0 + minute, PRICE_MOVE: (0.9, 0.5)},
        ]
    )
    found = alerts_in(scored, [Run("BTCUSDT", T0_MS + 60_000, T0_MS + 120_000)], DETECTED)
    got = [
        (a["alert_type"], a["window_start"], a["metric_value"], a["threshold"], a["message"])
        for a in found.to_pylist()
    ]
    assert sorted(got) == [
        ("PRICE_MOVE", T0 + minute, -0.7, 0.5, "PRICE_MOVE BTCUSDT"),
        ("VOLUME_SPIKE", T0 + minute, 90.0, 30.0, "VOLUME_SPIKE BTCUSDT"),
    ]
    assert {a["detected_time"] for a in found.to_pylist()} == {DETECTED}
    assert found.schema == PRICE_ALERTS_SCHEMA


def test_no_window_inside_the_runs_is_an_empty_table_of_alerts() -> None:
    # A filter that keeps no row leaves no chunk (pyarrow 19, on the runtime, had no table of none).
    scored = scored_windows([{"symbol": "ETHUSDT", "start": T0, PRICE_MOVE: (0.6, 0.5)}])
    found = alerts_in(scored, [Run("BTCUSDT", T0_MS, T0_MS)], DETECTED)
    assert found.num_rows == 0
    assert found.schema == PRICE_ALERTS_SCHEMA


def test_a_trade_twice_in_a_batch_is_kept_from_the_first_file_by_name() -> None:
    rows = pa.table(
        {
            "symbol": ["BTCUSDT", "ETHUSDT", "BTCUSDT", "BTCUSDT"],
            "trade_id": [7, 7, 8, 7],
            "price": [2.0, 3.0, 4.0, 1.0],
            "source_file": ["b.json", "b.json", "b.json", "a.json"],
        }
    )
    kept = first_per_trade(rows).to_pylist()
    assert sorted((r["symbol"], r["trade_id"], r["price"]) for r in kept) == [
        ("BTCUSDT", 7, 1.0),  # a.json's, though b.json's came first
        ("BTCUSDT", 8, 4.0),
        ("ETHUSDT", 7, 3.0),
    ]
    # Without a trade twice, the rows are kept as they are.
    unique = rows.slice(0, 3)
    assert first_per_trade(unique) is unique
