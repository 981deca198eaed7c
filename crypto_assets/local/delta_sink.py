"""Delta tables of the local deployment, written with delta-rs: idempotent per streaming batch.

A step's final commit carries a Delta app transaction ``(query id, batch id)``; a batch replayed
after a crash sees it through `applied` and skips the step, and every write is a MERGE keyed on
the table's natural key (or an append of trades the table was just found not to hold), so a
replay that does write again changes nothing. Every commit names its
batch in its custom metadata, which `run_commits` reads back with the commit's own row counts.
Every predicate is built from at most `MAX_RUNS_PER_QUERY` runs or dates: its size follows the
data, not its span.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, QueryBuilder, Transaction, write_deltalake

from crypto_assets.analytics.maintenance import compact_and_vacuum
from crypto_assets.analytics.ports import (
    META_APP_ID,
    META_BATCH_ID,
    META_MAX_TRADE_TIME,
    BatchTag,
    MergeCounts,
    RunCommit,
    recorded_watermark,
)
from crypto_assets.analytics.schema import (
    ALL_TABLES,
    PRICE_ALERTS,
    TABLE_PARTITIONS,
    TABLE_SCHEMAS,
    TRADES_ANALYTICS,
    TRADES_QUARANTINE,
    TRADES_RAW,
)
from crypto_assets.analytics.sink_sql import (
    any_of,
    scoring_inputs,
    sql_string,
    window_clause,
)
from crypto_assets.analytics.window_runs import MAX_RUNS_PER_QUERY, Run, chunks
from crypto_assets.local.sql_engine import SqlEngine

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)

_HISTORY_DEPTH = 200
_WATERMARK_DEPTHS = (4, _HISTORY_DEPTH)
# How long each table keeps a commit's log file (delta-rs deletes older ones when it writes a
# checkpoint, every 100 commits). Delta's default is 30 days; at a commit a second that is
# millions of files, and delta-rs lists the whole log folder on a local disk at every commit
# and refresh: an append took 7 ms beside 130 log files, 14 ms beside 900 and 41 ms beside
# 3,600. A quarter of an hour of history is enough for every reader here (a run's own commits,
# the lag check's last 200), and older snapshots could not be read anyway once vacuumed.
LOG_RETENTION = "interval 15 minutes"
_TABLE_PROPERTIES = {"delta.logRetentionDuration": LOG_RETENTION}


def merge_counts(metrics: dict) -> MergeCounts:
    """The counts of a delta-rs MERGE from its metrics."""
    return MergeCounts(
        int(metrics["num_target_rows_inserted"]),
        int(metrics["num_target_rows_updated"]),
        int(metrics["num_target_rows_deleted"]),
    )


def commit_counts(commit: Mapping[str, Any]) -> MergeCounts:
    """What a commit of the history did to the rows: a MERGE's counts, or the rows a write added."""
    metrics = commit.get("operationMetrics") or {}
    if commit.get("operation") == "MERGE":
        return merge_counts(metrics)
    return MergeCounts(int(metrics.get("num_added_rows", 0)))


def utc_text(epoch_ms: int) -> str:
    """A SQL string of the UTC time of epoch milliseconds (``'2024-08-09T00:00:00.001000Z'``).

    What a file-pruning predicate compares a timestamp column with (a ``::timestamp`` there is
    refused: it has no time zone).
    """
    moment = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=epoch_ms)
    return f"'{moment.strftime('%Y-%m-%dT%H:%M:%S.%f')}Z'"


def sql_timestamp(epoch_ms: int) -> str:
    """A SQL timestamp literal (UTC) for epoch milliseconds."""
    return f"{utc_text(epoch_ms)}::timestamp"


def query_table(table: DeltaTable, name: str, sql: str) -> pa.Table:
    """Run DataFusion `sql` against `table`, registered as `name`.

    DataFusion skips every file whose partition values or min/max statistics (from the Delta
    log) cannot satisfy the predicate, without opening it.
    """
    result = pa.table(QueryBuilder().register(name, table).execute(sql))
    # delta-rs hands strings back as string_view, which Spark and older readers reject.
    schema = pa.schema(
        f.with_type(pa.string()) if f.type == pa.string_view() else f for f in result.schema
    )
    return result.cast(schema)


class DeltaSink:
    """The four Delta tables under one directory, with idempotent batch writes.

    No Spark: delta-rs reads and writes the tables, and DuckDB (`SqlEngine`) computes a batch's
    windows and alerts from what delta-rs read.
    """

    def __init__(self, delta_dir: Path) -> None:
        self.delta_dir = delta_dir
        # The tables each thread opened so far (a DeltaTable is not shared between threads, and
        # goes with its thread), brought up to date with the commits made since (`table`).
        self._opened = threading.local()
        self._engine = SqlEngine()

    def on(self, spark: SparkSession) -> Self:
        """This sink: it works without the batch's Spark session."""
        return self

    def __getstate__(self) -> dict[str, Any]:
        # Pickled with the batch function for Spark Connect: the opened tables and the DuckDB
        # database are this process's.
        return {**self.__dict__, "_opened": None, "_engine": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _opened=threading.local(), _engine=SqlEngine())

    def path(self, table: str) -> str:
        """Location of `table`."""
        return str(self.delta_dir / table)

    def ensure_tables(self) -> None:
        """Create any missing table, empty, with its fixed schema, partitioning and properties.

        A table made before its properties were set gets them (one commit).
        """
        for name in ALL_TABLES:
            if not DeltaTable.is_deltatable(self.path(name)):
                DeltaTable.create(
                    self.path(name),
                    schema=TABLE_SCHEMAS[name],
                    partition_by=TABLE_PARTITIONS.get(name),
                    name=name,
                    configuration=_TABLE_PROPERTIES,
                )
                logger.info("created Delta table %s", self.path(name))
                continue
            table = DeltaTable(self.path(name))
            configuration = table.metadata().configuration
            if any(configuration.get(k) != v for k, v in _TABLE_PROPERTIES.items()):
                table.alter.set_table_properties(_TABLE_PROPERTIES)

    def table(self, name: str) -> DeltaTable:
        """The latest version of `name`.

        Opening a table replays its log from the last checkpoint; a table this thread opened
        before only reads the commits made since (a fifth of a small batch's time went to
        opening the tables again for every step).
        """
        opened: dict[str, DeltaTable] = self._opened.__dict__
        table = opened.get(name)
        if table is None:
            table = opened[name] = DeltaTable(self.path(name))
        else:
            table.update_incremental()
        return table

    def applied(self, name: str, tag: BatchTag) -> bool:
        """True when `name` already holds the last commit of this batch (or of a later one)."""
        version = self.table(name).transaction_version(tag.app_id)
        return version is not None and version >= tag.batch_id

    def row_count(self, name: str) -> int:
        """Rows in `name`, from the Delta log (no data read)."""
        actions = pa.table(self.table(name).get_add_actions(flatten=True))
        return int(pc.sum(actions["num_records"]).as_py() or 0)

    def versions(self) -> dict[str, int]:
        """The latest version of each table."""
        return {name: self.table(name).version() for name in ALL_TABLES}

    def run_commits(self, app_id: str, after: Mapping[str, int]) -> list[RunCommit]:
        """The commits of query `app_id` newer than the versions `after`, from each table's log."""
        found = []
        for name in ALL_TABLES:
            table = self.table(name)
            newer = table.version() - after[name]
            if newer <= 0:
                continue
            for commit in table.history(newer):
                if commit.get(META_APP_ID) != app_id or int(commit["version"]) <= after[name]:
                    continue
                batch_id = int(commit[META_BATCH_ID])
                found.append(RunCommit(name, batch_id, commit_counts(commit), commit))
        return found

    def maintain(self, retention_hours: int) -> None:
        """Compact the small batch files of every table and vacuum the replaced ones."""
        for name in ALL_TABLES:
            compact_and_vacuum(self.path(name), retention_hours)

    @staticmethod
    def _commit(
        tag: BatchTag, *, final: bool, metadata: Mapping[str, str] | None = None
    ) -> CommitProperties:
        """A commit of `tag`'s batch; a `final` one also records the app transaction."""
        custom = {META_APP_ID: tag.app_id, META_BATCH_ID: str(tag.batch_id), **(metadata or {})}
        transactions = [Transaction(tag.app_id, tag.batch_id)] if final else None
        return CommitProperties(custom_metadata=custom, app_transactions=transactions)

    @staticmethod
    def _conform(rows: pa.Table, name: str) -> pa.Table:
        schema = TABLE_SCHEMAS[name]
        return rows.select(schema.names).cast(schema)

    def append_quarantine(self, rows: pa.Table, tag: BatchTag) -> None:
        """Append rejected rows (source_file, raw_line, reason, processed_time)."""
        write_deltalake(
            self.path(TRADES_QUARANTINE),
            self._conform(rows, TRADES_QUARANTINE),
            mode="append",
            commit_properties=self._commit(tag, final=True),
        )

    def max_trade_time(self) -> int | None:
        """Latest trade_time in trades_raw, from file statistics (no data read)."""
        actions = pa.table(self.table(TRADES_RAW).get_add_actions(flatten=True))
        if actions.num_rows == 0:
            return None
        return pc.max(actions["max.trade_time"]).as_py()

    def recorded_max_trade_time(self, tag: BatchTag) -> tuple[bool, int | None]:
        """(found, value) of the watermark input stored with this batch's trades_raw commits."""
        # The newest few commits first: they decide it at almost every batch (reading 200
        # commit files took 40 ms of a small batch).
        for depth in _WATERMARK_DEPTHS:
            found = recorded_watermark(self.table(TRADES_RAW).history(depth), tag)
            if found is not None:
                return found
        return False, None

    def merge_trades_raw(
        self,
        rows: pa.Table,
        tag: BatchTag,
        max_trade_time_before: int | None,
        *,
        final: bool,
        unseen: bool = False,
    ) -> int:
        """Insert the trades not yet in trades_raw (key symbol, trade_id); returns rows inserted.

        `rows` hold at most `MAX_RUNS_PER_QUERY` trade dates, the partitions the MERGE reads.
        The commit records the batch and its watermark input; a `final` one marks it applied.
        `unseen` rows (none of them in the table, as the caller found) are appended: this sink
        is the table's one writer (the checkpoint's lock), and an append only writes where a
        MERGE also joins the rows with the table's files (0.2 s against 0.8 s for 260,000).
        """
        rows = self._conform(rows, TRADES_RAW)
        dates = sorted(pc.unique(rows["trade_date"]).to_pylist())
        if len(dates) > MAX_RUNS_PER_QUERY:
            raise ValueError(f"{len(dates)} trade dates in one MERGE; split the rows by date")
        watermark = "" if max_trade_time_before is None else str(max_trade_time_before)
        commit = self._commit(tag, final=final, metadata={META_MAX_TRADE_TIME: watermark})
        if unseen:
            write_deltalake(self.table(TRADES_RAW), rows, mode="append", commit_properties=commit)
            return rows.num_rows
        predicate = (
            "t.trade_date = s.trade_date AND t.symbol = s.symbol AND t.trade_id = s.trade_id "
            f"AND t.trade_date IN ({', '.join(map(sql_string, dates))})"
        )
        metrics = (
            self.table(TRADES_RAW)
            .merge(
                rows,
                predicate,
                source_alias="s",
                target_alias="t",
                commit_properties=commit,
            )
            .when_not_matched_insert_all()
            .execute()
        )
        return int(metrics["num_target_rows_inserted"])

    def query(self, name: str, sql: str) -> pa.Table:
        """Run DataFusion `sql` against table `name` (files pruned by partition and statistics)."""
        return query_table(self.table(name), name, sql)

    def existing_trades(self, id_runs: Sequence[Run]) -> pa.Table:
        """(symbol, trade_id) of trades_raw inside runs of trade ids (`first`/`last` are ids)."""
        found = []
        for piece in chunks(id_runs):
            clauses = [
                f"symbol = {sql_string(r.symbol)} AND trade_id BETWEEN {r.first} AND {r.last}"
                for r in piece
            ]
            found.append(
                self.query(
                    TRADES_RAW,
                    f"SELECT symbol, trade_id FROM {TRADES_RAW} WHERE {any_of(clauses)}",
                )
            )
        empty = pa.schema([("symbol", pa.string()), ("trade_id", pa.int64())]).empty_table()
        return pa.concat_tables([empty, *(f.cast(empty.schema) for f in found)])

    def merge_analytics(self, rows: pa.Table, tag: BatchTag, *, final: bool) -> MergeCounts:
        """Upsert window rows on (symbol, window_start); returns rows inserted and replaced."""
        if rows.num_rows == 0 and not final:
            return MergeCounts(0)
        rows = self._conform(rows, TRADES_ANALYTICS)
        first = pc.min(rows["window_start"]).value // 1000 if rows.num_rows else 0
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
                commit_properties=self._commit(tag, final=final),
            )
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute()
        )
        return merge_counts(metrics)

    def score(
        self, sql: str, trades: Sequence[Run], window_ms: int, stored: Sequence[Run]
    ) -> pa.Table:
        """`transforms.scoring_sql`'s `sql` over the tables' rows, by DuckDB (see `TableSink`).

        delta-rs reads the rows through each table's log, skipping every file whose partition
        values or statistics rule it out.
        """
        trades_in, stored_in = scoring_inputs(trades, window_ms, stored, sql_timestamp, str)
        return self._engine.run(
            sql,
            trades=self.query(TRADES_RAW, trades_in),
            stored=self.query(TRADES_ANALYTICS, stored_in),
        )

    def alert_keys(self, runs: Sequence[Run]) -> pa.Table:
        """(symbol, window_start, alert_type) of price_alerts inside `runs` (at most 100)."""
        wanted = any_of([window_clause(r, sql_timestamp) for r in runs])
        return self.query(
            PRICE_ALERTS,
            f"SELECT symbol, window_start, alert_type FROM {PRICE_ALERTS} WHERE {wanted}",
        )

    def replace_alerts(
        self,
        rows: pa.Table,
        runs: Sequence[Run],
        tag: BatchTag,
        *,
        final: bool,
        record: Mapping[str, str] | None = None,
    ) -> MergeCounts:
        """Make price_alerts hold exactly `rows` inside `runs`; returns what it changed.

        `record` (the batch's record and lags) goes in the final commit's metadata.
        """
        rows = self._conform(rows, PRICE_ALERTS)
        metadata = record if final else None
        table = self.table(PRICE_ALERTS)
        in_scope = any_of([window_clause(r, utc_text) for r in runs])
        if rows.num_rows == 0 and not table.file_uris(file_pruning_predicate=in_scope):
            # No alert to write and, by the files' statistics, none to remove: the MERGE would
            # change nothing (most batches; it took 25 ms of a small batch).
            if final:
                self._append_empty(PRICE_ALERTS, self._commit(tag, final=True, metadata=metadata))
            return MergeCounts(0)
        scope = any_of([window_clause(r, sql_timestamp, "t.") for r in runs])
        before = table.version()
        metrics = (
            table.merge(
                rows,
                "t.symbol = s.symbol AND t.window_start = s.window_start "
                "AND t.alert_type = s.alert_type",
                source_alias="s",
                target_alias="t",
                commit_properties=self._commit(tag, final=final, metadata=metadata),
            )
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .when_not_matched_by_source_delete(scope)
            .execute()
        )
        if final and table.version() == before:
            # delta-rs makes no commit for a MERGE that changes nothing (no alert in scope), yet
            # the batch's transaction and record must be recorded: an empty append carries them.
            self._append_empty(PRICE_ALERTS, self._commit(tag, final=True, metadata=metadata))
        return merge_counts(metrics)

    def record_batch(self, tag: BatchTag, record: Mapping[str, str]) -> None:
        """An empty append to price_alerts carrying `record` (no app transaction)."""
        self._append_empty(PRICE_ALERTS, self._commit(tag, final=False, metadata=record))

    def _append_empty(self, name: str, commit: CommitProperties) -> None:
        """A commit of no rows in `name`."""
        write_deltalake(
            self.path(name),
            TABLE_SCHEMAS[name].empty_table(),
            mode="append",
            commit_properties=commit,
        )
