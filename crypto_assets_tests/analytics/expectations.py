"""Assertions shared by the analytics tests: tables against the plain-Python reference."""

from __future__ import annotations

import math
import re
from pathlib import Path

from crypto_assets.analytics.schema import PRICE_ALERTS, TRADES_ANALYTICS, TRADES_RAW
from crypto_assets_tests.analytics import reference
from crypto_assets_tests.analytics.settings_for_tests import RULES, WINDOW_MS
from crypto_assets_tests.analytics.tables import epoch_ms, rows

FLOAT_COLUMNS = (
    "volume",
    "quote_volume",
    "vwap",
    "open",
    "close",
    "high",
    "low",
    "avg_price",
    "price_range_pct",
    "price_change_pct",
    "buy_volume",
    "sell_volume",
    "buy_sell_ratio",
)
LANDING_NAME = re.compile(r"^trades_\d{8}_\d{6}_[0-9a-f]{6,}\.json$")


def close(got: float | None, expected: float | None) -> bool:
    if got is None or expected is None:
        return got is expected
    return math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-12)


def assert_matches_reference(data_dir: Path, records: list[dict]) -> dict:
    """Every analytics column and alert equals the reference from `records`; returns alerts."""
    expected = reference.windows(records, WINDOW_MS)
    got = {(r["symbol"], epoch_ms(r["window_start"])): r for r in rows(data_dir, TRADES_ANALYTICS)}
    assert sorted(got) == sorted(expected)
    for key, want in expected.items():
        row = got[key]
        assert epoch_ms(row["window_end"]) == want["window_end_ms"], key
        assert row["trade_count"] == want["trade_count"], key
        for column in FLOAT_COLUMNS:
            assert close(row[column], want[column]), (key, column, row[column], want[column])
        assert row["updated_time"] is not None
    expected_alerts = reference.alerts(expected, RULES, WINDOW_MS)
    got_alerts = {
        (r["alert_type"], r["symbol"], epoch_ms(r["window_start"])): r
        for r in rows(data_dir, PRICE_ALERTS)
    }
    assert sorted(got_alerts) == sorted(expected_alerts)
    for key, want in expected_alerts.items():
        row = got_alerts[key]
        assert close(row["metric_value"], want["metric_value"]), key
        assert close(row["threshold"], want["threshold"]), key
        assert epoch_ms(row["window_end"]) == key[2] + WINDOW_MS
        assert key[1] in row["message"]
        assert row["detected_time"] is not None
    return expected_alerts


def assert_raw_holds_each_trade_once(data_dir: Path, records: list[dict]) -> None:
    raw = rows(data_dir, TRADES_RAW)
    expected = reference.unique_trades(records)
    by_key = {(r["symbol"], r["trade_id"]): r for r in raw}
    assert len(raw) == len(by_key) == len(expected)
    for key, record in expected.items():
        row = by_key[key]
        assert {c: row[c] for c in record} == record
        assert row["ingest_lag_ms"] == record["ingestion_time"] - record["trade_time"]
        assert LANDING_NAME.match(row["source_file"])
        assert row["processed_time"] is not None
