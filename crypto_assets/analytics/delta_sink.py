"""Delta tables of the local deployment, written with delta-rs: idempotent per streaming batch.

Every write carries a Delta app transaction ``(query id, batch id)``; a batch replayed after a
crash sees its own earlier commit through `applied` and skips it, and every write is a MERGE
keyed on the table's natural key, so a replay that does write again changes nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, QueryBuilder, Transaction, write_deltalake

from crypto_assets.analytics.schema import (
    ALL_TABLES,
    PRICE_ALERTS,
    TABLE_PARTITIONS,
    TABLE_SCHEMAS,
    TRADES_ANALYTICS,
    TRADES_QUARANTINE,
    TRADES_RAW,
)

logger = logging.getLogger(__name__)

# Keys of the commit metadata that persist the watermark input of a batch across restarts.
META_APP_ID = "crypto_assets.app_id"
META_BATCH_ID = "crypto_assets.batch_id"
META_MAX_TRADE_TIME = "crypto_assets.max_trade_time_before_ms"
_HISTORY_DEPTH = 200
_ALERT_INPUTS = "symbol, window_start, window_end, trade_count, price_change_pct"

# (symbol) -> (first window start ms, last window start ms), both inclusive.
WindowRanges = Mapping[str, tuple[int, int]]


def sql_string(value: str) -> str:
    """A SQL string literal for a delta-rs predicate."""
    return "'" + value.replace("'", "''") + "'"


def sql_timestamp(epoch_ms: int) -> str:
    """A SQL timestamp literal (UTC) for epoch milliseconds."""
    moment = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=epoch_ms)
    return f"'{moment.strftime('%Y-%m-%dT%H:%M:%S.%f')}Z'::timestamp"


def utc_timestamp(epoch_ms: int) -> pa.Scalar:
    """A pyarrow UTC timestamp scalar for dataset filters."""
    return pa.scalar(epoch_ms * 1000, pa.timestamp("us", tz="UTC"))


def utc_dates(first_ms: int, last_ms: int) -> list[str]:
    """Every UTC date (``YYYY-MM-DD``) from `first_ms` to `last_ms` inclusive."""
    epoch = dt.date(1970, 1, 1)
    first, last = first_ms // 86_400_000, last_ms // 86_400_000
    return [(epoch + dt.timedelta(days=d)).isoformat() for d in range(first, last + 1)]


class DeltaSink:
    """The four Delta tables under one directory, with idempotent batch writes."""

    def __init__(self, delta_dir: Path) -> None:
        self.delta_dir = delta_dir

    def path(self, table: str) -> str:
        """Location of `table`."""
        return str(self.delta_dir / table)

    def ensure_tables(self) -> None:
        """Create any missing table, empty, with its fixed schema and partitioning."""
        for name in ALL_TABLES:
            if not DeltaTable.is_deltatable(self.path(name)):
                DeltaTable.create(
                    self.path(name),
                    schema=TABLE_SCHEMAS[name],
                    partition_by=TABLE_PARTITIONS.get(name),
                    name=name,
                )
                logger.info("created Delta table %s", self.path(name))

    def table(self, name: str) -> DeltaTable:
        """The latest version of `name`."""
        return DeltaTable(self.path(name))

    def applied(self, name: str, app_id: str, batch_id: int) -> bool:
        """True when `name` already holds the commit of this batch (or a later one)."""
        version = self.table(name).transaction_version(app_id)
        return version is not None and version >= batch_id

    def row_count(self, name: str) -> int:
        """Rows in `name`, from the Delta log (no data read)."""
        actions = pa.table(self.table(name).get_add_actions(flatten=True))
        return int(pc.sum(actions["num_records"]).as_py() or 0)

    @staticmethod
    def _commit(
        app_id: str, batch_id: int, metadata: dict[str, str] | None = None
    ) -> CommitProperties:
        return CommitProperties(
            custom_metadata=metadata, app_transactions=[Transaction(app_id, batch_id)]
        )

    @staticmethod
    def _conform(rows: pa.Table, name: str) -> pa.Table:
        schema = TABLE_SCHEMAS[name]
        return rows.select(schema.names).cast(schema)

    def append_quarantine(self, rows: pa.Table, app_id: str, batch_id: int) -> None:
        """Append rejected rows (source_file, raw_line, reason, processed_time)."""
        write_deltalake(
            self.path(TRADES_QUARANTINE),
            self._conform(rows, TRADES_QUARANTINE),
            mode="append",
            commit_properties=self._commit(app_id, batch_id),
        )

    def max_trade_time(self) -> int | None:
        """Latest trade_time in trades_raw, from file statistics (no data read)."""
        actions = pa.table(self.table(TRADES_RAW).get_add_actions(flatten=True))
        if actions.num_rows == 0:
            return None
        return pc.max(actions["max.trade_time"]).as_py()

    def recorded_max_trade_time(self, app_id: str, batch_id: int) -> tuple[bool, int | None]:
        """(found, value) of the watermark input stored with this batch's trades_raw commit."""
        for commit in self.table(TRADES_RAW).history(_HISTORY_DEPTH):
            if commit.get(META_APP_ID) == app_id and commit.get(META_BATCH_ID) == str(batch_id):
                value = commit.get(META_MAX_TRADE_TIME) or None
                return True, None if value is None else int(value)
        return False, None

    def merge_trades_raw(
        self, rows: pa.Table, app_id: str, batch_id: int, max_trade_time_before: int | None
    ) -> int:
        """Insert the trades not yet in trades_raw (key symbol, trade_id); returns rows inserted."""
        rows = self._conform(rows, TRADES_RAW)
        dates = ", ".join(sql_string(d) for d in pc.unique(rows["trade_date"]).to_pylist())
        bounds = rows.group_by("symbol").aggregate([("trade_id", "min"), ("trade_id", "max")])
        id_ranges = " OR ".join(
            f"(t.symbol = {sql_string(symbol)} AND t.trade_id BETWEEN {low} AND {high})"
            for symbol, low, high in zip(
                bounds["symbol"].to_pylist(),
                bounds["trade_id_min"].to_pylist(),
                bounds["trade_id_max"].to_pylist(),
                strict=True,
            )
        )
        predicate = (
            f"t.trade_date = s.trade_date AND t.symbol = s.symbol AND t.trade_id = s.trade_id "
            f"AND t.trade_date IN ({dates}) AND ({id_ranges})"
        )
        metadata = {
            META_APP_ID: app_id,
            META_BATCH_ID: str(batch_id),
            META_MAX_TRADE_TIME: ""
            if max_trade_time_before is None
            else str(max_trade_time_before),
        }
        metrics = (
            self.table(TRADES_RAW)
            .merge(
                rows,
                predicate,
                source_alias="s",
                target_alias="t",
                commit_properties=self._commit(app_id, batch_id, metadata),
            )
            .when_not_matched_insert_all()
            .execute()
        )
        return int(metrics["num_target_rows_inserted"])

    def query(self, name: str, sql: str) -> pa.Table:
        """Run DataFusion `sql` against table `name` (files pruned by partition and statistics)."""
        result = pa.table(QueryBuilder().register(name, self.table(name)).execute(sql))
        # delta-rs hands strings back as string_view, which Spark and older readers reject.
        schema = pa.schema(
            f.with_type(pa.string()) if f.type == pa.string_view() else f for f in result.schema
        )
        return result.cast(schema)

    def existing_trades(self, keys: pa.Table) -> pa.Table:
        """The (symbol, trade_id) of `keys` (symbol, trade_id, trade_date) already in trades_raw."""
        if keys.num_rows == 0:
            return keys.select(["symbol", "trade_id"])
        dates = ", ".join(sql_string(d) for d in pc.unique(keys["trade_date"]).to_pylist())
        ids = ", ".join(str(i) for i in pc.unique(keys["trade_id"]).to_pylist())
        found = self.query(
            TRADES_RAW,
            f"SELECT symbol, trade_id FROM {TRADES_RAW} "
            f"WHERE trade_date IN ({dates}) AND trade_id IN ({ids})",
        )
        return keys.select(["symbol", "trade_id"]).join(
            found, ["symbol", "trade_id"], join_type="left semi"
        )

    def trade_files(self, ranges: WindowRanges, window_ms: int) -> list[str]:
        """Data files of the trades_raw snapshot that may hold trades in the windows of `ranges`.

        Pruned exactly by the trade_date partition and approximately by min/max statistics.
        """
        dates = sorted({d for lo, hi in ranges.values() for d in utc_dates(lo, hi + window_ms - 1)})
        in_windows = " OR ".join(
            f"(symbol = {sql_string(symbol)} AND trade_time BETWEEN {lo} AND {hi + window_ms - 1})"
            for symbol, (lo, hi) in ranges.items()
        )
        predicate = f"trade_date IN ({', '.join(map(sql_string, dates))}) AND ({in_windows})"
        return self.table(TRADES_RAW).file_uris(file_pruning_predicate=predicate)

    def merge_analytics(self, rows: pa.Table, app_id: str, batch_id: int) -> int:
        """Upsert window rows on (symbol, window_start); returns rows inserted or replaced."""
        rows = self._conform(rows, TRADES_ANALYTICS)
        first = pc.min(rows["window_start"]).value // 1000
        predicate = (
            "t.symbol = s.symbol AND t.window_start = s.window_start "
            f"AND t.window_start >= {sql_timestamp(first)}"
        )
        metrics = (
            self.table(TRADES_ANALYTICS)
            .merge(
                rows,
                predicate,
                source_alias="s",
                target_alias="t",
                commit_properties=self._commit(app_id, batch_id),
            )
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute()
        )
        return int(metrics["num_target_rows_inserted"]) + int(metrics["num_target_rows_updated"])

    def read_analytics(self, ranges: WindowRanges) -> pa.Table:
        """Analytics rows of each symbol inside its range, plus the symbol's first window ever."""
        symbols = ", ".join(sql_string(symbol) for symbol in ranges)
        firsts = self.query(
            TRADES_ANALYTICS,
            f"SELECT symbol, min(window_start) AS first FROM {TRADES_ANALYTICS} "
            f"WHERE symbol IN ({symbols}) GROUP BY symbol",
        )
        first_ms = {
            symbol: first.value // 1000
            for symbol, first in zip(firsts["symbol"].to_pylist(), firsts["first"], strict=True)
        }
        wanted = " OR ".join(
            f"(symbol = {sql_string(symbol)} AND ((window_start >= {sql_timestamp(lo)} "
            f"AND window_start <= {sql_timestamp(hi)}) "
            f"OR window_start = {sql_timestamp(first_ms[symbol])}))"
            for symbol, (lo, hi) in ranges.items()
            if symbol in first_ms
        )
        if not wanted:
            return self.query(
                TRADES_ANALYTICS, f"SELECT {_ALERT_INPUTS} FROM {TRADES_ANALYTICS} WHERE false"
            )
        return self.query(
            TRADES_ANALYTICS, f"SELECT {_ALERT_INPUTS} FROM {TRADES_ANALYTICS} WHERE {wanted}"
        )

    def replace_alerts(
        self, rows: pa.Table, ranges: WindowRanges, app_id: str, batch_id: int
    ) -> int:
        """Make price_alerts hold exactly `rows` inside `ranges`; returns rows inserted/updated."""
        rows = self._conform(rows, PRICE_ALERTS)
        scope = " OR ".join(
            f"(t.symbol = {sql_string(symbol)} AND t.window_start >= {sql_timestamp(lo)} "
            f"AND t.window_start <= {sql_timestamp(hi)})"
            for symbol, (lo, hi) in ranges.items()
        )
        metrics = (
            self.table(PRICE_ALERTS)
            .merge(
                rows,
                "t.symbol = s.symbol AND t.window_start = s.window_start "
                "AND t.alert_type = s.alert_type",
                source_alias="s",
                target_alias="t",
                commit_properties=self._commit(app_id, batch_id),
            )
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .when_not_matched_by_source_delete(scope)
            .execute()
        )
        return int(metrics["num_target_rows_inserted"]) + int(metrics["num_target_rows_updated"])
