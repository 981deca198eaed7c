"""The Databricks deployment (Delta-Spark sink, JSON file source) against the local one, for real.

The same landing files processed by the local deployment (delta-rs) and by the Databricks deployment
(real Delta-Spark, path-based tables, the file-source fallback of Auto Loader) give the same
tables, equal to the plain-Python reference; a batch failed after a commit is re-run to the
same tables; and the sink's writes are idempotent per batch tag.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pytest

from crypto_assets.analytics.batch import alerts_in, stamped
from crypto_assets.analytics.lag import read_recent_batch_lags
from crypto_assets.analytics.pipeline import AnalyticsError, run_analytics
from crypto_assets.analytics.ports import META_BATCH, BatchTag, MergeCounts
from crypto_assets.analytics.schema import (
    ALL_TABLES,
    PRICE_ALERTS,
    TABLE_SCHEMAS,
    TRADES_ANALYTICS,
    TRADES_QUARANTINE,
    TRADES_RAW,
)
from crypto_assets.analytics.transforms import WINDOW_COLUMNS, AlertRules, scoring_sql
from crypto_assets.analytics.window_runs import MAX_RUNS_PER_QUERY, Run, TradeSpan, widened
from crypto_assets.databricks.deployment import DatabricksDeployment
from crypto_assets.databricks.lakehouse import DatabricksLakehouse
from crypto_assets.databricks.layout import VolumeLayout
from crypto_assets.databricks.spark_delta_sink import (
    SparkDeltaSink,
    layout_identifier,
    path_identifier,
)
from crypto_assets.settings import Settings
from crypto_assets_tests.analytics.expectations import (
    assert_matches_reference,
    assert_raw_holds_each_trade_once,
)
from crypto_assets_tests.analytics.landing_files import write_landing_files, write_lines
from crypto_assets_tests.analytics.runs import run_local
from crypto_assets_tests.analytics.settings_for_tests import analytics_settings
from crypto_assets_tests.analytics.tables import rows, snapshot
from crypto_assets_tests.analytics.test_backlog import InjectedFailureError, spread

pytestmark = pytest.mark.spark

_TS = pa.timestamp("us", tz="UTC")
BAD_LINES = [
    '{"symbol": "BTCUSDT", "trade_id": 1}',
    "not json",
    '{"event_type": "trade", "event_time": 1722470400000, "symbol": "BTCUSDT", "trade_id": 7,'
    ' "price": "67000.5", "quantity": 0.1, "trade_time": 1722470400000,'
    ' "is_buyer_maker": true, "ingestion_time": 1722470400001}',
]


def databricks_dirs(tmp_path: Path) -> Path:
    """A folder standing in for the Volume; its ``_tables`` is also `tmp_path`/delta.

    So the test-side readers of the local tables (tables.py) read the Delta-Spark tables too.
    """
    volume = tmp_path / "volume"
    (volume / "_tables").mkdir(parents=True)
    (tmp_path / "delta").symlink_to(volume / "_tables", target_is_directory=True)
    return volume


def run_databricks(spark, tmp_path: Path, **options: object):
    """One run of the Databricks deployment's analytics on the Volume stand-in under `tmp_path`."""
    settings = analytics_settings(tmp_path)
    deployment = DatabricksDeployment(settings, volume_root=tmp_path / "volume")
    return run_analytics(spark, settings, deployment.analytics_target(spark), **options)


@pytest.mark.slow  # the recording through both deployments: a minute of Delta-Spark
def test_the_databricks_deployment_writes_the_local_tables(
    spark, full_run, landing_records, tmp_path: Path
) -> None:
    volume = databricks_dirs(tmp_path)
    shutil.copytree(full_run.data_dir / "landing" / "trades", volume / "trades")

    summary = run_databricks(spark, tmp_path)

    assert summary.files_processed == 12
    assert summary.rows_total[TRADES_RAW] == len(
        {(r["symbol"], r["trade_id"]) for r in landing_records}
    )
    assert snapshot(tmp_path) == snapshot(full_run.data_dir)
    assert_raw_holds_each_trade_once(tmp_path, landing_records)
    assert_matches_reference(tmp_path, landing_records)
    # Delta-Spark's MERGE counts: each window inserted once, its later updates apart.
    assert summary.rows_written[TRADES_ANALYTICS] == summary.rows_total[TRADES_ANALYTICS]
    # Written by Delta-Spark, not delta-rs: the commits name Spark's MERGE and its engine.
    history = spark.sql(f"DESCRIBE HISTORY delta.`{volume / '_tables' / TRADES_RAW}`").collect()
    assert any("Apache-Spark" in (row["engineInfo"] or "") for row in history)
    assert {row["operation"] for row in history} >= {"CREATE TABLE", "MERGE"}
    # Every batch's lags are in a price_alerts commit's userMetadata, read back by delta-rs.
    stored = read_recent_batch_lags(tmp_path / "delta" / PRICE_ALERTS, limit=1_000)
    assert len(stored) == summary.batches
    assert sum(lag.raw.count for lag in stored) == summary.rows_total[TRADES_RAW]
    assert stored[0].raw == pytest.approx(summary.lag.latest.raw, abs=0.001)


@pytest.mark.slow  # Delta-Spark's quarantine: a minute on 2 cores
def test_bad_lines_are_quarantined_with_the_local_reasons(
    spark, landing_records, tmp_path: Path
) -> None:
    volume = databricks_dirs(tmp_path)
    good = landing_records[:300]
    write_landing_files(volume / "trades", good, 2)
    write_lines(volume / "trades", "trades_20240809_000000_0000ff.json", BAD_LINES)
    local_dir = tmp_path / "local"
    write_landing_files(local_dir / "landing" / "trades", good, 2)
    write_lines(local_dir / "landing" / "trades", "trades_20240809_000000_0000ff.json", BAD_LINES)

    summary = run_databricks(spark, tmp_path)
    run_local(spark, analytics_settings(local_dir))

    assert summary.bad_rows == len(BAD_LINES)
    quarantined = {r["reason"]: r for r in rows(tmp_path, TRADES_QUARANTINE)}
    assert {r["reason"] for r in rows(local_dir, TRADES_QUARANTINE)} == set(quarantined)
    assert any(reason.startswith("missing event_time") for reason in quarantined)
    assert any(reason.startswith("not valid JSON") for reason in quarantined)
    string_price = next(r for reason, r in quarantined.items() if "must be JSON numbers" in reason)
    assert string_price["raw_line"] == BAD_LINES[-1]  # the line as it landed
    assert {r["source_file"] for r in quarantined.values()} == {
        "trades_20240809_000000_0000ff.json"
    }
    assert_raw_holds_each_trade_once(tmp_path, good)


@pytest.mark.slow  # Delta-Spark: tens of seconds on 2 cores
def test_a_json_array_line_is_read_as_its_elements(spark, landing_records, tmp_path: Path) -> None:
    # Spark's JSON reader (Auto Loader's too) takes a top-level array as rows, one per element:
    # the one way this deployment's reader differs from the local reader, which rejects the line.
    volume = databricks_dirs(tmp_path)
    trade = json.dumps(landing_records[0])
    write_lines(volume / "trades", "trades_20240809_000000_0000ff.json", ["[]", f"[{trade}]"])

    summary = run_databricks(spark, tmp_path)

    assert summary.bad_rows == 0
    assert [(r["symbol"], r["trade_id"]) for r in rows(tmp_path, TRADES_RAW)] == [
        (landing_records[0]["symbol"], landing_records[0]["trade_id"])
    ]


@pytest.mark.parametrize(
    "step",
    [
        pytest.param(f"{TRADES_RAW}:0", marks=pytest.mark.slow),
        pytest.param(f"{PRICE_ALERTS}:0", marks=pytest.mark.slow),
    ],
)
def test_a_batch_failed_after_a_commit_is_rerun_to_the_same_tables(
    spark, tmp_path: Path, landing_records, step: str
) -> None:
    volume = databricks_dirs(tmp_path)
    before, after = landing_records[:2000], spread(landing_records[2000:5000], 20, 5)
    write_landing_files(volume / "trades", before, 2)
    run_databricks(spark, tmp_path)
    write_landing_files(volume / "trades", after, 3, first_sequence=10)
    write_lines(volume / "trades", "trades_20240809_000000_0000ff.json", BAD_LINES)
    failed = []

    def fail(done: str, batch_id: int) -> None:
        if done == step and not failed:
            failed.append(batch_id)
            raise InjectedFailureError(f"died after {done} of batch {batch_id}")

    with pytest.raises(AnalyticsError, match="died after"):
        run_databricks(spark, tmp_path, on_step=fail)
    assert failed, f"the batch never reached {step}"

    rerun = run_databricks(spark, tmp_path)
    assert rerun.files_processed == 4  # the failed batch, whole, and nothing more
    assert_raw_holds_each_trade_once(tmp_path, before + after)
    assert_matches_reference(tmp_path, before + after)
    assert len(rows(tmp_path, TRADES_QUARANTINE)) == len(BAD_LINES)


def _raw_rows(trade_ids: list[int], day: str = "2024-08-01") -> pa.Table:
    base = int(dt.datetime.fromisoformat(f"{day}T00:00:00+00:00").timestamp() * 1000)
    n = len(trade_ids)
    now = dt.datetime(2024, 8, 2, tzinfo=dt.UTC)
    return pa.table(
        {
            "event_type": ["trade"] * n,
            "event_time": [base + i for i in trade_ids],
            "symbol": ["BTCUSDT"] * n,
            "trade_id": trade_ids,
            "price": [100.0] * n,
            "quantity": [0.5] * n,
            "trade_value_usdt": [50.0] * n,
            "trade_time": [base + i for i in trade_ids],
            "is_buyer_maker": [False] * n,
            "ingestion_time": [base + i + 5 for i in trade_ids],
            "source_file": ["trades_20240801_000000_000001.json"] * n,
            "processed_time": pa.array([now] * n, _TS),
            "ingest_lag_ms": [5] * n,
            "trade_date": [day] * n,
        },
        schema=TABLE_SCHEMAS[TRADES_RAW],
    )


@pytest.mark.slow  # Delta-Spark, a batch replayed twice: a minute on 2 cores
def test_the_same_tag_twice_changes_nothing(spark, tmp_path: Path) -> None:
    sink = SparkDeltaSink(spark, path_identifier(tmp_path))
    sink.ensure_tables()
    sink.ensure_tables()  # idempotent
    tag = BatchTag("query:test", 3)
    quarantine = pa.table(
        {
            "source_file": ["trades_20240801_000000_000001.json"],
            "raw_line": ["not json"],
            "reason": ["not valid JSON"],
            "processed_time": pa.array([dt.datetime(2024, 8, 2, tzinfo=dt.UTC)], _TS),
        }
    )
    assert not sink.applied(TRADES_QUARANTINE, tag)
    sink.append_quarantine(quarantine, tag)
    sink.append_quarantine(quarantine, tag)  # an append Delta skips: the table holds the txn
    assert sink.row_count(TRADES_QUARANTINE) == 1
    assert sink.applied(TRADES_QUARANTINE, tag)
    assert sink.applied(TRADES_QUARANTINE, BatchTag("query:test", 2))
    assert not sink.applied(TRADES_QUARANTINE, BatchTag("query:test", 4))
    assert not sink.applied(TRADES_QUARANTINE, BatchTag("query:other", 3))

    # A non-final piece records the watermark input but does not mark the step applied.
    assert sink.merge_trades_raw(_raw_rows([1, 2]), tag, 1_722_000_000_000, final=False) == 2
    assert not sink.applied(TRADES_RAW, tag)
    assert sink.recorded_max_trade_time(tag) == (True, 1_722_000_000_000)
    assert sink.merge_trades_raw(_raw_rows([2, 3]), tag, 1_722_000_000_000, final=True) == 1
    assert sink.applied(TRADES_RAW, tag)
    # The same tag's final MERGE again: Delta skips it (txnAppId/txnVersion), even with new rows.
    assert sink.merge_trades_raw(_raw_rows([4]), tag, 1_722_000_000_000, final=True) == 0
    assert sink.row_count(TRADES_RAW) == 3
    assert sink.max_trade_time() == _raw_rows([3])["trade_time"][0].as_py()
    assert sink.recorded_max_trade_time(BatchTag("query:test", 9)) == (False, None)
    # A first batch records "no trades before it" as found, with no value.
    first = BatchTag("query:test", 10)
    sink.merge_trades_raw(_raw_rows([5], "2024-08-03"), first, None, final=True)
    assert sink.recorded_max_trade_time(first) == (True, None)
    assert {
        r["trade_date"]
        for r in spark.sql(
            f"SELECT DISTINCT trade_date FROM delta.`{tmp_path / TRADES_RAW}`"
        ).collect()
    } == {"2024-08-01", "2024-08-03"}
    partitions = spark.sql(f"DESCRIBE DETAIL delta.`{tmp_path / TRADES_RAW}`").first()
    assert partitions["partitionColumns"] == ["trade_date"]

    # A run's commits: each with what it did; a batch's record is made each time it runs (an
    # empty append, which Delta-Spark would not record without an app transaction of its own).
    before = sink.versions()
    record = {META_BATCH: "[1, 0, 0, 0]"}
    sink.merge_trades_raw(_raw_rows([6, 7]), BatchTag("query:test", 11), None, final=True)
    sink.record_batch(BatchTag("query:test", 11), record)
    sink.record_batch(BatchTag("query:test", 11), record)
    commits = sink.run_commits("query:test", before)
    assert sorted((c.table, c.batch_id, c.counts) for c in commits) == [
        (PRICE_ALERTS, 11, MergeCounts(0)),
        (PRICE_ALERTS, 11, MergeCounts(0)),
        (TRADES_RAW, 11, MergeCounts(2)),
    ]
    assert not sink.applied(PRICE_ALERTS, BatchTag("query:test", 11))
    assert sink.run_commits("query:test", sink.versions()) == []


@pytest.mark.slow  # OPTIMIZE and VACUUM of four tables: minutes on a busy 2-core machine
def test_maintenance_keeps_every_row(spark, tmp_path: Path) -> None:
    sink = SparkDeltaSink(spark, path_identifier(tmp_path))
    sink.ensure_tables()
    for batch_id in range(3):
        ids = [batch_id * 10 + 1, batch_id * 10 + 2]
        sink.merge_trades_raw(_raw_rows(ids), BatchTag("q", batch_id), None, final=True)
    sink.maintain(retention_hours=0)
    assert sink.row_count(TRADES_RAW) == 6
    assert {name: sink.row_count(name) for name in ALL_TABLES}[TRADES_ANALYTICS] == 0
    operations = [
        row["operation"]
        for row in spark.sql(f"DESCRIBE HISTORY delta.`{tmp_path / TRADES_RAW}`").collect()
    ]
    assert "OPTIMIZE" in operations
    assert "VACUUM END" in operations


def test_a_piece_of_the_most_runs_compiles_in_spark(spark, tmp_path: Path) -> None:
    # Delta-Spark skips files by generating code for each scan's predicate. Past some size that
    # code fails to compile, and Spark logs an ERROR with a long stack trace before it falls back
    # to interpreting (seconds later): a batch's piece must stay under that size in every query.
    # Without the fallback, such a failure raises here. The sink's queries of a piece, and the
    # lakehouse's lookup of trade spans in pieces of the same size.
    settings = Settings(data_dir=tmp_path / "data")
    layout = dataclasses.replace(VolumeLayout.from_settings(settings), stand_in=str(tmp_path))
    sink = SparkDeltaSink(spark, layout_identifier(layout, on_databricks=False))
    sink.ensure_tables()
    window_ms, lookback = 60_000, 10
    start = int(dt.datetime(2024, 8, 1, tzinfo=dt.UTC).timestamp() * 1000)
    # Runs far enough apart that no widened run meets the next: the largest predicates a piece
    # can give (`BatchProcessor._windows_and_alerts` widens them the same way).
    spacing = 3 * (lookback + 1) * window_ms
    piece = [
        Run("BTCUSDT", start + i * spacing, start + i * spacing + window_ms)
        for i in range(MAX_RUNS_PER_QUERY)
    ]
    reach = (lookback + 1) * window_ms
    affected = widened(piece, after=reach)
    stored = widened(affected, before=reach)
    rules = AlertRules(0.5, 100, 3.0, lookback)
    tag = BatchTag("query:codegen", 0)
    id_runs = [Run("BTCUSDT", i * 1_000, i * 1_000 + 10) for i in range(MAX_RUNS_PER_QUERY)]
    spans = [TradeSpan(r.symbol, r.first, r.last, start, start + 1) for r in id_runs]
    spark.conf.set("spark.sql.codegen.fallback", "false")
    try:
        sink.existing_trades(id_runs)
        DatabricksLakehouse(layout, settings).trades_in(spans)
        scored = sink.score(scoring_sql(window_ms, rules), piece, window_ms, stored)
        now = dt.datetime.now(dt.UTC)
        fresh = scored.filter(scored["_fresh"]).select(WINDOW_COLUMNS)
        sink.merge_analytics(stamped(fresh, "updated_time", now), tag, final=True)
        sink.alert_keys(affected)
        sink.replace_alerts(alerts_in(scored, affected, now), affected, tag, final=True)
    finally:
        spark.conf.unset("spark.sql.codegen.fallback")
