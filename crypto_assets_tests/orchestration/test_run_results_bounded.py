"""A run's checks and metadata read what the run wrote, never a whole table.

Real delta-rs tables of many files from several analytics runs; then one more run, after which
every data file that existed before it is overwritten with garbage (same name, the Delta logs
intact). A reader that opened any of them would fail: the run's checks and metadata must still
be computed, and agree with what the intact tables say about the rows the run wrote.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from crypto_assets.analytics.schema import (
    ALL_TABLES,
    PRICE_ALERTS,
    TRADES_ANALYTICS,
    TRADES_RAW,
    WRITE_TIME_COLUMNS,
)
from crypto_assets.analytics.show import latest_windows
from crypto_assets.local.lakehouse import LocalLakehouse
from crypto_assets.local.layout import LocalLayout
from crypto_assets.orchestration.analytics_assets import check_results, run_results
from crypto_assets.orchestration.checks import (
    CHECK_KEY_COLUMNS_NOT_NULL,
    CHECK_LANDING_TO_TABLE_LAG,
    CHECK_UNIQUE_TRADE_IDS,
    CHECK_VWAP_WITHIN_LOW_HIGH,
    CheckLimits,
)
from crypto_assets_tests.analytics.landing_files import write_landing_files
from crypto_assets_tests.analytics.runs import run_local
from crypto_assets_tests.analytics.settings_for_tests import WINDOW_MS, analytics_settings
from crypto_assets_tests.orchestration.landing_for_tests import landing_records

pytestmark = pytest.mark.spark

OLD_RUNS = 3
FILES_PER_RUN = 3
TRADES_PER_RUN = 2_000
# The recording's trades up to midnight (23:54:15 to 23:59:59, one trade date).
RECORDED = 15_836
GARBAGE = b"not a parquet file " * 64


def _data_files(table: Path) -> dict[Path, bytes]:
    """Every data file `table`'s current version references, with its bytes."""
    paths = pa.table(DeltaTable(str(table)).get_add_actions(flatten=True))["path"].to_pylist()
    return {table / path: (table / path).read_bytes() for path in paths}


def _spoil(files: dict[Path, bytes], keep: set[Path] = frozenset()) -> None:
    for path in files.keys() - keep:
        path.write_bytes(GARBAGE)


def _restore(files: dict[Path, bytes]) -> None:
    for path, content in files.items():
        path.write_bytes(content)


def _by_name(results: list) -> tuple[dict[str, dict], dict[str, dg.AssetCheckResult]]:
    """Each materialized table's metadata values, and every check result by name."""
    metadata, checks = {}, {}
    for result in results:
        if isinstance(result, dg.MaterializeResult):
            key = result.asset_key.to_user_string()
            metadata[key] = {k: getattr(v, "value", v) for k, v in result.metadata.items()}
            found = result.check_results or []
        else:
            found = [result]
        checks.update({check.check_name: check for check in found})
    return metadata, checks


def _value(check: dg.AssetCheckResult, key: str) -> object:
    return check.metadata[key].value


def _written(table: Path, since: dt.datetime) -> pa.Table:
    """The rows of `table` written at or after `since`, read whole (the intact table)."""
    rows = DeltaTable(str(table)).to_pyarrow_table()
    column = WRITE_TIME_COLUMNS[table.name]
    return rows.filter(pc.greater_equal(rows[column], pa.scalar(since, rows[column].type)))


def _listed_windows(markdown: str) -> set[tuple[str, str]]:
    """(symbol, start HH:MM) of every row of windows_written's tables."""
    found, symbol = set(), ""
    for line in markdown.splitlines():
        if line.startswith("**"):
            symbol = line.strip("*")
        elif re.match(r"\| \d\d:\d\d ", line):
            found.add((symbol, line.split("|")[1].strip()))
    return found


def _new_trades(records: list[dict]) -> list[dict]:
    """The trades of the window after next after the old trades' last window: a run after a
    pause in the feed.

    Its trades, windows and alerts are newer than every older file's statistics say, so even
    the lookup for duplicates opens no file written before. At a seamless boundary the lookup
    would also open the one or two older files whose trade times reach the new trades', rightly:
    a duplicate could be there; and the run would rewrite the older file holding the window it
    revises (a Delta MERGE rewrites the files it changes).
    """
    old = records[: OLD_RUNS * TRADES_PER_RUN]
    last = max(r["trade_time"] for r in old) // WINDOW_MS * WINDOW_MS
    first = last + 2 * WINDOW_MS
    return [r for r in records[len(old) :] if first <= r["trade_time"] < first + WINDOW_MS]


def test_a_runs_checks_and_metadata_open_no_file_written_before_it(spark, recording, tmp_path):
    settings = analytics_settings(tmp_path / "data")
    layout = LocalLayout.from_settings(settings)
    lakehouse = LocalLakehouse(layout)
    records = landing_records(recording, RECORDED)
    for index in range(OLD_RUNS):
        run = records[index * TRADES_PER_RUN : (index + 1) * TRADES_PER_RUN]
        write_landing_files(layout.landing_dir, run, FILES_PER_RUN, index * FILES_PER_RUN)
        run_local(spark, settings, max_files_per_trigger=1)  # a batch, so files, per file
    new = _new_trades(records)
    landed = OLD_RUNS * TRADES_PER_RUN + len(new)
    # One trade date: the old and the new trades share trades_raw's partition.
    old_trades = records[: OLD_RUNS * TRADES_PER_RUN]
    assert len({r["trade_time"] // 86_400_000 for r in [*old_trades, *new]}) == 1
    assert len(new) > 1_000
    old = {name: _data_files(layout.table_path(name)) for name in ALL_TABLES}

    started = dt.datetime.now(dt.UTC)
    write_landing_files(layout.landing_dir, new, 2, OLD_RUNS * FILES_PER_RUN)
    summary = run_local(spark, settings, max_files_per_trigger=1)
    assert summary.rows_written[TRADES_RAW] == len(new)
    assert summary.late_rows == 0
    still_live = {
        name: len(files.keys() & _data_files(layout.table_path(name)).keys())
        for name, files in old.items()
    }
    # New trades go to new files (an insert-only MERGE rewrites none): every old one is live.
    assert still_live[TRADES_RAW] == len(old[TRADES_RAW]) >= OLD_RUNS * FILES_PER_RUN
    assert still_live[TRADES_ANALYTICS] > 0
    assert still_live[PRICE_ALERTS] > 0
    for files in old.values():
        _spoil(files)
    with pytest.raises(Exception, match=r"(?i)parquet"):  # what a whole-table reader meets
        lakehouse.read_table(TRADES_RAW)

    metadata, checks = _by_name(run_results(lakehouse, summary, CheckLimits(), started))

    assert set(metadata) == {TRADES_RAW, TRADES_ANALYTICS, PRICE_ALERTS}
    unique = checks[CHECK_UNIQUE_TRADE_IDS]
    assert unique.passed
    assert _value(unique, "new_trades") == len(new)
    assert _value(unique, "rows") == len(new)  # no older trade shares their ids and times
    assert _value(unique, "duplicate_rows") == 0
    lag = checks[CHECK_LANDING_TO_TABLE_LAG]
    assert lag.passed
    assert _value(lag, "files_waiting") == 0
    for name in (CHECK_VWAP_WITHIN_LOW_HIGH, CHECK_KEY_COLUMNS_NOT_NULL):
        assert checks[name].passed, checks[name].metadata

    # What the intact tables say about the rows the run wrote.
    for files in old.values():
        _restore(files)
    windows = _written(layout.table_path(TRADES_ANALYTICS), started)
    alerts = _written(layout.table_path(PRICE_ALERTS), started)
    whole = DeltaTable(str(layout.table_path(TRADES_ANALYTICS))).to_pyarrow_table()
    assert 0 < windows.num_rows < whole.num_rows
    assert _value(checks[CHECK_VWAP_WITHIN_LOW_HIGH], "windows") == windows.num_rows
    assert _value(checks[CHECK_KEY_COLUMNS_NOT_NULL], "windows") == windows.num_rows
    raw, analytics, price_alerts = (
        metadata[t] for t in (TRADES_RAW, TRADES_ANALYTICS, PRICE_ALERTS)
    )
    assert raw["dagster/row_count"] == landed
    assert analytics["dagster/row_count"] == whole.num_rows
    assert (
        price_alerts["dagster/row_count"]
        == DeltaTable(str(layout.table_path(PRICE_ALERTS))).to_pyarrow_table().num_rows
    )
    assert _listed_windows(analytics["windows_written"]) == {
        (row["symbol"], f"{row['window_start']:%H:%M}") for row in windows.to_pylist()
    }
    # The run wrote each symbol's newest windows: its newest are the table's.
    newest = latest_windows(whole).to_pylist()
    assert latest_windows(windows).to_pylist() == newest
    for row in newest:
        assert analytics[f"vwap_{row['symbol'].lower()}"] == round(row["vwap"], 2)
    kinds = pc.value_counts(alerts["alert_type"]).to_pylist() if alerts.num_rows else []
    counts = {entry["values"]: entry["counts"] for entry in kinds}
    assert price_alerts["alerts_price_move"] == counts.get("PRICE_MOVE", 0)
    assert price_alerts["alerts_volume_spike"] == counts.get("VOLUME_SPIKE", 0)
    assert alerts.num_rows > 0

    # A duplicate of an old trade among the run's trades (as if its MERGE had missed the old
    # one) is found, the old copy read from the one old file whose statistics can hold it.
    table = layout.table_path(TRADES_RAW)
    first = DeltaTable(str(table)).to_pyarrow_table()
    symbol, trade_id = records[100]["symbol"], records[100]["trade_id"]
    copied = first.filter(
        pc.and_(pc.equal(first["symbol"], symbol), pc.equal(first["trade_id"], trade_id))
    )
    copied = copied.set_column(
        copied.schema.get_field_index("processed_time"),
        "processed_time",
        pa.array([dt.datetime.now(dt.UTC)], copied["processed_time"].type),
    )
    write_deltalake(str(table), copied, mode="append", partition_by=["trade_date"])
    holders = {
        path for path, content in old[TRADES_RAW].items() if _holds(content, symbol, trade_id)
    }
    assert len(holders) == 1
    for files in old.values():
        _spoil(files, keep=holders)
    found = check_results(lakehouse, CheckLimits(), started)[TRADES_RAW][0]
    assert found.check_name == CHECK_UNIQUE_TRADE_IDS
    assert not found.passed
    assert _value(found, "new_trades") == len(new) + 1
    assert _value(found, "duplicate_rows") == 1
    assert _value(found, "duplicated_ids_sample") == f"{symbol} #{trade_id} seen 2 times"


def _holds(parquet: bytes, symbol: str, trade_id: int) -> bool:
    """Whether the Parquet file `parquet` (trades_raw's) holds that trade."""
    table = pq.read_table(pa.BufferReader(parquet), columns=["symbol", "trade_id"])
    return (symbol, trade_id) in set(zip(*table.to_pydict().values(), strict=True))
