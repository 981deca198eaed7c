"""The streaming pipeline against a plain-Python reference, and its exactly-once invariances."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crypto_assets.analytics.pipeline import AnalyticsError, run_analytics
from crypto_assets.analytics.schema import QUERY_NAME, TRADES_ANALYTICS, TRADES_RAW
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
from crypto_assets_tests.analytics.settings_for_tests import (
    WINDOW_MS,
    analytics_settings,
    rules_env,
)
from crypto_assets_tests.analytics.tables import rows, snapshot

pytestmark = pytest.mark.spark


def run_once(spark, data_dir: Path, **kwargs):
    return run_analytics(spark, analytics_settings(data_dir), **kwargs)


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
    assert "trades_raw +34419" in summary.summary_line()


@pytest.mark.parametrize("runs", [3, 17])
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

    restarted = run_once(spark, tmp_path)
    assert restarted.files_processed == 6  # the failed batch is replayed as a whole
    assert restarted.rows_written[TRADES_RAW] == 0  # its raw commit is recognised and skipped
    assert snapshot(tmp_path) == snapshot(full_run.data_dir)


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
    summary = run_once(spark, tmp_path)
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
    revised = run_once(spark, tmp_path)
    assert revised.late_rows == 0
    alerts_stage2 = assert_matches_reference(tmp_path, stage1 + held_back)
    assert alerts_stage2 != alerts_stage1

    rest = landing_records[cut:]
    write_landing_files(landing, rest, 4, first_sequence=20)
    run_once(spark, tmp_path)

    # Past the watermark: kept in trades_raw, counted, and the closed window is not revised.
    write_landing_file(landing, [earliest], 30)
    late = run_once(spark, tmp_path)
    assert late.late_rows == 1
    assert late.rows_written[TRADES_RAW] == 1
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
