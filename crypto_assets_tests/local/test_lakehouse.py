"""The landing folder's totals for landing_trades: complete files and their trade lines."""

from __future__ import annotations

import json

import pytest

from crypto_assets.analytics.lakehouse import LandingTotals
from crypto_assets.analytics.landing_retention import LandingRetention, archive_dir_for
from crypto_assets.local.lakehouse import LandingCounter
from crypto_assets_tests.landing_folder import landing_of
from crypto_assets_tests.orchestration.landing_for_tests import (
    landing_records,
    write_landing_file,
)


def test_counts_complete_files_and_their_non_blank_lines(tmp_path):
    landing = tmp_path / "landing" / "trades"
    counter = LandingCounter(landing)
    assert counter.totals() == LandingTotals(files=0, rows=0)  # no folder yet
    write_landing_file(landing, "trades_20240809_000000_aaaaaa.json", ['{"a": 1}', '{"a": 2}'])
    # Blank lines and a last line without its newline: 3 rows.
    (landing / "trades_20240809_000005_bbbbbb.json").write_bytes(
        b'{"a": 3}\r\n\n{"a": 4}\n{"a": 5}'
    )
    # Still being written (a dot name) and not a landing file at all: not counted.
    (landing / ".trades_20240809_000010_cccccc.json").write_text('{"a": 6}\n')
    (landing / "notes.txt").write_text("x\n")
    assert counter.totals() == LandingTotals(files=2, rows=5)
    write_landing_file(landing, "trades_20240809_000010_cccccc.json", ['{"a": 6}'])
    assert counter.totals() == LandingTotals(files=3, rows=6)
    (landing / "trades_20240809_000000_aaaaaa.json").unlink()
    assert counter.totals() == LandingTotals(files=2, rows=4)


def test_archived_files_count_until_the_retention_deletes_them(tmp_path):
    landing = tmp_path / "landing" / "trades"
    counter = LandingCounter(landing)
    first = write_landing_file(landing, "trades_20240809_000000_aaaaaa.json", ['{"a": 1}'] * 4)
    write_landing_file(landing, "trades_20240809_000005_bbbbbb.json", ['{"a": 2}'] * 3)
    assert counter.totals() == LandingTotals(files=2, rows=7, archived_files=0)
    # Processed: moved beneath the archive, under its original path, as Spark's cleanSource does.
    nested = archive_dir_for(landing) / str(landing).lstrip("/")
    nested.mkdir(parents=True)
    first.rename(nested / first.name)
    assert counter.totals() == LandingTotals(files=2, rows=7, archived_files=1)
    # Aged out of the archive: no longer held.
    assert LandingRetention.for_landing(landing, 0).expire().files == 1
    assert counter.totals() == LandingTotals(files=1, rows=3, archived_files=0)


@pytest.mark.spark
def test_the_row_count_keeps_the_trades_the_analytics_archived(spark, settings, recording):
    from crypto_assets_tests.analytics.runs import run_local  # noqa: PLC0415 - needs pyspark

    records = landing_records(recording, 3000)
    for index in range(3):
        lines = [json.dumps(r) for r in records[index * 1000 : (index + 1) * 1000]]
        write_landing_file(
            landing_of(settings), f"trades_20240808_2354{index:02d}_{index:06x}.json", lines
        )
    counter = LandingCounter(landing_of(settings))
    assert counter.totals() == LandingTotals(files=3, rows=3000, archived_files=0)
    # One file a batch: Spark archives the first two when it plans the batch after each.
    run_local(spark, settings, mode="once", max_files_per_trigger=1)
    assert len(list(landing_of(settings).glob("trades_*.json"))) == 1
    assert counter.totals() == LandingTotals(files=3, rows=3000, archived_files=2)
    assert LandingCounter(landing_of(settings)).totals() == counter.totals()  # a fresh count too
