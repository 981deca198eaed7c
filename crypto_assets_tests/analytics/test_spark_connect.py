"""The analytics on Spark Connect, as Databricks serverless runs them: batches out of process.

The batch function pickles without the caller's session, as Spark Connect ships it. The
Databricks deployment (Delta-Spark path tables, Spark's JSON file source) runs twice on a
local Spark Connect server, in a child process (`connect_runs`), and twice on the test session's
classic Spark, over the same landing files: the tables are equal to each other and to the
plain-Python reference, and the summaries, read back from the runs' commits, are equal too (on
classic Spark also to the one counted as the batches ran). A batch that fails on the server is
the one-line error it is on classic Spark.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pyspark import cloudpickle

from crypto_assets.analytics.batch import AnalyticsSummary, BatchProcessor, alert_rules
from crypto_assets.analytics.pipeline import run_analytics
from crypto_assets.analytics.schema import TRADES_QUARANTINE, TRADES_RAW
from crypto_assets.databricks.deployment import DatabricksDeployment
from crypto_assets.local.deployment import LocalDeployment
from crypto_assets_tests.analytics.connect_runs import ConnectRunner
from crypto_assets_tests.analytics.expectations import (
    assert_matches_reference,
    assert_raw_holds_each_trade_once,
)
from crypto_assets_tests.analytics.landing_files import (
    landing_name,
    write_landing_files,
    write_lines,
)
from crypto_assets_tests.analytics.runs import summary_facts
from crypto_assets_tests.analytics.settings_for_tests import analytics_settings
from crypto_assets_tests.analytics.tables import rows, snapshot

pytestmark = pytest.mark.spark

BAD_LINES = ['{"symbol": "BTCUSDT", "trade_id": 1}', "not json"]
DUPLICATES = 100
# Files a batch takes in each run: the first run is one batch, the second two.
FILES_PER_BATCH = (3, 2)


@dataclass(frozen=True)
class Landing:
    """The trades of the two runs: each run's files, and what the tables must hold after them."""

    stages: list[list[tuple[str, list[str]]]]
    trades: list[dict]
    on_time: list[dict]


def landing(records: Sequence[dict]) -> Landing:
    """Every 8th trade of the recording (all its minutes, fewer rows): three files, then four.

    The first run has two files and one of bad lines; the second two more files (a batch), then
    one that repeats trades of the first run and one with the earliest BTCUSDT trade, held back:
    late by then (a batch that writes no window, so no alert: its record has a commit of its own).
    """
    sample = list(records[::8])
    earliest = min((r for r in sample if r["symbol"] == "BTCUSDT"), key=lambda r: r["trade_time"])
    first = [r for r in sample[:2000] if r is not earliest]
    second = sample[2000:]
    stages = [
        [*_files(first, 2, 0), ("trades_20240809_000000_0000ff.json", BAD_LINES)],
        [
            *_files(second, 2, 2),
            _file(first[-DUPLICATES:], 4),
            _file([earliest], 5),
        ],
    ]
    return Landing(stages, sample, [r for r in sample if r is not earliest])


def _file(records: Sequence[dict], sequence: int) -> tuple[str, list[str]]:
    return landing_name(records[0]["trade_time"], sequence), [json.dumps(r) for r in records]


def _files(records: Sequence[dict], count: int, first: int) -> list[tuple[str, list[str]]]:
    size = -(-len(records) // count)
    return [_file(records[i * size : (i + 1) * size], first + i) for i in range(count)]


def land(volume: Path, files: list[tuple[str, list[str]]]) -> None:
    """Write `files` into the Volume's landing folder, modified one second apart in this order.

    Spark's file source takes a batch's files in modification order: both deployments then cut
    the same batches.
    """
    start = time.time() - len(files)
    for index, (name, lines) in enumerate(files):
        path = write_lines(volume / "trades", name, lines)
        os.utime(path, (start + index, start + index))


def volume_dirs(data_dir: Path) -> Path:
    """A folder standing in for the Volume; its ``_tables`` is also `data_dir`/delta (tables.py)."""
    volume = data_dir / "volume"
    (volume / "_tables").mkdir(parents=True)
    (data_dir / "delta").symlink_to(volume / "_tables", target_is_directory=True)
    return volume


def corrupt_data_files(table: Path) -> int:
    """Overwrite every Parquet file of a Delta table with garbage (its log stays whole).

    What a damaged disk or a careless hand does: the table still opens, reading it fails.
    """
    files = list(table.rglob("*.parquet"))
    for path in files:
        path.write_bytes(b"not parquet")
    return len(files)


@dataclass(frozen=True)
class Runs:
    """Both kinds of Spark over the same landing files, and a run that fails on Spark Connect.

    `connect_dir` and `classic_dir` are data dirs whose ``delta`` folder holds each one's tables.
    """

    landing: Landing
    connect_dir: Path
    classic_dir: Path
    connect: list[dict[str, Any]]
    classic: list[dict[str, Any]]
    classic_live: list[dict[str, Any]]
    failure: dict[str, Any]


@pytest.fixture(scope="module")
def runs(spark, landing_records, tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """The two runs on Spark Connect (child process), then the failure, then classic Spark."""
    data = landing(landing_records)
    connect_dir = tmp_path_factory.mktemp("connect")
    classic_dir = tmp_path_factory.mktemp("classic")
    # The Connect run's tables as they were before the failing run damaged them (a Delta table's
    # log names its files relative to its folder: a copy is the same table).
    tables_dir = tmp_path_factory.mktemp("connect_tables")
    connect_volume, classic_volume = volume_dirs(connect_dir), volume_dirs(classic_dir)
    runner = ConnectRunner()
    try:
        connect = []
        for files, files_per_batch in zip(data.stages, FILES_PER_BATCH, strict=True):
            land(connect_volume, files)
            connect.append(runner.run(connect_dir, connect_volume, files_per_batch))
        shutil.copytree(connect_volume / "_tables", tables_dir / "delta")

        # trades_raw's data files damaged: the next batch fails when it reads trades_raw, in
        # the server's Python worker.
        assert corrupt_data_files(connect_volume / "_tables" / TRADES_RAW) > 0
        write_landing_files(connect_volume / "trades", landing_records[1::8][:200], 1, 9)
        failure = runner.run(connect_dir, connect_volume, 1)
    finally:
        runner.close()

    classic, classic_live = [], []
    settings = analytics_settings(classic_dir)
    for files, files_per_batch in zip(data.stages, FILES_PER_BATCH, strict=True):
        land(classic_volume, files)
        target = DatabricksDeployment(settings, volume_root=classic_volume).analytics_target(
            spark, max_files_per_trigger=files_per_batch
        )
        live = AnalyticsSummary()
        summary = run_analytics(spark, settings, target, summary=live)
        classic.append({"facts": summary_facts(summary), "rows_total": dict(summary.rows_total)})
        classic_live.append(summary_facts(live))
    return Runs(data, tables_dir, classic_dir, connect, classic, classic_live, failure)


@pytest.mark.parametrize("deployment", [LocalDeployment, DatabricksDeployment])
def test_the_batch_function_pickles_without_the_session(
    spark, tmp_path: Path, deployment: type[LocalDeployment | DatabricksDeployment]
) -> None:
    settings = analytics_settings(tmp_path)
    options = {"volume_root": tmp_path} if deployment is DatabricksDeployment else {}
    target = deployment(settings, **options).analytics_target(spark)
    processor = BatchProcessor(
        target.reader,
        target.sink,
        lambda: "crypto_assets:query",
        window_seconds=60,
        watermark_seconds=30,
        rules=alert_rules(settings),
    )
    # What Spark Connect's foreachBatch does with it: cloudpickle, to the server's Python worker.
    shipped = pickle.loads(cloudpickle.dumps(processor))
    assert shipped._app_id() == "crypto_assets:query"
    if deployment is LocalDeployment:  # delta-rs and DuckDB: no session to bind
        assert not hasattr(shipped.sink, "spark")
        assert shipped.sink.on(spark) is shipped.sink
        return
    assert target.sink.spark is spark  # the caller's sink keeps its session
    assert shipped.sink.spark is None  # the batch binds its own (TableSink.on)
    assert shipped.sink.on(spark).spark is spark


# The `runs` fixture, two Delta-Spark runs on each kind of Spark and a Spark Connect server's
# start, takes 5 to 10 minutes on 2 busy cores: it counts toward the first test that uses it.
RUNS_TIMEOUT_S = 1800


@pytest.mark.slow
@pytest.mark.timeout(RUNS_TIMEOUT_S)
def test_spark_connect_writes_the_classic_tables_and_the_reference(runs: Runs) -> None:
    assert all(result.get("connect") for result in runs.connect), runs.connect
    assert snapshot(runs.connect_dir) == snapshot(runs.classic_dir)
    assert_raw_holds_each_trade_once(runs.connect_dir, runs.landing.trades)
    # The held-back trade came past the watermark: in trades_raw, in no window.
    assert_matches_reference(runs.connect_dir, runs.landing.on_time)
    assert len(rows(runs.connect_dir, TRADES_QUARANTINE)) == len(BAD_LINES)


@pytest.mark.slow
@pytest.mark.timeout(RUNS_TIMEOUT_S)
def test_spark_connect_summaries_equal_the_classic_ones(runs: Runs) -> None:
    # On classic Spark, what the commits say is what the batches counted as they ran.
    assert [run["facts"] for run in runs.classic] == runs.classic_live
    assert runs.connect == [{"connect": True, **run} for run in runs.classic]
    first, second = (run["facts"] for run in runs.connect)
    assert (first["files_processed"], first["batches"], first["bad_rows"]) == (3, 1, 2)
    assert (second["files_processed"], second["batches"]) == (4, 2)
    assert (second["duplicates_skipped"], second["late_rows"]) == (DUPLICATES, 1)
    assert second["latest_lag_batch"] == 2  # the late trade's batch: its lag stored too
    for facts in (first, second):
        assert facts["lag_counts"]["raw"] == facts["rows_written"][TRADES_RAW]
    assert runs.connect[1]["rows_total"][TRADES_RAW] == len(runs.landing.trades)


@pytest.mark.slow
@pytest.mark.timeout(RUNS_TIMEOUT_S)
def test_a_batch_failing_on_spark_connect_is_one_line(runs: Runs) -> None:
    error = runs.failure["error"]
    assert "\n" not in error
    # Batches 0 to 2 committed in the two runs: the failed one is the next.
    assert re.fullmatch(r"analytics batch 3 failed: \w+: .+ \(the next run re-runs it\)", error)
    # Spark's error as the server's Python worker got it, naming the damaged file.
    assert "SparkException: [FAILED_READ_FILE" in error
    assert f"/_tables/{TRADES_RAW}/" in error
