"""The read-only view of a deployment's data that checks, sensors and metadata read.

`Lakehouse` is the port: `local.lakehouse.LocalLakehouse` reads `$CRYPTO_DATA_DIR` with delta-rs,
`databricks.lakehouse.DatabricksLakehouse` the Unity Catalog tables and the landing Volume. Both
tell the sizes of the query's checkpoint and of the tables, and the lags of the latest batches
(`analytics.lag`), for monitoring; this module holds the shapes they answer in.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple, Protocol

import pyarrow as pa

from crypto_assets.analytics.lag import BatchLag
from crypto_assets.analytics.schema import PRICE_ALERTS, TRADES_ANALYTICS, TRADES_RAW
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

    def unprocessed(self, files: list[LandingFile]) -> list[LandingFile]:
        """Those of `files` (landing files) the analytics have not processed yet, in order.

        Where the deployment cannot tell without reading a table, all of them.
        """
        ...

    def read_table(self, table: str, columns: list[str] | None = None) -> pa.Table | None:
        """The table's current content (selected columns), or None when it does not exist yet."""
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
