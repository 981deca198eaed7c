"""The three Spark assets materialized by streaming_analytics_job on real recorded trades."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pytest

from crypto_assets.analytics.batch import AnalyticsSummary
from crypto_assets.local.lakehouse import LocalLakehouse
from crypto_assets.local.layout import LocalLayout
from crypto_assets.orchestration.analytics_assets import (
    ANALYTICS_JOB,
    StreamingAnalyticsConfig,
    live_views,
    run_continuous,
    table_views,
)
from crypto_assets.orchestration.ingestion import PRODUCER_JOB
from crypto_assets.orchestration.sensors import landing_decision
from crypto_assets_tests.analytics.runs import run_local
from crypto_assets_tests.analytics.tables import snapshot
from crypto_assets_tests.landing_folder import landing_of
from crypto_assets_tests.orchestration.landing_for_tests import landing_records, write_landing_file

pytestmark = pytest.mark.spark

TRADES = 6000
FILES = 4
WINDOW_MS = 60_000


def _land(settings, records: list[dict], files: range) -> None:
    """Write `records` as FILES landing files; only those of `files` (by index)."""
    size = len(records) // FILES
    for index in files:
        part = records[index * size : (index + 1) * size if index < FILES - 1 else None]
        lines = [json.dumps(r) for r in part]
        write_landing_file(
            landing_of(settings), f"trades_20240808_2354{index:02d}_{index:06x}.json", lines
        )


def _windows(records: list[dict]) -> dict[tuple[str, dt.datetime], list[dict]]:
    """The records of each (symbol, window start), grouped here from the raw records."""
    windows: dict[tuple[str, dt.datetime], list[dict]] = defaultdict(list)
    for r in records:
        start_ms = r["trade_time"] - r["trade_time"] % WINDOW_MS
        windows[(r["symbol"], dt.datetime.fromtimestamp(start_ms / 1000, dt.UTC))].append(r)
    return windows


def _vwap(trades: list[dict]) -> float:
    return sum(t["price"] * t["quantity"] for t in trades) / sum(t["quantity"] for t in trades)


def _expected_latest_vwap(records: list[dict]) -> dict[str, float]:
    """VWAP of each symbol's newest window, computed here from the raw records."""
    windows = _windows(records)
    newest = {symbol: max(s for sym, s in windows if sym == symbol) for symbol, _ in windows}
    return {symbol: _vwap(windows[(symbol, start)]) for symbol, start in newest.items()}


def _decimals(records: list[dict]) -> dict[str, int]:
    """Per symbol, the most decimals any of its recorded prices is written with."""
    places: dict[str, int] = {}
    for r in records:
        written = -Decimal(str(r["price"])).normalize().as_tuple().exponent
        places[r["symbol"]] = max(places.get(r["symbol"], 0), written)
    return places


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


def _written_rows(markdown: str) -> dict[tuple[str, str], list[str]]:
    """The rows of windows_written's table per symbol: (symbol, start) -> [trades, VWAP, …]."""
    rows = {}
    symbol = ""
    for line in markdown.splitlines():
        if line.startswith("**"):
            symbol = line.strip("*")
        elif line.startswith("| ") and not line.startswith("| start "):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            rows[(symbol, cells[0])] = cells[1:]
    return rows


ALL_CHECKS = {
    "check_trades_raw_unique_trade_ids": True,
    "check_landing_to_table_lag": True,
    "check_vwap_within_low_high": True,
    "check_trades_analytics_key_columns_not_null": True,
    # The recording's trades are from August 2024: their lag is years, which this check flags.
    "check_trade_lag_p95": False,
    "check_checkpoint_bounded": True,
}


def test_each_run_materializes_what_it_changed_with_each_tables_own_numbers(
    defs, settings, instance, recording, spark
):
    records = landing_records(recording, TRADES)
    half = len(records) // FILES * 2
    job = defs.resolve_job_def(ANALYTICS_JOB)
    _land(settings, records, range(2))
    first = job.execute_in_process(instance=instance)
    assert first.success
    assert _metadata(first)["trades_raw"]["rows_written"] == half

    # Files that landed between the runs: the second run reports the windows they closed.
    _land(settings, records, range(2, FILES))
    before_ms = time.time_ns() // 1_000_000
    second = job.execute_in_process(instance=instance)
    after_ms = time.time_ns() // 1_000_000
    assert second.success
    meta = _metadata(second)
    assert set(meta) == {"trades_raw", "trades_analytics", "price_alerts"}
    raw = meta["trades_raw"]
    assert raw["dagster/row_count"] == len(records)
    assert raw["rows_written"] == len(records) - half
    assert raw["files_processed"] == FILES - 2
    assert raw["bad_rows_quarantined"] == 0
    assert raw["processing_seconds"] > 0
    # The oldest trade the run inserted has the largest trade -> trades_raw lag.
    oldest = min(r["trade_time"] for r in records[half:])
    lag_max = raw["lag_trade_to_raw_max_s"]
    assert (before_ms - oldest) / 1000 <= lag_max <= (after_ms - oldest) / 1000
    assert raw["batch_lag_trade_to_raw_max_s"] <= lag_max
    assert raw["lag_trade_to_raw_p50_s"] <= raw["lag_trade_to_raw_p95_s"] <= lag_max * 1.01
    assert raw["batch_id"] >= 0
    assert raw["batch_duration_s"] > 0
    assert raw["checkpoint_files"] > 0
    assert raw["table_files"] > 0
    assert meta["trades_analytics"]["lag_trade_to_window_max_s"] >= lag_max
    # Run-level numbers belong to trades_raw only.
    analytics, alerts = meta["trades_analytics"], meta["price_alerts"]
    run_levels = ("files_processed", "batches", "bad_rows_quarantined", "processing_seconds")
    for run_level in (*run_levels, "batch_id", "checkpoint_bytes", "lag_trade_to_raw_p95_s"):
        assert run_level not in analytics
        assert run_level not in alerts
    windows = _windows(records)
    assert analytics["dagster/row_count"] == len(windows)
    # New windows and revisions apart: the windows the first run wrote that these trades reach.
    first_windows = _metadata(first)["trades_analytics"]["dagster/row_count"]
    assert analytics["rows_written"] == len(windows) - first_windows
    assert analytics["rows_revised"] >= 1
    assert analytics["late_rows"] == 0

    # VWAP rounded to the recorded prices' precision (2 decimals for both symbols).
    decimals = _decimals(records)
    assert decimals == {"BTCUSDT": 2, "ETHUSDT": 2}
    for symbol, vwap in _expected_latest_vwap(records).items():
        assert analytics[f"vwap_{symbol.lower()}"] == round(vwap, decimals[symbol])

    # The windows the second run wrote are those its trades fall in, each with its VWAP.
    written = _written_rows(analytics["windows_written"])
    touched = {(r["symbol"], r["trade_time"] - r["trade_time"] % WINDOW_MS) for r in records[half:]}
    expected = {}
    dates = {dt.datetime.fromtimestamp(ms / 1000, dt.UTC).date() for _, ms in touched}
    clock = "%H:%M" if len(dates) == 1 else "%m-%d %H:%M"  # month and day across midnight
    for symbol, start_ms in touched:
        start = dt.datetime.fromtimestamp(start_ms / 1000, dt.UTC)
        trades = windows[(symbol, start)]
        vwap = f"{round(_vwap(trades), decimals[symbol]):,.{decimals[symbol]}f}"
        expected[(symbol, f"{start:{clock}}")] = [str(len(trades)), vwap]
    assert {key: cells[:2] for key, cells in written.items()} == expected
    chart = analytics["vwap_volume_last_hour"]
    assert chart.count("data:image/svg+xml;base64,") == len(decimals)
    assert _checks(second) == ALL_CHECKS

    # A third run finds nothing new: no materialization replaces the second run's.
    third = job.execute_in_process(instance=instance)
    assert third.success
    assert third.asset_materializations_for_node("streaming_analytics") == []
    observed = third.asset_observations_for_node("streaming_analytics")
    assert [o.asset_key.to_user_string() for o in observed] == ["trades_raw"]
    assert _checks(third) == ALL_CHECKS  # the checks are still evaluated (on nothing new)
    for table, values in meta.items():
        latest = instance.get_latest_materialization_event(dg.AssetKey(table))
        assert latest.run_id == second.run_id
        stored = latest.asset_materialization.metadata
        assert {k: v.value for k, v in stored.items()} == values
    history = instance.fetch_materializations(dg.AssetKey("trades_raw"), limit=10).records
    assert len(history) == 2


def test_analytics_without_landing_fails_with_one_line(defs, instance, spark):
    result = defs.resolve_job_def(ANALYTICS_JOB).execute_in_process(
        instance=instance, raise_on_error=False
    )
    assert not result.success
    failure = result.failure_data_for_node("streaming_analytics")
    assert "run the producer first" in failure.user_failure_data.description


def test_continuous_mode_reports_batches_and_stops_cleanly_when_terminated(
    settings, recording, spark
):
    records = landing_records(recording, TRADES)
    _land(settings, records, range(FILES))
    config = StreamingAnalyticsConfig(
        mode="continuous", trigger_seconds=1.0, report_interval_seconds=0.5
    )
    reported: list[int] = []
    live = AnalyticsSummary()
    lags_seen: list[int] = []

    def report(batch_id: int) -> None:
        reported.append(batch_id)
        # The live summary already holds the reported batch's lags when its report runs.
        lags_seen.append(live.lag.latest.batch_id)
        assert live.seconds > 0  # the run's time so far, for the report's processing_seconds
        # What Dagster raises in the step's thread when the run is terminated.
        raise dg.DagsterExecutionInterruptedError("terminated from the UI")

    started = dt.datetime.now(dt.UTC)
    summary = run_continuous(spark, settings, config, report, live)  # a stop, not an error
    assert reported == lags_seen == [0]
    assert summary is live
    assert live.lag.stats()["raw"].count == len(records)
    assert summary.rows_written["trades_raw"] == len(records)
    assert not spark.streams.active  # the query was stopped, not left running
    lakehouse = LocalLakehouse(LocalLayout.from_settings(settings))
    assert lakehouse.count_rows("trades_raw") == len(records)

    # What a continuous report shows: the run's numbers so far and row counts, nothing read from
    # the tables' rows or folders.
    live_report = live_views(lakehouse, live)
    assert live_report["trades_raw"]["dagster/row_count"] == len(records)
    assert live_report["trades_raw"]["files_processed"] == FILES
    assert live_report["trades_raw"]["lag_trade_to_raw_max_s"] > 0
    assert live_report["trades_raw"]["checkpoint_files"] > 0
    windows = len(_windows(records))
    assert live_report["trades_analytics"]["dagster/row_count"] == windows
    assert live_report["trades_analytics"]["rows_written"] == windows
    read_from_tables = {"table_bytes", "windows_written", "latest_windows", "newest_alerts"}
    for table in live_report.values():
        assert not read_from_tables & set(table)

    # What a run's end shows without a summary: each table's row count and size, and the
    # windows and alerts written since the run started.
    views = table_views(lakehouse, None, started)
    assert views["trades_raw"]["dagster/row_count"] == len(records)
    assert set(views["trades_raw"]) == {
        "dagster/row_count",
        *("table_bytes", "table_files", "checkpoint_bytes", "checkpoint_files"),
    }
    written = _written_rows(views["trades_analytics"]["windows_written"].value)
    assert {symbol for symbol, _ in written} == {r["symbol"] for r in records}
    assert len(written) == views["trades_analytics"]["dagster/row_count"] == len(_windows(records))
    assert "late_rows" not in views["trades_analytics"]
    # A report after this moment lists no window: none was written since.
    later = table_views(lakehouse, None, dt.datetime.now(dt.UTC))
    assert "(no windows written)" in later["trades_analytics"]["windows_written"].value
    assert "(no windows written)" in later["trades_analytics"]["latest_windows"].value
    assert later["price_alerts"]["alerts_price_move"] == 0
    assert later["trades_analytics"]["dagster/row_count"] == len(_windows(records))


def _follow_config(trigger_seconds: float) -> dict:
    config = {
        "mode": "continuous",
        "follow_producer": True,
        "trigger_seconds": trigger_seconds,
        "report_interval_seconds": 0.5,
    }
    return {"ops": {"streaming_analytics": {"config": config}}}


def test_a_run_that_follows_the_producer_ends_by_itself_after_draining(
    defs, settings, instance, recording, spark, tmp_path
):
    records = landing_records(recording, TRADES)
    half = len(records) // FILES * 2
    lakehouse = LocalLakehouse(LocalLayout.from_settings(settings))
    producer = instance.create_run_for_job(
        defs.resolve_job_def(PRODUCER_JOB), status=dg.DagsterRunStatus.STARTED
    )
    _land(settings, records, range(2))

    def producer_lands_and_stops() -> None:
        # The query's first batch (at its start) takes the first files; the next trigger is an
        # hour away, so the files landed last are the drain's.
        while lakehouse.count_rows("trades_raw") < half:
            time.sleep(0.2)
        _land(settings, records, range(2, FILES))
        instance.report_run_canceled(producer, "the producer run ended")

    producing = threading.Thread(target=producer_lands_and_stops, daemon=True)
    producing.start()
    job = defs.resolve_job_def(ANALYTICS_JOB)
    result = job.execute_in_process(instance=instance, run_config=_follow_config(3600.0))
    producing.join(timeout=5)
    assert result.success

    logs = instance.all_logs(result.run_id)
    lines = [record.user_message for record in logs]
    assert any(line.startswith("no producer run active: stopped, drained: ") for line in lines)
    raw_reports = [
        {k: v.value for k, v in m.metadata.items()}
        for m in result.asset_materializations_for_node("streaming_analytics")
        if m.asset_key.to_user_string() == "trades_raw"
    ]
    # The continuous part's reports, then the run's: both parts, every file, every trade.
    assert raw_reports[0]["files_processed"] == 2
    assert raw_reports[-1]["files_processed"] == FILES
    assert raw_reports[-1]["rows_written"] == raw_reports[-1]["dagster/row_count"] == len(records)
    assert raw_reports[-1]["lag_trade_to_raw_max_s"] > 0
    assert _checks(result) == ALL_CHECKS

    # The same tables as one availableNow run over the same files.
    once_settings = settings.replace(data_dir=tmp_path / "once")
    _land(once_settings, records, range(FILES))
    run_local(spark, once_settings, mode="once")
    assert snapshot(Path(settings.data_dir)) == snapshot(Path(once_settings.data_dir))

    # Nothing is left for a once-run: the sensor starts none after the follow run.
    after = landing_decision(instance, None, lakehouse)
    assert isinstance(after, dg.SensorResult)
    assert after.run_requests == []
    assert "all processed already" in after.skip_reason.skip_message


def test_only_a_continuous_run_follows_the_producer():
    with pytest.raises(dg.Failure) as failed:
        StreamingAnalyticsConfig(mode="once", follow_producer=True)
    assert failed.value.description == (
        "StreamingAnalyticsConfig: follow_producer=True: a run follows the producer in mode "
        "continuous"
    )
    assert StreamingAnalyticsConfig().report_interval_seconds == 5.0
