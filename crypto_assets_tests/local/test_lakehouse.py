"""The local lakehouse: the landing folder's totals for landing_trades, and the rows a run wrote
read from the files the run wrote alone."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from crypto_assets.analytics.lakehouse import LandingTotals
from crypto_assets.analytics.landing_retention import LandingRetention, archive_dir_for
from crypto_assets.analytics.schema import TABLE_SCHEMAS, TRADES_ANALYTICS, TRADES_RAW
from crypto_assets.analytics.window_runs import TradeSpan
from crypto_assets.local.delta_sink import DeltaSink
from crypto_assets.local.lakehouse import LandingCounter, LocalLakehouse
from crypto_assets.local.layout import LocalLayout
from crypto_assets_tests.landing_folder import landing_of
from crypto_assets_tests.orchestration.landing_for_tests import (
    landing_records,
    write_landing_file,
)
from crypto_assets_tests.sample_rows import GOOD_ROW


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


def _trades(first_id: int, count: int, processed: dt.datetime) -> pa.Table:
    """`count` BTCUSDT trades of trades_raw from `first_id`, a second apart, processed then."""
    rows = [
        {
            **GOOD_ROW,
            "trade_id": first_id + k,
            "trade_time": GOOD_ROW["trade_time"] + (first_id + k) * 1_000,
            "source_file": "trades_20240808_235415_000000.json",
            "processed_time": processed,
            "ingest_lag_ms": 58,
            "trade_date": "2024-08-08",
        }
        for k in range(count)
    ]
    return pa.Table.from_pylist(rows, TABLE_SCHEMAS[TRADES_RAW])


def _data_files(table: Path) -> list[Path]:
    paths = pa.table(DeltaTable(str(table)).get_add_actions(flatten=True))["path"].to_pylist()
    return [table / path for path in paths]


def test_the_rows_a_run_wrote_come_from_the_files_it_wrote_alone(settings):
    layout = LocalLayout.from_settings(settings)
    lakehouse = LocalLakehouse(layout)
    assert lakehouse.read_written(TRADES_RAW, dt.datetime.now(dt.UTC)) is None  # no table yet
    assert lakehouse.trades_in([TradeSpan("BTCUSDT", 0, 9, 0, 9)]).num_rows == 0
    DeltaSink(layout.delta_dir).ensure_tables()
    table = layout.table_path(TRADES_RAW)
    earlier = dt.datetime(2026, 1, 1, 10, 0, tzinfo=dt.UTC)
    for index in range(3):  # three earlier commits, a file each
        write_deltalake(str(table), _trades(index * 10, 10, earlier), mode="append")
    old = _data_files(table)
    # The run started 0.3 ms into a millisecond and wrote 0.6 ms later: Delta keeps the file's
    # newest write time truncated to that millisecond, which must not skip it.
    started = dt.datetime(2026, 1, 1, 12, 0, 0, 300, tzinfo=dt.UTC)
    written = started + dt.timedelta(microseconds=600)
    write_deltalake(str(table), _trades(30, 10, written), mode="append")
    for path in old:
        path.write_bytes(b"not a parquet file " * 64)

    assert lakehouse.count_rows(TRADES_RAW) == 40  # from the log
    new = lakehouse.read_written(TRADES_RAW, started, ["symbol", "trade_id", "trade_time"])
    assert new["trade_id"].to_pylist() == list(range(30, 40))
    assert new.schema == pa.schema(
        [("symbol", pa.string()), ("trade_id", pa.int64()), ("trade_time", pa.int64())]
    )
    whole_rows = lakehouse.read_written(TRADES_RAW, started)
    assert whole_rows.schema == TABLE_SCHEMAS[TRADES_RAW]
    assert whole_rows["processed_time"].to_pylist() == [written] * 10
    times = new["trade_time"].to_pylist()
    found = lakehouse.trades_in([TradeSpan("BTCUSDT", 30, 39, min(times), max(times))])
    assert sorted(found["trade_id"].to_pylist()) == list(range(30, 40))
    assert found.schema == pa.schema([("symbol", pa.string()), ("trade_id", pa.int64())])
    # An older trade's span reaches the files that can hold it: here garbage.
    with pytest.raises(Exception, match=r"(?i)parquet"):
        lakehouse.trades_in([TradeSpan("BTCUSDT", 5, 5, min(times) - 25_000, min(times) - 25_000)])
    assert lakehouse.read_written(TRADES_ANALYTICS, started).num_rows == 0
