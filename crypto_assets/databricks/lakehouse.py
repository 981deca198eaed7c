"""The Databricks deployment's view of its data: the landing Volume and the Delta tables.

Where Spark runs (the cluster, the serverless task), the Volume is a local path (`/Volumes/...`)
and the tables are read through the active Spark session. In Dagster's own process (the landing
sensor) there is no Spark and no `/Volumes`: the landing folder is listed with the Files API.
A run's reads are SQL predicates that Delta-Spark answers from its log: row counts from the
files' statistics (``count(*)``), the rows a run wrote and the trades of its spans by data
skipping on min/max statistics.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from crypto_assets.analytics.lag import BatchLag, recent_batch_lags
from crypto_assets.analytics.lakehouse import (
    CheckpointSize,
    FolderSize,
    LandingFile,
    checkpoint_size,
    landing_files_in,
)
from crypto_assets.analytics.schema import (
    PRICE_ALERTS,
    QUERY_NAME,
    TABLE_SCHEMAS,
    TRADES_RAW,
    WRITE_TIME_COLUMNS,
)
from crypto_assets.analytics.sink_sql import any_of, trade_span_clause, written_clause
from crypto_assets.analytics.window_runs import TradeSpan, chunks
from crypto_assets.databricks.layout import VolumeLayout
from crypto_assets.databricks.workspace import workspace_client
from crypto_assets.landing_files import is_landing_file
from crypto_assets.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# Commits of price_alerts read for the latest batches' lags (about one per batch).
_HISTORY_DEPTH = 200
_TRADE_KEYS = pa.schema([TABLE_SCHEMAS[TRADES_RAW].field(c) for c in ("symbol", "trade_id")])


def _typed(rows: pa.Table, table: str) -> pa.Table:
    """`rows` (columns of `table`) cast to the table's Arrow types."""
    return rows.cast(pa.schema([TABLE_SCHEMAS[table].field(c) for c in rows.schema.names]))


class DatabricksLakehouse:
    """`/Volumes/<catalog>/<schema>/crypto_landing/trades/` and the tables of `VolumeLayout`.

    `settings` name the workspace the Files API lists the Volume on, off Databricks compute.
    """

    def __init__(self, layout: VolumeLayout, settings: Settings) -> None:
        self.layout = layout
        self.settings = settings

    def _identifier(self, table: str) -> str:
        # Imported here: Dagster's own process (the sensor) lists files and never loads pyspark.
        from crypto_assets.analytics.spark_session import on_databricks  # noqa: PLC0415
        from crypto_assets.databricks.spark_delta_sink import layout_identifier  # noqa: PLC0415

        return layout_identifier(self.layout, on_databricks=on_databricks())(table)

    def landing_location(self) -> str:
        """The landing folder on the Volume."""
        return self.layout.landing_dir

    def table_location(self, table: str) -> str:
        """The table's Unity Catalog name."""
        return f"{self.layout.catalog}.{self.layout.schema}.{table}"

    def landing_files(self) -> list[LandingFile]:
        """Complete landing files on the Volume, oldest name first."""
        folder = Path(self.layout.landing_dir)
        if folder.is_dir():  # on Databricks compute the Volume is mounted
            return landing_files_in(folder)
        client = workspace_client(self.settings)
        return sorted(
            LandingFile(entry.name, (entry.last_modified or 0) / 1000)
            for entry in client.files.list_directory_contents(self.layout.landing_dir)
            if entry.name and not entry.is_directory and is_landing_file(entry.name)
        )

    def unprocessed(self, files: list[LandingFile]) -> list[LandingFile] | None:
        """None: what Auto Loader processed is in its checkpoint's own store, unread here, and the
        Volume keeps every processed file, so only trades_raw's source files would tell.

        The landing sensor's cursor tells the files it handed to a run from newer ones.
        """
        return None

    def _spark(self) -> SparkSession:
        from pyspark.sql import SparkSession  # noqa: PLC0415 - only where Spark runs

        session = SparkSession.getActiveSession()
        if session is None:
            raise RuntimeError("the Databricks tables are read where Spark runs (no session here)")
        return session

    def _exists(self, table: str) -> bool:
        spark = self._spark()
        try:
            spark.sql(f"DESCRIBE DETAIL {self._identifier(table)}").collect()
        except Exception:
            return False
        return True

    def read_table(self, table: str, columns: list[str] | None = None) -> pa.Table | None:
        """The table's whole current content (selected columns), or None when it does not exist."""
        if not self._exists(table):
            return None
        frame = self._spark().table(self._identifier(table))
        return (frame.select(*columns) if columns else frame).toArrow()

    def read_written(
        self, table: str, since: dt.datetime, columns: list[str] | None = None
    ) -> pa.Table | None:
        """The rows written at or after `since`; Delta-Spark skips the older files by statistics."""
        from crypto_assets.databricks.spark_delta_sink import spark_timestamp  # noqa: PLC0415

        if not self._exists(table):
            return None
        wanted = written_clause(WRITE_TIME_COLUMNS[table], since, spark_timestamp)
        selected = ", ".join(columns) if columns else "*"
        rows = self._spark().sql(f"SELECT {selected} FROM {self._identifier(table)} WHERE {wanted}")
        return _typed(rows.toArrow(), table)

    def trades_in(self, spans: Sequence[TradeSpan]) -> pa.Table:
        """(symbol, trade_id) of trades_raw's rows in `spans`, by data skipping, in `chunks`."""
        found = [_TRADE_KEYS.empty_table()]
        if not spans or not self._exists(TRADES_RAW):
            return found[0]
        for piece in chunks(spans):
            wanted = any_of([trade_span_clause(span) for span in piece])
            sql = f"SELECT symbol, trade_id FROM {self._identifier(TRADES_RAW)} WHERE {wanted}"
            found.append(self._spark().sql(sql).toArrow().cast(_TRADE_KEYS))
        return pa.concat_tables(found)

    def count_rows(self, table: str) -> int:
        """Number of rows in the table; 0 when it does not exist yet.

        ``count(*)`` without a filter: Delta-Spark answers it from the log's per-file record
        counts (its metadata-only query optimization) without reading a data file.
        """
        if not self._exists(table):
            return 0
        return int(self._spark().sql(f"SELECT count(*) FROM {self._identifier(table)}").first()[0])

    def table_size(self, table: str) -> FolderSize | None:
        """``DESCRIBE DETAIL``'s sizeInBytes and numFiles (the current version's files)."""
        try:
            detail = self._spark().sql(f"DESCRIBE DETAIL {self._identifier(table)}").first()
        except Exception:  # not created yet
            return None
        return FolderSize(int(detail["sizeInBytes"] or 0), int(detail["numFiles"] or 0))

    def checkpoint_size(self) -> CheckpointSize | None:
        """The checkpoint folder on the Volume, where it is mounted (on Databricks compute)."""
        folder = Path(self.layout.checkpoint_dir(QUERY_NAME))
        return checkpoint_size(folder) if folder.is_dir() else None

    def recent_batch_lags(self, limit: int) -> list[BatchLag]:
        """From the userMetadata of price_alerts' latest commits (``DESCRIBE HISTORY``)."""
        try:
            rows = (
                self._spark()
                .sql(f"DESCRIBE HISTORY {self._identifier(PRICE_ALERTS)} LIMIT {_HISTORY_DEPTH}")
                .select("version", "userMetadata")
                .collect()
            )
        except Exception:  # not created yet
            return []
        ordered = sorted(rows, key=lambda r: -r["version"])
        return recent_batch_lags(({"userMetadata": r["userMetadata"]} for r in ordered), limit)
