"""Landing files deleted or truncated by hand before the analytics read them: named, no crash.

Real Spark (the session fixture), real landing files of the real recording, the local reader's
real stream and checkpoint.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path

import pytest

from crypto_assets.analytics.schema import TRADES_QUARANTINE
from crypto_assets.local.landing_reader import LocalLandingReader
from crypto_assets_tests.analytics.expectations import assert_raw_holds_each_trade_once
from crypto_assets_tests.analytics.landing_files import chunks, write_landing_files
from crypto_assets_tests.analytics.runs import run_local
from crypto_assets_tests.analytics.settings_for_tests import analytics_settings
from crypto_assets_tests.analytics.tables import rows

pytestmark = pytest.mark.spark

READER_LOG = "crypto_assets.local.landing_reader"
GONE = "was listed for this batch but is gone"


def warnings(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == READER_LOG and text in r.getMessage()
    ]


def run_stream(spark, reader: LocalLandingReader, checkpoint: Path, batch) -> None:
    """One availableNow run of `reader`'s stream with `batch` as the foreachBatch function."""
    query = (
        reader.stream(spark)
        .writeStream.foreachBatch(batch)
        .option("checkpointLocation", str(checkpoint))
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()


def test_a_file_deleted_after_the_stream_listed_it_is_named_and_the_batch_goes_on(
    spark, landing_records: list[dict], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=READER_LOG)
    landing = tmp_path / "landing" / "trades"
    records = landing_records[:3000]
    files = write_landing_files(landing, records, 3)
    checkpoint = tmp_path / "checkpoints" / "q"
    reader = LocalLandingReader(landing, checkpoint_dir=checkpoint)
    decoded: dict[int, tuple[list[int], int]] = {}

    def batch(batch_df, batch_id: int) -> None:
        if batch_id == 0:
            files[1].unlink()  # listed by the stream already; read only now, in the batch
        result, count = reader.decode(batch_df, dt.datetime.now(dt.UTC))
        decoded[batch_id] = (result.trades.column("trade_id").to_pylist(), count)

    run_stream(spark, reader, checkpoint, batch)
    first, _second, third = chunks(records, 3)
    ids, count = decoded[0]
    assert count == 2
    assert sorted(ids) == sorted(r["trade_id"] for r in first + third)
    (gone,) = warnings(caplog, GONE)
    assert files[1].name in gone
    assert "not in trades_raw" in gone
    assert "producer_state.json" in gone

    # The query is not wedged, and a batch whose files are all there names none.
    caplog.clear()
    later = write_landing_files(landing, landing_records[3000:3500], 1, first_sequence=0x10)
    run_stream(spark, reader, checkpoint, batch)
    ids, count = decoded[1]
    assert count == 1
    assert sorted(ids) == sorted(r["trade_id"] for r in landing_records[3000:3500])
    assert later[0].exists()
    assert warnings(caplog, GONE) == []


def test_a_file_truncated_by_hand_is_named_and_its_cut_line_quarantined(
    spark, landing_records: list[dict], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=READER_LOG)
    records = landing_records[:3000]
    files = write_landing_files(tmp_path / "landing" / "trades", records, 3)
    pieces = chunks(records, 3)
    cut = files[1]
    content = cut.read_bytes()
    os.truncate(cut, len(content) - 37)  # inside its last line (lines are ~250 bytes)
    partial = content[: len(content) - 37].rsplit(b"\n", 1)[1].decode()

    summary = run_local(spark, analytics_settings(tmp_path), max_files_per_trigger=1)

    assert summary.files_processed == 3
    kept = pieces[0] + pieces[1][:-1] + pieces[2]
    assert_raw_holds_each_trade_once(tmp_path, kept)
    (quarantined,) = rows(tmp_path, TRADES_QUARANTINE)
    assert quarantined["source_file"] == cut.name
    assert quarantined["raw_line"] == partial
    assert "not valid JSON" in quarantined["reason"]
    (mid_line,) = warnings(caplog, "ends mid-line")
    assert cut.name in mid_line
    # Three batches of one file each, all there: none is reported gone.
    assert warnings(caplog, GONE) == []


@pytest.mark.parametrize("with_checkpoint_log", [True, False])
def test_a_file_whose_name_a_uri_escapes_is_read(
    spark, landing_records: list[dict], tmp_path: Path, with_checkpoint_log: bool
) -> None:
    # Spark names a file by its URI (`trades_a%20b.json`); the batch reads it by its name.
    landing = tmp_path / "landing" / "trades"
    records = landing_records[:1000]
    (written,) = write_landing_files(landing, records, 1)
    renamed = written.rename(landing / "trades_copied by hand 100%.json")
    checkpoint = tmp_path / "checkpoints" / "q"
    reader = LocalLandingReader(landing, checkpoint_dir=checkpoint if with_checkpoint_log else None)
    decoded = []

    def batch(batch_df, batch_id: int) -> None:
        decoded.append(reader.decode(batch_df, dt.datetime.now(dt.UTC)))

    run_stream(spark, reader, checkpoint, batch)
    ((result, count),) = decoded
    assert count == 1
    assert sorted(result.trades.column("trade_id").to_pylist()) == sorted(
        r["trade_id"] for r in records
    )
    assert set(result.trades.column("source_file").to_pylist()) == {renamed.name}
