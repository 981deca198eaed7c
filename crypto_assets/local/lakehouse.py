"""The local deployment's view of its data: the landing folder and the delta-rs tables.

`LocalLakehouse` answers the `analytics.lakehouse.Lakehouse` port from the paths of a
`LocalLayout`; `LandingCounter` counts the trades the landing folder holds for `landing_trades`.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from crypto_assets.analytics.lag import BatchLag, read_recent_batch_lags
from crypto_assets.analytics.lakehouse import (
    CheckpointSize,
    FolderSize,
    LandingFile,
    LandingTotals,
    checkpoint_size,
    folder_size,
    landing_files_in,
)
from crypto_assets.analytics.landing_retention import archive_dir_for
from crypto_assets.analytics.schema import (
    PRICE_ALERTS,
    QUERY_NAME,
    TABLE_SCHEMAS,
    TRADES_RAW,
    WRITE_TIME_COLUMNS,
)
from crypto_assets.analytics.sink_sql import any_of, trade_span_clause, written_clause
from crypto_assets.analytics.window_runs import TradeSpan, chunks
from crypto_assets.landing_files import is_landing_file
from crypto_assets.local.delta_sink import query_table, sql_timestamp
from crypto_assets.local.file_source_log import newest_committed_file_ms
from crypto_assets.local.layout import LocalLayout

_TRADE_KEYS = pa.schema([TABLE_SCHEMAS[TRADES_RAW].field(c) for c in ("symbol", "trade_id")])


def _landing_paths(folder: Path, recursive: bool) -> dict[str, Path]:
    """The complete landing files under `folder` by name (directly in it unless `recursive`)."""
    if not folder.is_dir():
        return {}
    if not recursive:
        return {e.name: Path(e.path) for e in os.scandir(folder) if is_landing_file(e.name)}
    return {
        name: Path(root) / name
        for root, _, names in os.walk(folder)
        for name in names
        if is_landing_file(name)
    }


def _count_lines(path: Path) -> int | None:
    """Non-blank lines of `path`; None when it is gone."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    return sum(1 for line in data.split(b"\n") if line.strip())


class LandingCounter:
    """Counts the trades a landing folder holds, for `landing_trades`: waiting or archived.

    The analytics move each processed file from the folder to the archive beside it
    (`landing/_processed/`), where it stays until LANDING_RETENTION_HOURS deletes it; the trades
    held are those of both. A landing file never changes once renamed into place and keeps its
    unique name when archived, so each is read once per counter: a report costs listing both
    folders (as many files as the retention keeps) plus reading the files new since the last.
    """

    def __init__(self, landing_dir: Path) -> None:
        self.landing_dir = Path(landing_dir)
        self.archive_dir = archive_dir_for(self.landing_dir)
        self._rows: dict[str, int] = {}

    def totals(self) -> LandingTotals:
        """The files and rows held now, waiting and archived."""
        # The folder before the archive: a file moved in between is seen twice, never missed.
        waiting = _landing_paths(self.landing_dir, recursive=False)
        archived = _landing_paths(self.archive_dir, recursive=True)
        held = {**waiting, **archived}
        for name in held.keys() - self._rows.keys():
            rows = _count_lines(held[name])
            # None: gone since listed (deleted, or archived meanwhile: counted next time).
            if rows is not None:
                self._rows[name] = rows
        for name in self._rows.keys() - held.keys():
            del self._rows[name]
        return LandingTotals(
            len(self._rows), sum(self._rows.values()), len(archived.keys() & self._rows.keys())
        )


class LocalLakehouse:
    """`<data_dir>/landing/trades/` and `<data_dir>/delta/<table>` (delta-rs) of a `LocalLayout`."""

    def __init__(self, layout: LocalLayout) -> None:
        self.layout = layout

    @property
    def landing_dir(self) -> Path:
        """The directory the producer lands NDJSON files in."""
        return self.layout.landing_dir

    def landing_location(self) -> str:
        """The landing directory."""
        return str(self.landing_dir)

    def table_location(self, table: str) -> str:
        """The table's directory."""
        return str(self.layout.table_path(table))

    def _table(self, table: str) -> DeltaTable | None:
        location = self.table_location(table)
        return DeltaTable(location) if DeltaTable.is_deltatable(location) else None

    def landing_files(self) -> list[LandingFile]:
        """Complete landing files, oldest name first."""
        return landing_files_in(self.landing_dir)

    def unprocessed(self, files: list[LandingFile]) -> list[LandingFile] | None:
        """Those of `files` modified after the newest file of the query's latest committed batch.

        Spark's file source takes files oldest first (`file_source_log`), so every file up to
        that one is processed. A file put in the folder with an older modification time (moved
        in by hand, its time kept) counts as processed here, though the query still takes it.
        """
        newest_ms = newest_committed_file_ms(self.layout.checkpoint_dir(QUERY_NAME))
        if newest_ms is None:
            return list(files)
        return [f for f in files if int(f.modified * 1000) > newest_ms]

    def read_table(self, table: str, columns: list[str] | None = None) -> pa.Table | None:
        """The table's whole current content, or None when it does not exist yet."""
        delta = self._table(table)
        return None if delta is None else delta.to_pyarrow_table(columns=columns)

    def read_written(
        self, table: str, since: dt.datetime, columns: list[str] | None = None
    ) -> pa.Table | None:
        """The rows written at or after `since`, by DataFusion over the table's Delta log.

        A file whose write-time maximum in the log is older than `since` is never opened.
        """
        delta = self._table(table)
        if delta is None:
            return None
        wanted = written_clause(WRITE_TIME_COLUMNS[table], since, sql_timestamp)
        selected = ", ".join(columns) if columns else "*"
        rows = query_table(delta, table, f"SELECT {selected} FROM {table} WHERE {wanted}")
        return rows.cast(pa.schema([TABLE_SCHEMAS[table].field(c) for c in rows.schema.names]))

    def trades_in(self, spans: Sequence[TradeSpan]) -> pa.Table:
        """(symbol, trade_id) of trades_raw's rows in `spans`, by DataFusion, `chunks` at a time."""
        delta = self._table(TRADES_RAW)
        found = [_TRADE_KEYS.empty_table()]
        if delta is None:
            return found[0]
        for piece in chunks(spans):
            wanted = any_of([trade_span_clause(span) for span in piece])
            sql = f"SELECT symbol, trade_id FROM {TRADES_RAW} WHERE {wanted}"
            found.append(query_table(delta, TRADES_RAW, sql).cast(_TRADE_KEYS))
        return pa.concat_tables(found)

    def count_rows(self, table: str) -> int:
        """Number of rows in the table; 0 when it does not exist yet.

        From the Delta log's file statistics: no data file is opened (their Parquet footers are,
        if a file has no statistics).
        """
        delta = self._table(table)
        if delta is None:
            return 0
        counts = pa.table(delta.get_add_actions(flatten=True))["num_records"]
        if counts.null_count:
            return delta.to_pyarrow_dataset().count_rows()
        return int(pc.sum(counts).as_py() or 0)

    def table_size(self, table: str) -> FolderSize | None:
        """What the table's folder holds on disk: live and not yet vacuumed files, its log."""
        location = Path(self.table_location(table))
        return folder_size(location) if location.is_dir() else None

    def checkpoint_size(self) -> CheckpointSize | None:
        """`<data_dir>/checkpoints/<query>`."""
        return checkpoint_size(self.layout.checkpoint_dir(QUERY_NAME))

    def recent_batch_lags(self, limit: int) -> list[BatchLag]:
        """From the commit metadata of price_alerts (delta-rs history)."""
        return read_recent_batch_lags(self.table_location(PRICE_ALERTS), limit)
