"""Continuous mode: many small batches, yet Delta data files and checkpoint files stay bounded."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from crypto_assets.analytics.batch import AnalyticsSummary
from crypto_assets.analytics.maintenance import MaintenancePolicy
from crypto_assets.analytics.schema import ALL_TABLES, QUERY_NAME, TRADES_RAW
from crypto_assets_tests.analytics.expectations import assert_matches_reference
from crypto_assets_tests.analytics.landing_files import chunks, write_landing_file
from crypto_assets_tests.analytics.runs import run_local
from crypto_assets_tests.analytics.settings_for_tests import analytics_settings
from crypto_assets_tests.analytics.tables import rows, snapshot

pytestmark = pytest.mark.spark

BATCHES = 16
EVERY = 4
RETAIN = 4
STREAMING_CONF = {
    "spark.sql.streaming.minBatchesToRetain": str(RETAIN),
    "spark.sql.streaming.fileSource.log.compactInterval": str(RETAIN),
    "spark.sql.streaming.fileSource.log.cleanupDelay": "0",
}


@pytest.fixture
def short_retention(spark) -> Iterator[None]:
    """Checkpoint retention small enough to see it work within a short test."""
    previous = {key: spark.conf.get(key) for key in STREAMING_CONF}
    for key, value in STREAMING_CONF.items():
        spark.conf.set(key, value)
    yield
    for key, value in previous.items():
        spark.conf.set(key, value)


def parquet_files(table_dir: Path) -> int:
    return sum(1 for _ in table_dir.rglob("*.parquet"))


def wait_for(condition, what: str, thread: threading.Thread, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert thread.is_alive(), f"the continuous query stopped while waiting for {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_continuous_batches_keep_files_bounded_and_tables_right(
    spark, short_retention, tmp_path: Path, landing_records, full_run
) -> None:
    landing = tmp_path / "landing" / "trades"
    landing.mkdir(parents=True)
    checkpoint = tmp_path / "checkpoints" / QUERY_NAME
    stop = threading.Event()
    result: dict[str, AnalyticsSummary] = {}

    def run() -> None:
        result["summary"] = run_local(
            spark,
            analytics_settings(tmp_path),
            mode="continuous",
            trigger_seconds=0.2,
            stop_event=stop,
            maintenance=MaintenancePolicy(every_batches=EVERY, retention_hours=0),
        )

    thread = threading.Thread(target=run, name="continuous-analytics")
    thread.start()
    peak = dict.fromkeys(ALL_TABLES, 0)
    checkpoint_peak = 0
    try:
        for batch, piece in enumerate(chunks(landing_records, BATCHES)):
            write_landing_file(landing, piece, batch)
            done = checkpoint / "commits" / str(batch)
            wait_for(done.exists, f"batch {batch} to commit", thread)
            for name in ALL_TABLES:
                peak[name] = max(peak[name], parquet_files(tmp_path / "delta" / name))
            checkpoint_files = sum(1 for p in checkpoint.rglob("*") if p.is_file())
            checkpoint_peak = max(checkpoint_peak, checkpoint_files)
    finally:
        stop.set()
        thread.join(timeout=120)
    assert not thread.is_alive()
    summary = result["summary"]
    assert summary.batches == BATCHES

    # Every batch rewrites files of each table; compaction + vacuum every EVERY batches caps
    # what accumulates, so the peak does not grow with the number of batches.
    assert peak[TRADES_RAW] <= EVERY + 2, peak
    assert max(peak.values()) < BATCHES, peak
    for kind in ("offsets", "commits"):
        logs = [p for p in (checkpoint / kind).iterdir() if not p.name.startswith(".")]
        assert len(logs) <= RETAIN + 2, logs
    assert checkpoint_peak < 3 * BATCHES, checkpoint_peak

    assert len(rows(tmp_path, TRADES_RAW)) == len(landing_records)
    assert_matches_reference(tmp_path, landing_records)
    assert snapshot(tmp_path) == snapshot(full_run.data_dir)
