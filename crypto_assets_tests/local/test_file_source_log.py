"""Which landing files the query has processed, read from the checkpoint a real query wrote."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from crypto_assets.analytics.schema import QUERY_NAME
from crypto_assets.local.file_source_log import files_of_running_batch, newest_committed_file_ms
from crypto_assets.local.lakehouse import LocalLakehouse
from crypto_assets.local.layout import LocalLayout
from crypto_assets_tests.landing_folder import landing_of
from crypto_assets_tests.local.file_source_checkpoint import (
    set_mtime,
    source_entry,
    write_checkpoint,
)
from crypto_assets_tests.orchestration.landing_for_tests import landing_records, write_landing_file


def _land(settings, records: list[dict], count: int, first: int = 0) -> list[Path]:
    """`count` landing files of 10 trades each, modified one second apart, oldest first."""
    start = time.time() - 1000
    paths = []
    for index in range(first, first + count):
        lines = [json.dumps(r) for r in records[index * 10 : (index + 1) * 10]]
        name = f"trades_20240808_2354{index:02d}_{index:06x}.json"
        path = write_landing_file(landing_of(settings), name, lines)
        set_mtime(path, start + index)
        paths.append(path)
    return paths


def _ms(path: Path) -> int:
    return path.stat().st_mtime_ns // 1_000_000


def test_no_checkpoint_means_nothing_processed(settings, tmp_path):
    lakehouse = LocalLakehouse(LocalLayout.from_settings(settings))
    assert newest_committed_file_ms(tmp_path / "none") is None
    assert files_of_running_batch(tmp_path / "none") is None
    files = _land(settings, [{"n": n} for n in range(20)], 2)
    assert [f.name for f in lakehouse.unprocessed(lakehouse.landing_files())] == [
        p.name for p in files
    ]


def test_a_planned_batch_is_not_processed_until_it_commits(settings):
    paths = _land(settings, [{"n": n} for n in range(30)], 3)
    checkpoint = LocalLayout.from_settings(settings).checkpoint_dir(QUERY_NAME)
    write_checkpoint(checkpoint, [paths[:1], paths[1:2]], committed=1)
    assert newest_committed_file_ms(checkpoint) == _ms(paths[0])
    assert files_of_running_batch(checkpoint) == [paths[1].name]
    lakehouse = LocalLakehouse(LocalLayout.from_settings(settings))
    unprocessed = lakehouse.unprocessed(lakehouse.landing_files())
    assert [f.name for f in unprocessed] == [paths[1].name, paths[2].name]


@pytest.mark.spark
def test_the_files_of_the_latest_committed_batch_end_what_is_processed(spark, settings, recording):
    from crypto_assets_tests.analytics.runs import run_local  # noqa: PLC0415 - needs pyspark

    records = landing_records(recording, 200)
    # Ten batches of one file: Spark writes log batch 9 as `9.compact`, holding every entry.
    paths = _land(settings, records, 10)
    first_entry = source_entry(paths[0], 0)  # before Spark archives the file
    run_local(spark, settings, mode="once", max_files_per_trigger=1)
    checkpoint = LocalLayout.from_settings(settings).checkpoint_dir(QUERY_NAME)
    assert (checkpoint / "sources" / "0" / "9.compact").is_file()
    assert newest_committed_file_ms(checkpoint) == _ms(paths[-1])
    assert files_of_running_batch(checkpoint) == [paths[-1].name]
    # The test-side checkpoint (`write_checkpoint`) writes its entries as Spark does.
    logged = (checkpoint / "sources" / "0" / "0").read_text().splitlines()
    assert logged[0] == "v1"
    assert json.loads(logged[1]) == first_entry

    lakehouse = LocalLakehouse(LocalLayout.from_settings(settings))
    # The last batch's file stays in the landing folder (Spark archives it with the next batch).
    assert [f.name for f in lakehouse.landing_files()] == [paths[-1].name]
    assert lakehouse.unprocessed(lakehouse.landing_files()) == []
    later = _land(settings, records, 2, first=10)
    for path in later:
        set_mtime(path, time.time())
    assert [f.name for f in lakehouse.unprocessed(lakehouse.landing_files())] == [
        p.name for p in later
    ]
