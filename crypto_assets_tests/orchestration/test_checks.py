"""The asset checks on tiny tables and file listings: each one passes on good data, fails on bad."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import pyarrow as pa

from crypto_assets.analytics.lag import BatchLag
from crypto_assets.analytics.lakehouse import CheckpointSize, LandingFile, checkpoint_size
from crypto_assets.orchestration.checks import (
    SPARK_BATCHES_RETAINED,
    CheckLimits,
    check_checkpoint_bounded,
    check_key_columns_not_null,
    check_landing_to_table_lag,
    check_trade_lag_p95,
    check_unique_trade_ids,
    check_vwap_within_low_high,
)

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
    passed = check_unique_trade_ids(good, new_trades=2)
    assert passed.passed
    # The rows read (the run's new trades and those of their spans) and the new trades judged.
    assert (passed.metadata["rows"].value, passed.metadata["new_trades"].value) == (3, 2)
    bad = pa.table({"symbol": ["BTCUSDT"] * 3 + ["ETHUSDT"], "trade_id": [7, 7, 7, 7]})
    result = check_unique_trade_ids(bad)
    assert not result.passed
    # BTCUSDT #7 three times: two rows too many; ETHUSDT #7 once is fine.
    assert result.metadata["duplicate_rows"].value == 2
    assert "BTCUSDT #7" in result.metadata["duplicated_ids_sample"].value
    nothing = check_unique_trade_ids(None, new_trades=0)
    assert nothing.passed
    assert nothing.metadata["new_trades"].value == 0


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
    # The first file is processed (the lakehouse tells from the query's checkpoint).
    late = check_landing_to_table_lag(landing, landing[1:], now, max_lag_seconds=300)
    assert not late.passed
    assert late.metadata["landing_files"].value == 3
    assert late.metadata["files_waiting"].value == 2
    assert late.metadata["oldest_waiting_seconds"].value == 400
    # The allowed lag is a setting, not a measurement: text, so it draws no flat plot.
    assert late.metadata["max_lag"].value == "300 s"
    assert "max_lag" not in _numeric(late)
    on_time = check_landing_to_table_lag(landing, landing[2:], now, max_lag_seconds=300)
    assert on_time.passed
    assert on_time.metadata["files_waiting"].value == 1
    assert check_landing_to_table_lag(landing, [], now, 300).metadata["files_waiting"].value == 0


def test_landing_to_table_lag_is_not_judged_where_the_waiting_files_are_unknown():
    # Databricks: Auto Loader's record of the processed files is not readable from here.
    landing = [LandingFile("trades_20240809_000000_aaaaaa.json", 0.0)]
    result = check_landing_to_table_lag(landing, None, 1_000_000.0, max_lag_seconds=300)
    assert result.passed
    assert result.severity == dg.AssetCheckSeverity.WARN
    assert "not judged" in result.metadata["waiting"].value
    assert "files_waiting" not in result.metadata


def _batch(batch_id: int, raw: list[float], alert: list[float] = ()) -> BatchLag:
    return BatchLag.of("q", batch_id, 1_000 * batch_id, {"raw": raw, "alert": list(alert)})


def test_trade_lag_p95_passes_within_the_bound_and_without_batches():
    fast = [_batch(i, [0.5 + 0.1 * k for k in range(40)], [2.0]) for i in range(10)]
    result = check_trade_lag_p95(fast, max_p95_seconds=30.0)
    assert result.passed
    assert result.severity == dg.AssetCheckSeverity.WARN
    assert result.metadata["batches_judged"].value == 10
    assert result.metadata["trades_judged"].value == 400
    # p95 of 0.5..4.4 s in steps of 0.1, each value 10 times: 4.2 s, within the 1 % histogram.
    assert abs(result.metadata["lag_trade_to_raw_p95_s"].value - 4.2) <= 0.05
    nothing = check_trade_lag_p95([], max_p95_seconds=30.0)
    assert nothing.passed
    assert nothing.metadata["batches_judged"].value == 0
    assert "lag_trade_to_raw_p95_s" not in nothing.metadata


def test_trade_lag_p95_fails_on_slow_trades_or_slow_alerts():
    # 6 of 100 trades 60 s late: more than 5 %, so the p95 is 60 s.
    slow_raw = [_batch(1, [1.0] * 94 + [60.0] * 6)]
    result = check_trade_lag_p95(slow_raw, max_p95_seconds=30.0)
    assert not result.passed
    assert "trade → trades_raw p95" in result.metadata["over_bound"].value
    assert abs(result.metadata["lag_trade_to_raw_p95_s"].value - 60.0) <= 0.6  # 1 % histogram
    # 4 of 100 slow trades stay under the p95: passes.
    assert check_trade_lag_p95([_batch(1, [1.0] * 96 + [60.0] * 4)], 30.0).passed
    slow_alert = [_batch(2, [1.0] * 50, alert=[45.0])]
    result = check_trade_lag_p95(slow_alert, max_p95_seconds=30.0)
    assert not result.passed
    assert "trade → alert" in result.metadata["over_bound"].value
    assert "trades_raw" not in result.metadata["over_bound"].value


def test_checkpoint_bounded_passes_under_the_bounds_and_when_not_visible():
    result = check_checkpoint_bounded(CheckpointSize(10_000, 300, 100), 2_000, 1 << 20)
    assert result.passed
    assert result.severity == dg.AssetCheckSeverity.ERROR
    assert result.metadata["checkpoint_files"].value == 300
    assert check_checkpoint_bounded(None, 2_000, 1 << 20).passed


def test_checkpoint_bounded_fails_on_files_bytes_or_batches_not_purged():
    too_many = check_checkpoint_bounded(CheckpointSize(10_000, 2_001, 100), 2_000, 1 << 20)
    assert not too_many.passed
    assert "2001 files > 2000" in too_many.metadata["problems"].value
    too_big = check_checkpoint_bounded(CheckpointSize((1 << 20) + 1, 10, 5), 2_000, 1 << 20)
    assert not too_big.passed
    unpurged = check_checkpoint_bounded(
        CheckpointSize(10_000, 500, 2 * SPARK_BATCHES_RETAINED + 1), 2_000, 1 << 20
    )
    assert not unpurged.passed
    assert "not purged" in unpurged.metadata["problems"].value


def test_checkpoint_size_counts_files_bytes_and_offset_batches(tmp_path: Path):
    offsets = tmp_path / "offsets"
    offsets.mkdir()
    for batch in range(3):
        (offsets / str(batch)).write_bytes(b"x" * 10)
        (offsets / f".{batch}.crc").write_bytes(b"c")
    (tmp_path / "metadata").write_bytes(b"{}")
    assert checkpoint_size(tmp_path) == CheckpointSize(bytes=33 + 2, files=7, offsets=3)
    assert checkpoint_size(tmp_path / "missing") == CheckpointSize(0, 0, 0)


def test_check_limits_from_a_run_config():
    limits = CheckLimits.of({"max_lag_seconds": 60.0, "max_p95_lag_seconds": 12.5, "mode": "once"})
    assert limits.max_lag_seconds == 60.0
    assert limits.max_p95_lag_seconds == 12.5
    assert limits.max_checkpoint_files == CheckLimits().max_checkpoint_files
