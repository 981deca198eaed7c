"""The three Spark assets materialized by streaming_analytics_job on real recorded trades."""

from __future__ import annotations

import json
from collections import defaultdict

import dagster as dg
import pytest

from crypto_assets.orchestration.analytics_assets import (
    ANALYTICS_JOB,
    StreamingAnalyticsConfig,
    run_continuous,
)
from crypto_assets.orchestration.lakehouse import LocalLakehouse
from crypto_assets_tests.orchestration.landing_for_tests import landing_records, write_landing_file

pytestmark = pytest.mark.spark

TRADES = 6000
FILES = 4
WINDOW_MS = 60_000


def _land(settings, recording) -> list[dict]:
    records = landing_records(recording, TRADES)
    size = len(records) // FILES
    for index in range(FILES):
        part = records[index * size : (index + 1) * size if index < FILES - 1 else None]
        lines = [json.dumps(r) for r in part]
        write_landing_file(
            settings.landing_dir, f"trades_20240808_2354{index:02d}_{index:06x}.json", lines
        )
    return records


def _expected_latest_vwap(records: list[dict]) -> dict[str, float]:
    """VWAP of each symbol's newest window, computed here from the raw records."""
    windows: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for r in records:
        windows[(r["symbol"], r["trade_time"] - r["trade_time"] % WINDOW_MS)].append(r)
    newest: dict[str, int] = {}
    for symbol, start in windows:
        newest[symbol] = max(newest.get(symbol, start), start)
    out = {}
    for symbol, start in newest.items():
        trades = windows[(symbol, start)]
        quote = sum(t["price"] * t["quantity"] for t in trades)
        out[symbol] = quote / sum(t["quantity"] for t in trades)
    return out


def _metadata(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    return {
        m.asset_key.to_user_string(): {k: v.value for k, v in m.metadata.items()}
        for m in result.asset_materializations_for_node("streaming_analytics")
    }


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {
        e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data.passed
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
    }


def test_analytics_job_materializes_the_tables_with_metadata_and_checks(
    defs, settings, instance, recording, spark
):
    records = _land(settings, recording)
    job = defs.resolve_job_def(ANALYTICS_JOB)
    result = job.execute_in_process(instance=instance)
    assert result.success

    meta = _metadata(result)
    assert set(meta) == {"trades_raw", "trades_analytics", "price_alerts"}
    raw = meta["trades_raw"]
    assert raw["dagster/row_count"] == raw["rows_written"] == len(records)
    assert raw["files_processed"] == FILES
    assert raw["bad_rows"] == 0
    assert raw["processing_seconds"] > 0
    analytics = meta["trades_analytics"]
    symbols = sorted({r["symbol"] for r in records})
    for symbol, vwap in _expected_latest_vwap(records).items():
        assert analytics[f"vwap_{symbol.lower()}"] == pytest.approx(vwap, rel=1e-9)
    table = analytics["latest_windows"]
    assert [line.split(" | ")[0].strip("| ") for line in table.splitlines()[2:]] == symbols
    assert "newest_alerts" in meta["price_alerts"]

    checks = _checks(result)
    assert checks == {
        "check_trades_raw_unique_trade_ids": True,
        "check_landing_to_table_lag": True,
        "check_vwap_within_low_high": True,
        "check_trades_analytics_key_columns_not_null": True,
    }

    # A second run finds nothing new: nothing written, nothing counted twice.
    again = job.execute_in_process(instance=instance)
    assert again.success
    raw_again = _metadata(again)["trades_raw"]
    assert raw_again["files_processed"] == 0
    assert raw_again["rows_written"] == 0
    assert raw_again["dagster/row_count"] == len(records)
    history = instance.fetch_materializations(dg.AssetKey("trades_raw"), limit=10).records
    assert len(history) == 2


def test_analytics_without_landing_fails_with_one_line(defs, instance, spark):
    result = defs.resolve_job_def(ANALYTICS_JOB).execute_in_process(
        instance=instance, raise_on_error=False
    )
    assert not result.success
    failure = result.failure_data_for_node("streaming_analytics")
    assert "run the producer first" in failure.user_failure_data.description


def test_continuous_mode_reports_batches_and_stops_when_terminated(settings, recording, spark):
    records = _land(settings, recording)
    config = StreamingAnalyticsConfig(
        mode="continuous", trigger_seconds=1.0, report_interval_seconds=0.5
    )
    reported: list[int] = []

    def report(batch_id: int) -> None:
        reported.append(batch_id)
        # What Dagster raises in the step's thread when the run is terminated.
        raise dg.DagsterExecutionInterruptedError("terminated from the UI")

    with pytest.raises(dg.DagsterExecutionInterruptedError):
        run_continuous(spark, settings, config, report)
    assert reported == [0]
    assert not spark.streams.active  # the query was stopped, not left running
    lakehouse = LocalLakehouse(data_dir=str(settings.data_dir))
    assert lakehouse.count_rows("trades_raw") == len(records)
