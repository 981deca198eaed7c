"""The delta-rs sink: table creation, app-transaction idempotence, trades appended or merged,
alert replacement in a range, a run's commits read back."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from crypto_assets.analytics.landing_decoder import decode_landing_files
from crypto_assets.analytics.ports import META_BATCH, BatchTag, MergeCounts
from crypto_assets.analytics.schema import (
    ALL_TABLES,
    PRICE_ALERTS,
    PRICE_ALERTS_SCHEMA,
    TRADES_QUARANTINE,
    TRADES_RAW,
)
from crypto_assets.analytics.sink_sql import utc_date
from crypto_assets.analytics.window_runs import Run
from crypto_assets.local.delta_sink import LOG_RETENTION, DeltaSink, sql_timestamp
from crypto_assets_tests.sample_rows import GOOD_ROW

PROCESSED = dt.datetime(2024, 8, 9, tzinfo=dt.UTC)

MINUTE = 60_000
T0 = 1723161600000  # 2024-08-09 00:00 UTC


def test_literals() -> None:
    assert sql_timestamp(T0 + 1) == "'2024-08-09T00:00:00.001000Z'::timestamp"
    assert (utc_date(T0 - 1), utc_date(T0)) == ("2024-08-08", "2024-08-09")


def test_tables_created_once_with_schema_and_partition(tmp_path: Path) -> None:
    sink = DeltaSink(tmp_path)
    sink.ensure_tables()
    sink.ensure_tables()
    for name in ALL_TABLES:
        assert DeltaTable(sink.path(name)).version() == 0
    assert DeltaTable(sink.path(TRADES_RAW)).metadata().partition_columns == ["trade_date"]


def test_tables_keep_a_quarter_hour_of_log(tmp_path: Path) -> None:
    old = DeltaSink(tmp_path / "old")
    DeltaTable.create(old.path(PRICE_ALERTS), schema=PRICE_ALERTS_SCHEMA)  # made before the setting
    old.ensure_tables()
    new = DeltaSink(tmp_path / "new")
    new.ensure_tables()
    for sink in (old, new):
        for name in ALL_TABLES:
            configuration = DeltaTable(sink.path(name)).metadata().configuration
            assert configuration["delta.logRetentionDuration"] == LOG_RETENTION

    # What the setting does: at each checkpoint (every 100 commits) the table deletes the log
    # files before its latest checkpoint older than a quarter of an hour; none that is newer.
    path = new.path(PRICE_ALERTS)
    table = DeltaTable(path)
    log = Path(path) / "_delta_log"

    def commit_until(version: int) -> None:
        while table.version() < version:
            write_deltalake(table, PRICE_ALERTS_SCHEMA.empty_table(), mode="append")

    def logged_versions() -> set[int]:
        return {int(f.name.split(".")[0]) for f in log.glob("*.json")}

    commit_until(110)  # checkpoint at version 99
    twenty_minutes_ago = time.time() - 20 * 60
    for file in log.iterdir():
        if file.name[:20].isdigit() and int(file.name[:20]) <= 104:
            os.utime(file, (twenty_minutes_ago, twenty_minutes_ago))
    assert logged_versions() == set(range(111))
    commit_until(200)  # checkpoint at version 199
    assert logged_versions() == set(range(99, 201))


def test_app_transaction_marks_a_batch_applied(tmp_path: Path) -> None:
    sink = DeltaSink(tmp_path)
    sink.ensure_tables()
    bad = pa.table(
        {
            "source_file": ["f.json"],
            "raw_line": ["{"],
            "reason": ["malformed JSON or wrong field type"],
            "processed_time": pa.array([T0 * 1000], pa.timestamp("us", tz="UTC")),
        }
    )
    assert not sink.applied(TRADES_QUARANTINE, BatchTag("query-a", 0))
    sink.append_quarantine(bad, BatchTag("query-a", 3))
    assert sink.applied(TRADES_QUARANTINE, BatchTag("query-a", 3))
    assert sink.applied(TRADES_QUARANTINE, BatchTag("query-a", 2))
    assert not sink.applied(TRADES_QUARANTINE, BatchTag("query-a", 4))
    # a new checkpoint starts afresh
    assert not sink.applied(TRADES_QUARANTINE, BatchTag("query-b", 0))
    assert sink.row_count(TRADES_QUARANTINE) == 1


def alerts(*minutes: int, symbol: str = "BTCUSDT", kind: str = "PRICE_MOVE") -> pa.Table:
    starts = [dt.datetime.fromtimestamp((T0 + m * MINUTE) / 1000, dt.UTC) for m in minutes]
    return pa.table(
        {
            "alert_type": [kind] * len(minutes),
            "symbol": [symbol] * len(minutes),
            "window_start": starts,
            "window_end": [s + dt.timedelta(minutes=1) for s in starts],
            "metric_value": [1.0] * len(minutes),
            "threshold": [0.5] * len(minutes),
            "message": ["m"] * len(minutes),
            "detected_time": starts,
        },
        PRICE_ALERTS_SCHEMA,
    )


def test_replace_alerts_touches_only_its_range(tmp_path: Path) -> None:
    sink = DeltaSink(tmp_path)
    sink.ensure_tables()
    everything = [Run("BTCUSDT", T0, T0 + 9 * MINUTE), Run("ETHUSDT", T0, T0 + 9 * MINUTE)]
    first = sink.replace_alerts(
        pa.concat_tables([alerts(1, 2, 3, 8), alerts(2, symbol="ETHUSDT")]),
        everything,
        BatchTag("q", 0),
        final=True,
    )
    assert first == MergeCounts(inserted=5, updated=0, deleted=0)
    # BTCUSDT minutes 2..5 recomputed with only minute 4 alerting: 2 and 3 go, 4 comes;
    # minutes 1 and 8 (outside the range) and ETHUSDT stay.
    part = [Run("BTCUSDT", T0 + 2 * MINUTE, T0 + 5 * MINUTE)]
    again = sink.replace_alerts(alerts(4), part, BatchTag("q", 1), final=True)
    assert again == MergeCounts(inserted=1, updated=0, deleted=2)
    left = pa.table(DeltaTable(sink.path(PRICE_ALERTS)).to_pyarrow_table()).to_pylist()
    found = sorted((r["symbol"], r["window_start"].minute) for r in left)
    assert found == [("BTCUSDT", 1), ("BTCUSDT", 4), ("BTCUSDT", 8), ("ETHUSDT", 2)]
    assert sink.applied(PRICE_ALERTS, BatchTag("q", 1))
    # An earlier piece of a step (not final) does not mark its batch applied.
    revised = sink.replace_alerts(alerts(4), part, BatchTag("q", 2), final=False)
    assert revised == MergeCounts(inserted=0, updated=1, deleted=0)  # recomputed: a revision
    assert not sink.applied(PRICE_ALERTS, BatchTag("q", 2))
    # No alert left in a range: those in it go; a range with none gets one commit (the record).
    none = PRICE_ALERTS_SCHEMA.empty_table()
    minute_4 = [Run("BTCUSDT", T0 + 4 * MINUTE, T0 + 4 * MINUTE)]
    assert sink.replace_alerts(none, minute_4, BatchTag("q", 3), final=True) == MergeCounts(
        inserted=0, updated=0, deleted=1
    )
    before = DeltaTable(sink.path(PRICE_ALERTS)).version()
    record = {"note": "batch 4"}
    minute_20 = [Run("BTCUSDT", T0 + 20 * MINUTE, T0 + 20 * MINUTE)]  # past every file's alerts
    quiet = sink.replace_alerts(none, minute_20, BatchTag("q", 4), final=True, record=record)
    assert quiet == MergeCounts(0)
    table = DeltaTable(sink.path(PRICE_ALERTS))
    assert table.version() == before + 1
    assert table.history(1)[0]["note"] == "batch 4"
    assert sink.applied(PRICE_ALERTS, BatchTag("q", 4))
    assert table.to_pyarrow_table().num_rows == 3


def test_a_runs_commits_are_read_back_with_what_they_did(tmp_path: Path) -> None:
    sink = DeltaSink(tmp_path)
    sink.ensure_tables()
    everything = [Run("BTCUSDT", T0, T0 + 9 * MINUTE)]
    sink.replace_alerts(alerts(1, 2), everything, BatchTag("q", 0), final=True)  # an earlier run
    before = sink.versions()
    record = {META_BATCH: "[1, 0, 0, 0]"}
    # Minute 2 rewritten, 3 new, 1 gone: the commit carries the batch's record.
    sink.replace_alerts(alerts(2, 3), everything, BatchTag("q", 1), final=True, record=record)
    sink.record_batch(BatchTag("q", 2), record)
    sink.record_batch(BatchTag("q", 2), record)  # the batch ran again: recorded again
    sink.replace_alerts(alerts(5), everything, BatchTag("another-query", 0), final=True)

    commits = sink.run_commits("q", before)
    assert [(c.table, c.batch_id, c.counts) for c in commits] == [
        (PRICE_ALERTS, 2, MergeCounts(0)),
        (PRICE_ALERTS, 2, MergeCounts(0)),
        (PRICE_ALERTS, 1, MergeCounts(inserted=1, updated=1, deleted=1)),
    ]
    assert all(c.metadata[META_BATCH] == record[META_BATCH] for c in commits)
    assert not sink.applied(PRICE_ALERTS, BatchTag("q", 2))  # a record completes no step
    assert sink.run_commits("q", sink.versions()) == []


def raw_rows(*trade_ids: int) -> pa.Table:
    """trades_raw rows of the sample trade under `trade_ids`, as the decoder makes them."""
    lines = b"\n".join(json.dumps({**GOOD_ROW, "trade_id": i}).encode() for i in trade_ids)
    return decode_landing_files([("f.json", lines)], PROCESSED).trades


def test_unseen_trades_are_appended_and_seen_ones_merged(tmp_path: Path) -> None:
    sink = DeltaSink(tmp_path)
    sink.ensure_tables()
    first, second = BatchTag("q", 0), BatchTag("q", 1)
    assert sink.merge_trades_raw(raw_rows(1, 2), first, T0, final=True, unseen=True) == 2
    assert sink.applied(TRADES_RAW, first)
    assert sink.recorded_max_trade_time(first) == (True, T0)
    table = DeltaTable(sink.path(TRADES_RAW))
    assert table.history(1)[0]["operation"] == "WRITE"  # appended, not merged
    assert all(f"trade_date={utc_date(GOOD_ROW['trade_time'])}" in uri for uri in table.file_uris())
    # Not unseen: the MERGE inserts only the trade not there yet.
    assert sink.merge_trades_raw(raw_rows(2, 3), second, T0, final=True) == 1
    assert sorted(table_ids(sink)) == [1, 2, 3]


def table_ids(sink: DeltaSink) -> list[int]:
    return DeltaTable(sink.path(TRADES_RAW)).to_pyarrow_table()["trade_id"].to_pylist()


def test_a_batchs_watermark_input_is_found_behind_newer_commits(tmp_path: Path) -> None:
    sink = DeltaSink(tmp_path)
    sink.ensure_tables()
    sink.merge_trades_raw(raw_rows(1), BatchTag("q", 3), T0, final=False, unseen=True)
    for trade_id in range(2, 8):  # more commits than the first, short read of the log holds
        sink.merge_trades_raw(raw_rows(trade_id), BatchTag("another query", 0), None, final=False)
    assert sink.recorded_max_trade_time(BatchTag("q", 3)) == (True, T0)
    assert sink.recorded_max_trade_time(BatchTag("q", 4)) == (False, None)
