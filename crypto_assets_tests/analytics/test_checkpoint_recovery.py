"""A corrupted checkpoint: one actionable line, and the README's recovery loses and doubles nothing.

Real Spark (the session fixture), real landing files of the real recording.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from crypto_assets.analytics.pipeline import AnalyticsError, checkpoint_advice
from crypto_assets.analytics.schema import QUERY_NAME
from crypto_assets_tests.analytics.expectations import (
    assert_matches_reference,
    assert_raw_holds_each_trade_once,
)
from crypto_assets_tests.analytics.landing_files import write_landing_files
from crypto_assets_tests.analytics.runs import run_local
from crypto_assets_tests.analytics.settings_for_tests import analytics_settings
from crypto_assets_tests.analytics.tables import snapshot
from crypto_assets_tests.landing_folder import landing_of

pytestmark = pytest.mark.spark


def test_a_damaged_checkpoint_is_named_and_moving_it_aside_recovers_exactly_once(
    spark, landing_records: list[dict], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    settings = analytics_settings(data_dir).model_copy(update={"landing_retention_hours": None})
    records = landing_records[:4000]
    write_landing_files(landing_of(settings), records[:3000], 3)
    run_local(spark, settings, mode="once", max_files_per_trigger=1)
    before = snapshot(data_dir)
    checkpoint = data_dir / "checkpoints" / QUERY_NAME
    latest = max((checkpoint / "offsets").glob("[0-9]*"), key=lambda path: int(path.name))
    latest.write_text('v1\n{"batchWatermarkMs":0,"batchTimestampMs')  # cut mid-write
    write_landing_files(landing_of(settings), records[3000:], 1, first_sequence=3)

    with pytest.raises(AnalyticsError) as failure:
        run_local(spark, settings, mode="once")
    message = str(failure.value)
    assert "\n" not in message
    assert f"checkpoint {checkpoint} cannot be read" in message
    assert "move that folder aside" in message
    assert snapshot(data_dir) == before  # the failed start changed no table

    # The runbook: move the checkpoint aside; the next run re-reads every landing file.
    shutil.move(checkpoint, checkpoint.with_name(f"{QUERY_NAME}.broken"))
    summary = run_local(spark, settings, mode="once")
    assert summary.files_processed == 4
    assert summary.duplicates_skipped == 3000
    assert_raw_holds_each_trade_once(data_dir, records)
    assert_matches_reference(data_dir, records)


class JavaError(Exception):
    """The two attributes PySpark's CapturedException keeps: the Java trace and the cause."""

    def __init__(self, trace: str, cause: Exception | None = None) -> None:
        super().__init__("boom")
        self._stackTrace = trace
        self._cause = cause


def test_checkpoint_advice_only_when_a_checkpoint_log_failed(tmp_path: Path) -> None:
    reading = "at org.apache.spark.sql.execution.streaming.OffsetSeqLog.deserialize(...)"
    # The log reader is in the cause's trace, as with a JSON error under OffsetSeqLog.
    nested = JavaError("at StreamExecution.runStream", JavaError(reading))
    assert "cannot be read (damaged?)" in checkpoint_advice(nested, tmp_path)
    assert checkpoint_advice(JavaError("at FileScanRDD.compute"), tmp_path) == ""
    assert checkpoint_advice(ValueError("plain Python"), tmp_path) == ""
