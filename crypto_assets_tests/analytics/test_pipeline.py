"""The streaming pipeline against a plain-Python reference, and its exactly-once invariances."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crypto_assets.analytics.batch import AnalyticsSummary
from crypto_assets.analytics.lag import read_recent_batch_lags
from crypto_assets.analytics.pipeline import AnalyticsError, ProgressPoller
from crypto_assets.analytics.schema import (
    ALL_TABLES,
    PRICE_ALERTS,
    QUERY_NAME,
    TRADES_ANALYTICS,
    TRADES_RAW,
)
from crypto_assets_tests.analytics import reference
from crypto_assets_tests.analytics.expectations import (
    assert_matches_reference,
    assert_raw_holds_each_trade_once,
)
from crypto_assets_tests.analytics.landing_files import (
    chunks,
    write_landing_file,
    write_landing_files,
)
from crypto_assets_tests.analytics.runs import run_counted, run_local
from crypto_assets_tests.analytics.settings_for_tests import (
    WINDOW_MS,
    analytics_settings,
    rules_env,
)
from crypto_assets_tests.analytics.tables import rows, snapshot

pytestmark = pytest.mark.spark


def run_once(spark, data_dir: Path, **kwargs):
    return run_local(spark, analytics_settings(data_dir), **kwargs)


def run_checked(spark, data_dir: Path):
    """A run whose summary from its commits is checked against the one counted as it ran."""
    return run_counted(spark, analytics_settings(data_dir))


def test_full_recording_matches_plain_python_reference(full_run, landing_records) -> None:
    alerts = assert_matches_reference(full_run.data_dir, landing_records)
    assert {kind for kind, _, _ in alerts} == {"PRICE_MOVE", "VOLUME_SPIKE"}
    assert_raw_holds_each_trade_once(full_run.data_dir, landing_records)
    summary = full_run.summary
    assert summary.files_processed == 12
    assert summary.rows_written[TRADES_RAW] == summary.rows_total[TRADES_RAW] == 34_419
    assert summary.rows_total[TRADES_ANALYTICS] == len(
        reference.windows(landing_records, WINDOW_MS)
    )
    assert (summary.late_rows, summary.bad_rows, summary.duplicates_skipped) == (0, 0, 0)
    assert "trades_raw +34419 new (34419 in the table)" in summary.summary_line()
    # Fresh tables: each window inserted once; later batches' updates of it are revisions.
    assert summary.rows_written[TRADES_ANALYTICS] == summary.rows_total[TRADES_ANALYTICS]
    # Every batch's lags went into a price_alerts commit, including those that changed no alert.
    stored = read_recent_batch_lags(full_run.data_dir / "delta" / "price_alerts", limit=1_000)
    assert len(stored) == summary.batches
    assert sum(lag.raw.count for lag in stored) == 34_419


# 9 runs of about 70 s of trades each: many one-minute windows are written by two runs.
@pytest.mark.parametrize("runs", [3, 9])
def test_split_into_runs_gives_identical_tables(
    spark, tmp_path: Path, landing_records, full_run, runs: int
) -> None:
    landing = tmp_path / "landing" / "trades"
    landing.mkdir(parents=True)
    files_per_run = 12 // runs or 1
    for index, piece in enumerate(chunks(landing_records, runs)):
        write_landing_files(landing, piece, files_per_run, first_sequence=index * files_per_run)
        summary = run_once(spark, tmp_path)
        assert summary.files_processed == files_per_run
    assert snapshot(tmp_path) == snapshot(full_run.data_dir)
    assert summary.rows_total[TRADES_RAW] == len(landing_records)


def test_the_summary_says_how_many_windows_are_new_and_how_many_revised(
    spark, tmp_path: Path, landing_records
) -> None:
    # The second run's first trades fall in windows the first run wrote: those are revised.
    landing = tmp_path / "landing" / "trades"
    first, second = landing_records[:3000], landing_records[3000:6000]
    write_landing_files(landing, first, 1)
    run_once(spark, tmp_path)
    write_landing_files(landing, second, 1, first_sequence=1)
    summary = run_checked(spark, tmp_path)  # one file: one batch, each window written once
    before = reference.windows(first, WINDOW_MS)
    after = reference.windows(first + second, WINDOW_MS)
    touched = {(t["symbol"], t["trade_time"] // WINDOW_MS * WINDOW_MS) for t in second}
    new, revised = len(after) - len(before), len(touched & before.keys())
    assert revised >= 2  # each symbol's window that spans the two files
    line = summary.summary_line()
    assert f"trades_analytics +{new} new, {revised} revised ({len(after)} in the table)" in line
    assert f"trades_raw +{len(second)} new ({len(first) + len(second)} in the table)" in line
    assert (summary.rows_written[TRADES_ANALYTICS], summary.rows_revised[TRADES_ANALYTICS]) == (
        new,
        revised,
    )


class InjectedCrashError(RuntimeError):
    """Raised by the step hook to simulate a process dying mid-batch."""


def test_crash_after_trades_raw_commit_then_restart_gives_identical_tables(
    spark, tmp_path: Path, landing_records, full_run
) -> None:
    landing = tmp_path / "landing" / "trades"
    first, second = chunks(landing_records, 2)
    write_landing_files(landing, first, 6)
    run_once(spark, tmp_path)
    write_landing_files(landing, second, 6, first_sequence=6)
    windows_before = len(rows(tmp_path, TRADES_ANALYTICS))

    def crash_after_raw(table: str, batch_id: int) -> None:
        if table == TRADES_RAW:
            raise InjectedCrashError(f"killed after the {table} commit of batch {batch_id}")

    with pytest.raises(
        AnalyticsError,
        match=r"analytics batch \d+ failed: InjectedCrashError: killed after the trades_raw",
    ):
        run_once(spark, tmp_path, on_step=crash_after_raw)
    # The raw commit landed, the windows did not, and Spark did not commit the batch.
    assert len(rows(tmp_path, TRADES_RAW)) == len(landing_records)
    assert len(rows(tmp_path, TRADES_ANALYTICS)) == windows_before

    restarted = run_checked(spark, tmp_path)
    assert restarted.files_processed == 6  # the failed batch is replayed as a whole
    assert restarted.rows_written[TRADES_RAW] == 0  # its raw commit is recognised and skipped
    assert snapshot(tmp_path) == snapshot(full_run.data_dir)


def test_a_batch_replayed_after_all_its_writes_is_counted_again(
    spark, tmp_path: Path, landing_records
) -> None:
    write_landing_files(tmp_path / "landing" / "trades", landing_records[:3000], 2)

    def crash_after_alerts(table: str, batch_id: int) -> None:
        if table == PRICE_ALERTS:
            raise InjectedCrashError(f"killed after the {table} commit of batch {batch_id}")

    with pytest.raises(AnalyticsError, match=r"analytics batch 0 failed: InjectedCrashError"):
        run_once(spark, tmp_path, on_step=crash_after_alerts)
    tables = snapshot(tmp_path)

    # Every write of the batch is there: the replay makes only the commit of its record.
    restarted = run_checked(spark, tmp_path)
    assert (restarted.files_processed, restarted.batches) == (2, 1)
    assert restarted.rows_written == dict.fromkeys(ALL_TABLES, 0)
    assert restarted.lag.latest is None  # the lags were the first attempt's
    assert snapshot(tmp_path) == tables


def test_duplicate_landing_files_change_nothing(
    spark, tmp_path: Path, landing_records, full_run
) -> None:
    landing = tmp_path / "landing" / "trades"
    write_landing_files(landing, landing_records, 12)
    run_once(spark, tmp_path)
    again = chunks(landing_records, 12)
    write_landing_file(landing, again[0], 100)  # old trades, far behind the watermark
    write_landing_file(landing, again[-1], 101)  # recent trades, windows still open
    write_landing_file(landing, again[-1][:50] + again[-1][:50], 102)  # duplicated in the file too
    summary = run_checked(spark, tmp_path)
    assert summary.duplicates_skipped == len(again[0]) + len(again[-1]) + 100
    assert summary.rows_written[TRADES_RAW] == 0
    assert summary.late_rows == 0  # already-known trades are not late arrivals
    assert snapshot(tmp_path) == snapshot(full_run.data_dir)


def test_late_trades_revise_open_windows_and_are_counted_past_the_watermark(
    spark, tmp_path: Path, landing_records
) -> None:
    landing = tmp_path / "landing" / "trades"
    btc = [r for r in landing_records if r["symbol"] == "BTCUSDT"]
    earliest = min(btc, key=lambda r: r["trade_time"])
    # Stage 1 ends 50 s into a busy BTC minute; its trades after the first 1000 come late.
    busy_start = 1723161660000
    cut = next(i for i, r in enumerate(landing_records) if r["trade_time"] >= busy_start + 50_000)
    held_back = [
        r
        for r in landing_records[:cut]
        if r["symbol"] == "BTCUSDT" and r["trade_time"] // WINDOW_MS * WINDOW_MS == busy_start
    ][1000:]
    held_ids = {r["trade_id"] for r in held_back} | {earliest["trade_id"]}
    stage1 = [
        r
        for r in landing_records[:cut]
        if r["symbol"] != "BTCUSDT" or r["trade_id"] not in held_ids
    ]

    write_landing_files(landing, stage1, 4)
    run_once(spark, tmp_path)
    alerts_stage1 = assert_matches_reference(tmp_path, stage1)

    # Within the watermark: the busy window is revised, and so are its alerts.
    write_landing_file(landing, held_back, 10)
    revised = run_checked(spark, tmp_path)
    assert revised.late_rows == 0
    alerts_stage2 = assert_matches_reference(tmp_path, stage1 + held_back)
    assert alerts_stage2 != alerts_stage1

    rest = landing_records[cut:]
    write_landing_files(landing, rest, 4, first_sequence=20)
    run_once(spark, tmp_path)

    # Past the watermark: kept in trades_raw, counted, and the closed window is not revised.
    write_landing_file(landing, [earliest], 30)
    late = run_checked(spark, tmp_path)
    assert late.late_rows == 1
    assert late.rows_written[TRADES_RAW] == 1
    # No window took the late trade, so no alerts commit: the batch's own commit has its lag.
    assert (late.batches, late.lag.latest.raw.count) == (1, 1)
    stored = read_recent_batch_lags(tmp_path / "delta" / "price_alerts", limit=1)
    assert stored[0].batch_id == late.lag.latest.batch_id
    assert_raw_holds_each_trade_once(tmp_path, landing_records)
    without_earliest = [r for r in landing_records if r is not earliest]
    assert_matches_reference(tmp_path, without_earliest)


def test_missing_landing_directory_is_one_line_error(spark, tmp_path: Path) -> None:
    with pytest.raises(AnalyticsError, match=r"no landing directory .*landing/trades"):
        run_once(spark, tmp_path)


def test_process_killed_mid_batch_then_restarted_gives_identical_tables(
    spark, tmp_path: Path, landing_records, full_run
) -> None:
    write_landing_files(tmp_path / "landing" / "trades", landing_records, 12)
    env = {**os.environ, **rules_env()}
    command = [sys.executable, "-m", "crypto_assets.cli", "analytics", "--once"]
    process = subprocess.Popen(
        [*command, "--data-dir", str(tmp_path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    raw_commit = tmp_path / "delta" / TRADES_RAW / "_delta_log" / f"{1:020d}.json"
    deadline = time.monotonic() + 240
    try:
        while not raw_commit.exists():
            assert process.poll() is None, "the run ended before its trades_raw commit"
            assert time.monotonic() < deadline, "no trades_raw commit within 240 s"
            time.sleep(0.01)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the JVM child dies with it
        process.wait(timeout=60)
    checkpoint = tmp_path / "checkpoints" / QUERY_NAME
    assert (checkpoint / "offsets" / "0").exists()
    assert not (checkpoint / "commits" / "0").exists(), "killed too late: batch 0 had committed"

    restarted = run_once(spark, tmp_path)
    assert restarted.files_processed == 12
    assert restarted.rows_written[TRADES_RAW] == 0
    assert snapshot(tmp_path) == snapshot(full_run.data_dir)


def _fresh_trades(first_ms: int, count: int) -> list[dict]:
    """`count` BTCUSDT trades 10 ms apart from `first_ms`, the price rising 1 % (a PRICE_MOVE)."""
    trades = []
    for index in range(count):
        price = 100.0 if index < count - 1 else 101.0
        trade_time = first_ms + 10 * index
        trades.append(
            {
                "event_type": "trade",
                "event_time": trade_time,
                "symbol": "BTCUSDT",
                "trade_id": 1_000 + index,
                "price": price,
                "quantity": 0.5,
                "trade_value_usdt": price * 0.5,
                "trade_time": trade_time,
                "is_buyer_maker": index % 2 == 0,
                "ingestion_time": trade_time + 5,
            }
        )
    return trades


def test_batch_lags_follow_the_trade_times_and_are_stored_with_the_alerts_commit(
    spark, tmp_path: Path
) -> None:
    first_ms = time.time_ns() // 1_000_000 - 20_000  # trades 20 s old
    if first_ms % WINDOW_MS > WINDOW_MS - 1_000:  # keep the ten trades in one window
        first_ms -= 1_000
    trades = _fresh_trades(first_ms, 10)
    times = [t["trade_time"] for t in trades]
    write_landing_file(tmp_path / "landing" / "trades", trades, 0)
    before_ms = time.time_ns() // 1_000_000
    summary = run_once(spark, tmp_path)
    after_ms = time.time_ns() // 1_000_000

    latest = summary.lag.latest
    assert latest is not None
    assert latest.batch_id == 0
    # Every lag is a wall-clock moment inside the run minus the trade's own time.
    assert (before_ms - times[0]) / 1000 <= latest.raw.max_s <= (after_ms - times[0]) / 1000
    median = sorted(times)[4] / 2 + sorted(times)[5] / 2
    assert (before_ms - median) / 1000 <= latest.raw.p50_s <= (after_ms - median) / 1000
    assert latest.raw.count == latest.window.count == 10
    assert latest.window.max_s >= latest.raw.max_s  # its commit comes later
    # One PRICE_MOVE, new in this batch: detected_time minus the window's earliest trade time.
    assert latest.alert.count == 1
    assert (before_ms - times[0]) / 1000 <= latest.alert.max_s <= (after_ms - times[0]) / 1000
    run = summary.lag.stats()
    assert run["raw"].count == 10
    assert run["raw"].max_s == pytest.approx(latest.raw.max_s, rel=0.01)
    assert "p95 lag trade->raw" in summary.summary_line()
    assert summary.progress is not None
    assert summary.progress.batch_id == 0

    stored = read_recent_batch_lags(tmp_path / "delta" / "price_alerts")
    assert [lag.batch_id for lag in stored] == [0]
    assert stored[0].raw == pytest.approx(latest.raw, abs=0.001)
    assert stored[0].alert == pytest.approx(latest.alert, abs=0.001)

    # The same trades again under another name: nothing inserted, so no lag, and none stored.
    write_landing_file(tmp_path / "landing" / "trades", trades, 1)
    again = run_once(spark, tmp_path)
    assert again.duplicates_skipped == 10
    assert again.lag.latest is None
    assert [
        lag.batch_id for lag in read_recent_batch_lags(tmp_path / "delta" / "price_alerts")
    ] == [0]


class ProgressReadsCounted:
    """A real streaming query, counting how often its progress is read."""

    def __init__(self, query) -> None:
        self.query = query
        self.reads = 0

    @property
    def lastProgress(self):  # StreamingQuery's name
        self.reads += 1
        return self.query.lastProgress


def test_a_continuous_run_reads_sparks_progress_after_its_batches_only(spark, tmp_path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    summary = AnalyticsSummary()

    def count_batch(batch_df, batch_id: int) -> None:  # as the live summary counts a batch
        summary.batches += 1

    query = (
        spark.readStream.format("text")
        .load(str(folder))
        .writeStream.foreachBatch(count_batch)
        .option("checkpointLocation", str(tmp_path / "checkpoint"))
        .trigger(processingTime="0.2 seconds")
        .start()
    )
    counted = ProgressReadsCounted(query)
    poller = ProgressPoller(counted, summary)
    try:
        for batch_id in range(2):
            (folder / f"{batch_id}.txt").write_text("a line\n")
            deadline = time.monotonic() + 60
            while summary.progress is None or summary.progress.batch_id < batch_id:
                assert time.monotonic() < deadline, f"no progress of batch {batch_id}"
                poller.poll()
                time.sleep(0.1)
        after_batches = counted.reads
        for _ in range(20):  # two idle seconds, ten triggers without data
            poller.poll()
            time.sleep(0.1)
    finally:
        query.stop()
    assert summary.batches == 2
    assert summary.progress.batch_id == 1
    assert after_batches >= 2  # read once a batch at least
    assert counted.reads == after_batches  # and never while no batch completes
