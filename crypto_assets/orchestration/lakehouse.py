"""Where checks, sensors and metadata read the pipeline's state: landing files and Delta tables.

`LakehouseResource` is the interface; `LocalLakehouse` reads `$CRYPTO_DATA_DIR` with delta-rs
(`deltalake`), the same tables the local analytics write; `databricks.lakehouse` reads the Unity
Catalog tables and the landing Volume. Both also tell the sizes of the query's checkpoint and of
the tables, and the lags of the latest batches (`analytics.lag`), for monitoring.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import dagster as dg
import pyarrow as pa
from deltalake import DeltaTable

from crypto_assets.analytics.lag import BatchLag, read_recent_batch_lags
from crypto_assets.analytics.landing_retention import archive_dir_for
from crypto_assets.analytics.schema import PRICE_ALERTS, QUERY_NAME, TRADES_ANALYTICS, TRADES_RAW
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


class LakehouseResource(dg.ConfigurableResource):
    """Read-only view of the landing area and the three Delta tables."""

    def landing_location(self) -> str:
        """Where the landing files are, for logs and the UI."""
        raise NotImplementedError

    def landing_files(self) -> list[LandingFile]:
        """Complete landing files, oldest name first (names start with their UTC timestamp)."""
        raise NotImplementedError

    def read_table(self, table: str, columns: list[str] | None = None) -> pa.Table | None:
        """The table's current content (selected columns), or None when it does not exist yet."""
        raise NotImplementedError

    def count_rows(self, table: str) -> int:
        """Number of rows in the table; 0 when it does not exist yet."""
        raise NotImplementedError

    def table_location(self, table: str) -> str:
        """Where the table lives, for the UI."""
        raise NotImplementedError

    def table_size(self, table: str) -> FolderSize | None:
        """The table's bytes and files; None when it does not exist yet."""
        raise NotImplementedError

    def checkpoint_size(self) -> CheckpointSize | None:
        """The analytics query's checkpoint size; None where it cannot be seen."""
        raise NotImplementedError

    def recent_batch_lags(self, limit: int) -> list[BatchLag]:
        """The lags of the latest `limit` analytics batches, newest first."""
        raise NotImplementedError


class LocalLakehouse(LakehouseResource):
    """`$CRYPTO_DATA_DIR/landing/trades/` and `$CRYPTO_DATA_DIR/delta/<table>` (delta-rs)."""

    data_dir: str

    @property
    def landing_dir(self) -> Path:
        """The directory the producer lands NDJSON files in."""
        return Path(self.data_dir) / "landing" / "trades"

    def landing_location(self) -> str:
        """The landing directory."""
        return str(self.landing_dir)

    def table_location(self, table: str) -> str:
        """The table's directory."""
        return str(Path(self.data_dir) / "delta" / table)

    def _table(self, table: str) -> DeltaTable | None:
        location = self.table_location(table)
        return DeltaTable(location) if DeltaTable.is_deltatable(location) else None

    def landing_files(self) -> list[LandingFile]:
        """Complete landing files, oldest name first."""
        return landing_files_in(self.landing_dir)

    def read_table(self, table: str, columns: list[str] | None = None) -> pa.Table | None:
        """The table's current content, or None when it does not exist yet."""
        delta = self._table(table)
        return None if delta is None else delta.to_pyarrow_table(columns=columns)

    def count_rows(self, table: str) -> int:
        """Number of rows in the table; 0 when it does not exist yet."""
        delta = self._table(table)
        return 0 if delta is None else delta.to_pyarrow_dataset().count_rows()

    def table_size(self, table: str) -> FolderSize | None:
        """What the table's folder holds on disk: live and not yet vacuumed files, its log."""
        location = Path(self.table_location(table))
        return folder_size(location) if location.is_dir() else None

    def checkpoint_size(self) -> CheckpointSize | None:
        """`$CRYPTO_DATA_DIR/checkpoints/<query>`."""
        return checkpoint_size(Path(self.data_dir) / "checkpoints" / QUERY_NAME)

    def recent_batch_lags(self, limit: int) -> list[BatchLag]:
        """From the commit metadata of price_alerts (delta-rs history)."""
        return read_recent_batch_lags(self.table_location(PRICE_ALERTS), limit)
