"""The batch algorithm's pure helpers on hand-made Arrow tables (no Spark)."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from crypto_assets.analytics.batch import alerts_in
from crypto_assets.analytics.window_runs import Run

ALERT = pa.struct([("alert_type", pa.string()), ("symbol", pa.string())])
SCORED = pa.schema(
    [
        ("symbol", pa.string()),
        ("window_start", pa.timestamp("us", tz="UTC")),
        ("alerts", pa.list_(ALERT)),
    ]
)
T0 = dt.datetime(2024, 8, 9, tzinfo=dt.UTC)
T0_MS = 1723161600000
DETECTED = dt.datetime(2024, 8, 9, 0, 3, 2, 250000, tzinfo=dt.UTC)


def test_the_alerts_of_the_windows_inside_the_runs_one_row_each() -> None:
    scored = pa.table(
        {
            "symbol": ["BTCUSDT", "BTCUSDT", "ETHUSDT"],
            "window_start": [T0, T0 + dt.timedelta(minutes=1), T0],
            "alerts": [
                [{"alert_type": "PRICE_MOVE", "symbol": "BTCUSDT"}],
                [
                    {"alert_type": "PRICE_MOVE", "symbol": "BTCUSDT"},
                    {"alert_type": "VOLUME_SPIKE", "symbol": "BTCUSDT"},
                ],
                [{"alert_type": "PRICE_MOVE", "symbol": "ETHUSDT"}],
            ],
        },
        SCORED,
    )
    found = alerts_in(scored, [Run("BTCUSDT", T0_MS + 60_000, T0_MS + 120_000)], DETECTED)
    assert found.to_pylist() == [
        {"alert_type": "PRICE_MOVE", "symbol": "BTCUSDT", "detected_time": DETECTED},
        {"alert_type": "VOLUME_SPIKE", "symbol": "BTCUSDT", "detected_time": DETECTED},
    ]


def test_no_window_inside_the_runs_is_an_empty_table_of_alerts() -> None:
    # A filter that keeps no row leaves no chunk (pyarrow 19, on the runtime, had no table of none).
    scored = pa.table(
        {"symbol": ["ETHUSDT"], "window_start": [T0], "alerts": [[]]},
        SCORED,
    )
    found = alerts_in(scored, [Run("BTCUSDT", T0_MS, T0_MS)], DETECTED)
    assert found.num_rows == 0
    assert found.schema == pa.schema([*ALERT, ("detected_time", pa.timestamp("us", tz="UTC"))])
