"""The asset checks on tiny tables and file listings: each one passes on good data, fails on bad."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pyarrow as pa

from crypto_assets.orchestration.checks import (
    check_key_columns_not_null,
    check_landing_to_table_lag,
    check_unique_trade_ids,
    check_vwap_within_low_high,
)
from crypto_assets.orchestration.lakehouse import LandingFile

T0 = dt.datetime(2024, 8, 9, 0, 0, tzinfo=dt.UTC)


def _windows(**overrides: list) -> pa.Table:
    columns = {
        "symbol": ["BTCUSDT", "ETHUSDT"],
        "window_start": [T0, T0],
        "window_end": [T0 + dt.timedelta(minutes=1)] * 2,
        "trade_count": [3, 2],
        "volume": [1.5, 4.0],
        "vwap": [60010.0, 2500.0],
        "open": [60000.0, 2500.0],
        "high": [60020.0, 2500.0],
        "low": [60000.0, 2500.0],
        "close": [60020.0, 2500.0],
    }
    columns.update(overrides)
    return pa.table(columns)


def test_unique_trade_ids_passes_and_fails():
    good = pa.table({"symbol": ["BTCUSDT", "BTCUSDT", "ETHUSDT"], "trade_id": [1, 2, 1]})
    assert check_unique_trade_ids(good).passed
    bad = pa.table({"symbol": ["BTCUSDT"] * 3 + ["ETHUSDT"], "trade_id": [7, 7, 7, 7]})
    result = check_unique_trade_ids(bad)
    assert not result.passed
    # BTCUSDT #7 three times: two rows too many; ETHUSDT #7 once is fine.
    assert result.metadata["duplicate_rows"].value == 2
    assert "BTCUSDT #7" in result.metadata["duplicated_ids_sample"].value
    assert check_unique_trade_ids(None).passed


def test_vwap_within_low_high():
    assert check_vwap_within_low_high(_windows()).passed
    # All trades at one price: Σp·q/Σq may differ from that price in the last bits.
    same = 0.1 + 0.2
    rounding = _windows(vwap=[60010.0, same], high=[60020.0, 0.3], low=[60000.0, 0.3])
    assert check_vwap_within_low_high(rounding).passed
    result = check_vwap_within_low_high(_windows(vwap=[60030.0, 2500.0]))
    assert not result.passed
    assert result.metadata["windows_outside_range"].value == 1
    assert "BTCUSDT" in result.metadata["sample"].value


def _numeric(result: dg.AssetCheckResult) -> set[str]:
    """The metadata entries Dagster would plot: numbers."""
    return {
        key
        for key, value in result.metadata.items()
        if isinstance(value, (dg.IntMetadataValue, dg.FloatMetadataValue))
    }


def test_key_columns_not_null():
    good = check_key_columns_not_null(_windows())
    assert good.passed
    assert good.metadata["nulls_by_column"].value == "none"
    # One plot of the null total, not one flat plot per column.
    assert _numeric(good) == {"windows", "null_values"}
    result = check_key_columns_not_null(_windows(vwap=[None, 2500.0], low=[None, None]))
    assert not result.passed
    assert result.metadata["null_values"].value == 3
    assert result.metadata["nulls_by_column"].value == "vwap 1, low 2"
    missing = check_key_columns_not_null(_windows().drop_columns(["low"]))
    assert not missing.passed
    assert missing.metadata["missing_columns"].value == "low"


def test_landing_to_table_lag():
    now = 1_000_000.0
    landing = [
        LandingFile("trades_20240809_000000_aaaaaa.json", now - 900),
        LandingFile("trades_20240809_000500_bbbbbb.json", now - 400),
        LandingFile("trades_20240809_000900_cccccc.json", now - 20),
    ]
    processed = ["trades_20240809_000000_aaaaaa.json"]
    late = check_landing_to_table_lag(landing, processed, now, max_lag_seconds=300)
    assert not late.passed
    assert late.metadata["files_waiting"].value == 2
    assert late.metadata["oldest_waiting_seconds"].value == 400
    # The allowed lag is a setting, not a measurement: text, so it draws no flat plot.
    assert late.metadata["max_lag"].value == "300 s"
    assert "max_lag" not in _numeric(late)
    # Spark records full paths; the check matches on file names.
    paths = [f"file:///data/landing/trades/{f.name}" for f in landing[:2]]
    on_time = check_landing_to_table_lag(landing, paths, now, max_lag_seconds=300)
    assert on_time.passed
    assert on_time.metadata["files_waiting"].value == 1
