"""Retention of processed landing files: the archive ages out, nothing else is touched."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from crypto_assets.analytics.landing_retention import (
    ARCHIVE_FOLDER,
    LandingRetention,
    archive_dir_for,
)
from crypto_assets_tests.analytics.expectations import assert_raw_holds_each_trade_once
from crypto_assets_tests.analytics.landing_files import write_landing_files
from crypto_assets_tests.analytics.runs import run_local
from crypto_assets_tests.analytics.settings_for_tests import analytics_settings
from crypto_assets_tests.landing_folder import landing_of


def _file(path: Path, size: int, age_hours: float, now: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    moment = now - age_hours * 3600
    os.utime(path, (moment, moment))
    return path


def test_archive_is_beside_the_landing_folder(tmp_path: Path) -> None:
    landing = tmp_path / "data" / "landing" / "trades"
    assert archive_dir_for(landing) == tmp_path / "data" / "landing" / ARCHIVE_FOLDER
    options = LandingRetention.for_landing(landing, 24).source_options()
    assert options == {
        "cleanSource": "archive",
        "sourceArchiveDir": str(tmp_path / "data" / "landing" / ARCHIVE_FOLDER),
    }


def test_expire_deletes_only_archived_files_older_than_the_retention(tmp_path: Path) -> None:
    now = time.time()
    landing = tmp_path / "landing" / "trades"
    retention = LandingRetention.for_landing(landing, retention_hours=2)
    # Spark keeps a file's original path beneath the archive folder.
    nested = retention.archive_dir / str(landing).lstrip("/")
    old = [_file(nested / f"trades_old_{i}.json", 100 + i, 3, now) for i in range(3)]
    young = _file(nested / "trades_young.json", 50, 1, now)
    # An unprocessed landing file as old as the old ones: never the retention's business.
    waiting = _file(landing / "trades_waiting.json", 10, 5, now)
    expired = retention.expire(now)
    assert (expired.files, expired.bytes) == (3, 100 + 101 + 102)
    assert not any(path.exists() for path in old)
    assert young.exists()
    assert waiting.exists()


def test_expire_removes_emptied_folders_but_keeps_the_archive(tmp_path: Path) -> None:
    now = time.time()
    retention = LandingRetention(tmp_path / "_processed", retention_hours=0)
    _file(tmp_path / "_processed" / "a" / "b" / "trades_1.json", 10, 0.01, now)
    assert retention.expire(now).files == 1
    assert retention.archive_dir.is_dir()
    assert list(retention.archive_dir.iterdir()) == []


def test_expire_without_an_archive_does_nothing(tmp_path: Path) -> None:
    expired = LandingRetention(tmp_path / "missing", retention_hours=1).expire()
    assert (expired.files, expired.bytes) == (0, 0)


@pytest.mark.spark
def test_processed_files_move_to_the_archive_and_every_trade_stays_once(
    spark, landing_records: list[dict], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    settings = analytics_settings(data_dir).model_copy(update={"landing_retention_hours": 1.0})
    landing = landing_of(settings)
    first = write_landing_files(landing, landing_records[:3000], 3)
    run_local(spark, settings, mode="once", max_files_per_trigger=1)
    archive = archive_dir_for(landing)
    archived = {path.name for path in archive.rglob("*.json")}
    # Spark archives a batch's files when it plans the next batch: the last one stays.
    assert archived == {first[0].name, first[1].name}
    assert [path.name for path in landing.iterdir()] == [first[2].name]
    later = write_landing_files(landing, landing_records[3000:4000], 1, first_sequence=3)
    run_local(spark, settings, mode="once", max_files_per_trigger=1)
    assert {path.name for path in archive.rglob("*.json")} == {p.name for p in first}
    assert [path.name for path in landing.iterdir()] == [later[0].name]
    assert_raw_holds_each_trade_once(data_dir, landing_records[:4000])
    # Aged out: the archive empties, trades_raw keeps every trade.
    old = time.time() - 2 * 3600
    for path in archive.rglob("*.json"):
        os.utime(path, (old, old))
    assert LandingRetention.for_landing(landing, 1.0).expire().files == 3
    assert_raw_holds_each_trade_once(data_dir, landing_records[:4000])


@pytest.mark.spark
def test_without_a_retention_every_file_stays_in_place(
    spark, landing_records: list[dict], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    settings = analytics_settings(data_dir).model_copy(update={"landing_retention_hours": None})
    files = write_landing_files(landing_of(settings), landing_records[:2000], 2)
    run_local(spark, settings, mode="once", max_files_per_trigger=1)
    assert sorted(landing_of(settings).iterdir()) == sorted(files)
    assert not archive_dir_for(landing_of(settings)).exists()
