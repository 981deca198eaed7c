"""The read-only view of a deployment's data that checks, sensors and metadata read.

`Lakehouse` is the port: `local.lakehouse.LocalLakehouse` reads `$CRYPTO_DATA_DIR` with delta-rs,
`databricks.lakehouse.DatabricksLakehouse` the Unity Catalog tables and the landing Volume. Both
tell the sizes of the query's checkpoint and of the tables, and the lags of the latest batches
(`analytics.lag`), for monitoring; this module holds the shapes they answer in.

What a run's checks and metadata read is what the run wrote (`read_written`), never a whole
table. Every row a batch writes carries its write time (`schema.WRITE_TIME_COLUMNS`, the clock of
the process that runs the batches, which also takes the run's start), so the rows a run wrote
are those at or after its start. Both Delta readers answer that predicate by skipping files on
the min/max statistics each commit records: delta-rs (DataFusion) and Delta-Spark open only the
files whose newest write time is not older than the run, the files the run's commits added. A
MERGE that revises a row rewrites the file holding it, unchanged rows included: that file is the
run's too, and the predicate keeps only its new rows. The other way, reading the files the run's
commits added (the log after the versions the run started from), would mean leaving out those a
later batch of the run replaced, reading Parquet files by path around the log locally, and on
Databricks a Change Data Feed the tables do not have; the time predicate is one line of SQL for
both readers, through their public APIs. A lookup into older rows (`trades_in`: was a new trade
there before?) is bounded the same way, by the trade ids and trade times of the new trades.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple, Protocol

import pyarrow as pa

from crypto_assets.analytics.lag import BatchLag
from crypto_assets.analytics.schema import PRICE_ALERTS, TRADES_ANALYTICS, TRADES_RAW
from crypto_assets.analytics.window_runs import TradeSpan
from crypto_assets.landing_files import is_landing_file

TABLES = (TRADES_RAW, TRADES_ANALYTICS, PRICE_ALERTS)


class LandingFile(NamedTuple):
    """One complete landing file: its name and when it was written (epoch seconds)."""

    name: str
    modified: float


class LandingTotals(NamedTuple):
    """What a landing folder holds: complete files and the trade lines in them.

    `files` and `rows` count the files waiting in the folder and those the analytics archived
    beside it; `archived_files` the latter alone.
    """

    files: int
    rows: int
    archived_files: int = 0


class FolderSize(NamedTuple):
    """Bytes and files under a folder (or of a table)."""

    bytes: int
    files: int


class CheckpointSize(NamedTuple):
    """A streaming checkpoint's bytes and files, and the batches its offsets log still holds."""

    bytes: int
    files: int
    offsets: int


def folder_size(folder: Path) -> FolderSize:
    """Bytes and files under `folder`, recursively; zeros when it does not exist."""
    total = files = 0
    for root, _, names in os.walk(folder):
        for name in names:
            try:
                total += (Path(root) / name).stat().st_size
            except FileNotFoundError:  # removed while walking (Spark purges old batches)
                continue
            files += 1
    return FolderSize(total, files)


def checkpoint_size(checkpoint: Path) -> CheckpointSize:
    """The size of a checkpoint folder and the number of batch files in its offsets log."""
    size = folder_size(checkpoint)
    offsets = checkpoint / "offsets"
    batches = sum(1 for e in os.scandir(offsets) if e.name.isdigit()) if offsets.is_dir() else 0
    return CheckpointSize(size.bytes, size.files, batches)


def landing_files_in(folder: Path) -> list[LandingFile]:
    """The complete landing files of a local folder, oldest name first; none if it is missing."""
    if not folder.is_dir():
        return []
    files = []
    for entry in os.scandir(folder):
        if not is_landing_file(entry.name):
            continue
        try:
            files.append(LandingFile(entry.name, entry.stat().st_mtime))
        except FileNotFoundError:  # removed between listing and stat
            continue
    return sorted(files)


class Lakehouse(Protocol):
    """Read-only view of the landing area and the three Delta tables."""

    def landing_location(self) -> str:
        """Where the landing files are, for logs and the UI."""
        ...

    def landing_files(self) -> list[LandingFile]:
        """Complete landing files, oldest name first (names start with their UTC timestamp)."""
        ...

    def unprocessed(self, files: list[LandingFile]) -> list[LandingFile] | None:
        """Those of `files` (landing files) the analytics have not processed yet, in order.

        None where the deployment cannot tell without reading a table.
        """
        ...

    def read_table(self, table: str, columns: list[str] | None = None) -> pa.Table | None:
        """The table's whole current content (selected columns), or None when it does not exist.

        For a person's look at the tables (`crypto-assets show`), never for a run's checks or
        metadata: those read `read_written`.
        """
        ...

    def read_written(
        self, table: str, since: dt.datetime, columns: list[str] | None = None
    ) -> pa.Table | None:
        """The rows of `table` written at or after `since` (selected columns); None: no table.

        Only the files whose write-time statistics reach `since` are opened.
        """
        ...

    def trades_in(self, spans: Sequence[TradeSpan]) -> pa.Table:
        """(symbol, trade_id) of every trades_raw row inside `spans`, duplicates included.

        Only the files whose partition and statistics can hold a span are opened.
        """
        ...

    def count_rows(self, table: str) -> int:
        """Number of rows in the table; 0 when it does not exist yet."""
        ...

    def table_location(self, table: str) -> str:
        """Where the table lives, for the UI."""
        ...

    def table_size(self, table: str) -> FolderSize | None:
        """The table's bytes and files; None when it does not exist yet."""
        ...

    def checkpoint_size(self) -> CheckpointSize | None:
        """The analytics query's checkpoint size; None where it cannot be seen."""
        ...

    def recent_batch_lags(self, limit: int) -> list[BatchLag]:
        """The lags of the latest `limit` analytics batches, newest first."""
        ...
