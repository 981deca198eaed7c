"""The Databricks deployment's tables, written with Delta-Spark SQL: the local sink's algorithm.

It mirrors the local `DeltaSink` step for step: a step's final commit carries the Delta app
transaction ``(query id, batch id)`` (the ``txnAppId``/``txnVersion`` write options for appends,
the same SQL settings for MERGE, which Delta skips when the table already holds that version),
every write is a MERGE on the table's natural key, and every trades_raw commit records the
batch's watermark input. What a commit belongs to is read back from its ``userMetadata`` with
``DESCRIBE HISTORY``, and what it did from its ``operationMetrics``: plain SQL, because on
Databricks the JVM classes are not io.delta's, and Delta's Python ``DeltaTable`` needs the Delta
Connect server plugin on Spark Connect (without it: ``InvalidPlanInput: No handler found for
extension``). Everything here is SQL and DataFrames, so it runs on a classic session and on a
Spark Connect one alike.
Tables are named by an identifier: ``catalog.schema.table`` in Unity Catalog, or
``delta.`<folder>``` for path-based tables off Databricks.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import SparkSession
from pyspark.sql.pandas.types import from_arrow_schema

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
from crypto_assets.databricks.layout import VolumeLayout

logger = logging.getLogger(__name__)

# Marks the commit that completes a step (the one that carries the app transaction).
META_FINAL = "crypto_assets.final"
TXN_APP_ID_CONF = "spark.databricks.delta.write.txnAppId"
TXN_VERSION_CONF = "spark.databricks.delta.write.txnVersion"
USER_METADATA_CONF = "spark.databricks.delta.commitInfo.userMetadata"
# The app transactions of the commits that carry a batch's record alone (`record_batch`).
RECORDS_APP_SUFFIX = ":records"
_RETENTION_CHECK_CONF = "spark.databricks.delta.retentionDurationCheck.enabled"
_HISTORY_DEPTH = 200

TableIdentifier = Callable[[str], str]


def path_identifier(root: Path | str) -> TableIdentifier:
    """Path-based tables ``delta.`<root>/<table>``` (Spark off Databricks, tests)."""
    base = str(root).rstrip("/")
    return lambda table: "delta.`" + f"{base}/{table}".replace("`", "``") + "`"


def layout_identifier(layout: VolumeLayout, *, on_databricks: bool) -> TableIdentifier:
    """Unity Catalog names on Databricks, else path-based tables in the Volume's ``_tables``."""
    if on_databricks:
        return layout.table_name
    return path_identifier(layout.folder("_tables"))


def spark_timestamp(epoch_ms: int) -> str:
    """A Spark SQL timestamp of epoch milliseconds (exact, no time zone involved)."""
    return f"timestamp_millis({int(epoch_ms)})"


def table_ddl(name: str) -> str:
    """The column list and partitioning of `name` for ``CREATE TABLE``, from schema.py."""
    spark_schema = from_arrow_schema(TABLE_SCHEMAS[name])
    columns = ", ".join(
        f"`{field.name}` {field.dataType.simpleString().upper()}" for field in spark_schema
    )
    partitions = TABLE_PARTITIONS.get(name)
    partitioned = f" PARTITIONED BY ({', '.join(partitions)})" if partitions else ""
    return f"({columns}) USING DELTA{partitioned}"


def commit_metadata(tag: BatchTag, *, final: bool, **extra: str) -> str:
    """The ``userMetadata`` JSON of a commit: its batch, whether it completes a step, extras."""
    return json.dumps(
        {META_APP_ID: tag.app_id, META_BATCH_ID: str(tag.batch_id), META_FINAL: final, **extra},
        sort_keys=True,
    )


def user_metadata(text: str | None) -> dict[str, Any] | None:
    """The metadata of a commit this sink wrote (`commit_metadata`); None for any other commit."""
    if not text:
        return None
    try:
        metadata = json.loads(text)
    except ValueError:
        return None
    return metadata if isinstance(metadata, dict) and META_APP_ID in metadata else None


def commit_counts(operation: str, metrics: Mapping[str, str] | None) -> MergeCounts:
    """What a commit did to the rows (its ``operationMetrics``): a MERGE's counts, or rows added."""
    metrics = metrics or {}
    if operation == "MERGE":
        return MergeCounts(
            int(metrics.get("numTargetRowsInserted", 0)),
            int(metrics.get("numTargetRowsUpdated", 0)),
            int(metrics.get("numTargetRowsDeleted", 0)),
        )
    return MergeCounts(int(metrics.get("numOutputRows", 0)))


class SparkDeltaSink:
    """The four Delta tables through Spark SQL, with idempotent batch writes (`TableSink`)."""

    def __init__(self, spark: SparkSession | None, identifier: TableIdentifier) -> None:
        self.spark = spark
        self.identifier = identifier
        self._views = 0

    def on(self, spark: SparkSession) -> Self:
        """This sink, reading and writing through `spark` (the session of the batch's DataFrame)."""
        return type(self)(spark, self.identifier)

    def __getstate__(self) -> dict[str, Any]:
        # Pickled with the batch function for Spark Connect: a session does not pickle and is the
        # caller's; the batch binds the sink to its own (`on`).
        return {**self.__dict__, "spark": None}

    def ensure_tables(self) -> None:
        """Create any missing table, empty, with its fixed schema and partitioning."""
        for name in ALL_TABLES:
            self.spark.sql(f"CREATE TABLE IF NOT EXISTS {self.identifier(name)} {table_ddl(name)}")

    def row_count(self, name: str) -> int:
        """Rows in `name`."""
        return int(self.spark.sql(f"SELECT count(*) FROM {self.identifier(name)}").first()[0])

    def history(self, name: str) -> Iterator[dict]:
        """The userMetadata of `name`'s latest commits (newest first) that this sink wrote."""
        rows = self.spark.sql(
            f"DESCRIBE HISTORY {self.identifier(name)} LIMIT {_HISTORY_DEPTH}"
        ).select("version", "userMetadata")
        for row in sorted(rows.collect(), key=lambda r: -r["version"]):
            metadata = user_metadata(row["userMetadata"])
            if metadata is not None:
                yield metadata

    def _version(self, name: str) -> int:
        latest = self.spark.sql(f"DESCRIBE HISTORY {self.identifier(name)} LIMIT 1").first()
        return -1 if latest is None else int(latest["version"])

    def versions(self) -> dict[str, int]:
        """The latest version of each table."""
        return {name: self._version(name) for name in ALL_TABLES}

    def run_commits(self, app_id: str, after: Mapping[str, int]) -> list[RunCommit]:
        """The commits of query `app_id` newer than the versions `after` (``DESCRIBE HISTORY``)."""
        found = []
        for name in ALL_TABLES:
            newer = self._version(name) - after[name]
            if newer <= 0:
                continue
            rows = self.spark.sql(f"DESCRIBE HISTORY {self.identifier(name)} LIMIT {newer}").select(
                "version", "operation", "operationMetrics", "userMetadata"
            )
            for row in rows.collect():
                metadata = user_metadata(row["userMetadata"])
                if metadata is None or metadata[META_APP_ID] != app_id:
                    continue
                if int(row["version"]) <= after[name]:
                    continue
                counts = commit_counts(row["operation"], row["operationMetrics"])
                found.append(RunCommit(name, int(metadata[META_BATCH_ID]), counts, metadata))
        return found

    def applied(self, name: str, tag: BatchTag) -> bool:
        """True when `name` holds the last commit of this batch (or of a later one)."""
        for metadata in self.history(name):
            if metadata[META_APP_ID] == tag.app_id and metadata.get(META_FINAL):
                return int(metadata[META_BATCH_ID]) >= tag.batch_id
        return False

    @contextmanager
    def _commit(self, tag: BatchTag, *, final: bool, **extra: str) -> Iterator[None]:
        """SQL settings of the next commit: its metadata, and the app transaction if `final`."""
        conf = {USER_METADATA_CONF: commit_metadata(tag, final=final, **extra)}
        if final:
            conf |= {TXN_APP_ID_CONF: tag.app_id, TXN_VERSION_CONF: str(tag.batch_id)}
        for key, value in conf.items():
            self.spark.conf.set(key, value)
        try:
            yield
        finally:
            for key in conf:
                self.spark.conf.unset(key)

    def _source(self, rows: pa.Table, name: str) -> str:
        """`rows`, cast to `name`'s schema, as a temporary view; its name."""
        schema = TABLE_SCHEMAS[name]
        frame = self.spark.createDataFrame(
            rows.select(schema.names).cast(schema), schema=from_arrow_schema(schema)
        )
        self._views += 1
        view = f"crypto_assets_source_{name}_{self._views}"
        frame.createOrReplaceTempView(view)
        return view

    def _merged(self, sql: str, view: str) -> MergeCounts:
        """Run a MERGE; what it did (nothing when Delta skipped an applied transaction)."""
        metrics = self._merge(sql, view)
        return MergeCounts(
            metrics.get("num_inserted_rows", 0),
            metrics.get("num_updated_rows", 0),
            metrics.get("num_deleted_rows", 0),
        )

    def _merge(self, sql: str, view: str) -> dict[str, int]:
        try:
            result = self.spark.sql(sql).first()
        finally:
            self.spark.catalog.dropTempView(view)
        # Delta answers a MERGE with its counts, or nothing when the transaction was applied.
        return (
            {}
            if result is None
            else {key: int(value or 0) for key, value in result.asDict().items()}
        )

    def append_quarantine(self, rows: pa.Table, tag: BatchTag) -> None:
        """Append rejected rows; Delta skips the write when the table holds this batch already."""
        view = self._source(rows, TRADES_QUARANTINE)
        try:
            (
                self.spark.table(view)
                .write.format("delta")
                .mode("append")
                .option("txnAppId", tag.app_id)
                .option("txnVersion", tag.batch_id)
                .option("userMetadata", commit_metadata(tag, final=True))
                .insertInto(self.identifier(TRADES_QUARANTINE))
            )
        finally:
            self.spark.catalog.dropTempView(view)

    def _append_empty(self, name: str, metadata: str, transaction: BatchTag | None) -> None:
        """A commit without rows in `name` carrying `metadata`, and `transaction` when given."""
        schema = from_arrow_schema(TABLE_SCHEMAS[name])
        writer = self.spark.createDataFrame([], schema).write.format("delta").mode("append")
        if transaction is not None:
            writer = writer.option("txnAppId", transaction.app_id).option(
                "txnVersion", transaction.batch_id
            )
        writer.option("userMetadata", metadata).insertInto(self.identifier(name))

    def max_trade_time(self) -> int | None:
        """Latest trade_time in trades_raw."""
        return self.spark.sql(f"SELECT max(trade_time) FROM {self.identifier(TRADES_RAW)}").first()[
            0
        ]

    def recorded_max_trade_time(self, tag: BatchTag) -> tuple[bool, int | None]:
        """(found, value) of the watermark input stored with this batch's trades_raw commits."""
        found = recorded_watermark(self.history(TRADES_RAW), tag)
        return (False, None) if found is None else found

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

        Always a MERGE, `unseen` or not: on Databricks no lock keeps a second writer out (Dagster's
        run queue is the guard), so trades found missing may be there by the time this commits.
        """
        dates = sorted(pc.unique(rows["trade_date"]).to_pylist())
        if len(dates) > MAX_RUNS_PER_QUERY:
            raise ValueError(f"{len(dates)} trade dates in one MERGE; split the rows by date")
        view = self._source(rows, TRADES_RAW)
        watermark = "" if max_trade_time_before is None else str(max_trade_time_before)
        sql = (
            f"MERGE INTO {self.identifier(TRADES_RAW)} t USING {view} s "
            "ON t.trade_date = s.trade_date AND t.symbol = s.symbol AND t.trade_id = s.trade_id "
            f"AND t.trade_date IN ({', '.join(map(sql_string, dates))}) "
            "WHEN NOT MATCHED THEN INSERT *"
        )
        with self._commit(tag, final=final, **{META_MAX_TRADE_TIME: watermark}):
            metrics = self._merge(sql, view)
        return metrics.get("num_inserted_rows", 0)

    def existing_trades(self, id_runs: Sequence[Run]) -> pa.Table:
        """(symbol, trade_id) of trades_raw inside runs of trade ids (`first`/`last` are ids)."""
        empty = pa.schema([("symbol", pa.string()), ("trade_id", pa.int64())]).empty_table()
        found = [empty]
        for piece in chunks(id_runs):
            clauses = [
                f"symbol = {sql_string(r.symbol)} AND trade_id BETWEEN {r.first} AND {r.last}"
                for r in piece
            ]
            found.append(
                self.spark.sql(
                    f"SELECT symbol, trade_id FROM {self.identifier(TRADES_RAW)} "
                    f"WHERE {any_of(clauses)}"
                )
                .toArrow()
                .cast(empty.schema)
            )
        return pa.concat_tables(found)

    def merge_analytics(self, rows: pa.Table, tag: BatchTag, *, final: bool) -> MergeCounts:
        """Upsert window rows on (symbol, window_start); returns rows inserted and replaced."""
        if rows.num_rows == 0 and not final:
            return MergeCounts(0)
        first = pc.min(rows["window_start"]).value // 1000 if rows.num_rows else 0
        view = self._source(rows, TRADES_ANALYTICS)
        sql = (
            f"MERGE INTO {self.identifier(TRADES_ANALYTICS)} t USING {view} s "
            "ON t.symbol = s.symbol AND t.window_start = s.window_start "
            f"AND t.window_start >= {spark_timestamp(first)} "
            "WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *"
        )
        with self._commit(tag, final=final):
            return self._merged(sql, view)

    def score(
        self, sql: str, trades: Sequence[Run], window_ms: int, stored: Sequence[Run]
    ) -> pa.Table:
        """`transforms.scoring_sql`'s `sql` in one Spark plan over the tables (see `TableSink`)."""
        trades_in, stored_in = scoring_inputs(
            trades, window_ms, stored, spark_timestamp, self.identifier
        )
        return self.spark.sql(
            sql, trades=self.spark.sql(trades_in), stored=self.spark.sql(stored_in)
        ).toArrow()

    def alert_keys(self, runs: Sequence[Run]) -> pa.Table:
        """(symbol, window_start, alert_type) of price_alerts inside `runs` (at most 100)."""
        wanted = any_of([window_clause(r, spark_timestamp) for r in runs])
        result = self.spark.sql(
            f"SELECT symbol, window_start, alert_type FROM {self.identifier(PRICE_ALERTS)} "
            f"WHERE {wanted}"
        ).toArrow()
        schema = TABLE_SCHEMAS[PRICE_ALERTS]
        return result.cast(pa.schema([schema.field(name) for name in result.schema.names]))

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

        `record` (the batch's record and lags) goes in the final commit's userMetadata.
        """
        scope = any_of([window_clause(r, spark_timestamp, "t.") for r in runs])
        view = self._source(rows, PRICE_ALERTS)
        sql = (
            f"MERGE INTO {self.identifier(PRICE_ALERTS)} t USING {view} s "
            "ON t.symbol = s.symbol AND t.window_start = s.window_start "
            "AND t.alert_type = s.alert_type "
            "WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT * "
            f"WHEN NOT MATCHED BY SOURCE AND ({scope}) THEN DELETE"
        )
        extra = dict(record or {}) if final else {}
        with self._commit(tag, final=final, **extra):
            merged = self._merged(sql, view)
        if final and not any(merged):
            # A MERGE that changed nothing may leave no commit to carry the batch's transaction
            # and record: an empty append does (Delta skips it when the MERGE recorded them).
            self._append_empty(PRICE_ALERTS, commit_metadata(tag, final=True, **extra), tag)
        return merged

    def record_batch(self, tag: BatchTag, record: Mapping[str, str]) -> None:
        """An empty append to price_alerts carrying `record`, made whenever the batch runs.

        Delta-Spark records no commit without an action (``skipRecordingEmptyCommits``), so it
        carries an app transaction of its own, never the batch's: app ``<query id>:records``,
        whose version is the table's latest, higher with every commit, so Delta never skips it.
        """
        records = BatchTag(f"{tag.app_id}{RECORDS_APP_SUFFIX}", self._version(PRICE_ALERTS))
        self._append_empty(PRICE_ALERTS, commit_metadata(tag, final=False, **record), records)

    def maintain(self, retention_hours: int) -> None:
        """Compact the small batch files of every table and vacuum the replaced ones."""
        # The retention is chosen by the caller (tests use 0); Delta's 7-day guard would refuse it.
        self.spark.conf.set(_RETENTION_CHECK_CONF, "false")
        try:
            for name in ALL_TABLES:
                self.spark.sql(f"OPTIMIZE {self.identifier(name)}")
                self.spark.sql(f"VACUUM {self.identifier(name)} RETAIN {retention_hours} HOURS")
                logger.info("maintenance of %s: optimized and vacuumed", self.identifier(name))
        finally:
            self.spark.conf.unset(_RETENTION_CHECK_CONF)
