"""Where checks, sensors and metadata read the pipeline's state: landing files and Delta tables.

`LakehouseResource` is the interface; `LocalLakehouse` reads `$CRYPTO_DATA_DIR` with delta-rs
(`deltalake`), the same tables the local analytics write. A Databricks implementation would read
the Unity Catalog tables and the landing Volume instead.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import dagster as dg
import pyarrow as pa
from deltalake import DeltaTable

from crypto_assets.analytics.schema import PRICE_ALERTS, TRADES_ANALYTICS, TRADES_RAW
from crypto_assets.landing_files import is_landing_file

TABLES = (TRADES_RAW, TRADES_ANALYTICS, PRICE_ALERTS)


class LandingFile(NamedTuple):
    """One complete landing file: its name and when it was written (epoch seconds)."""

    name: str
    modified: float


class LandingTotals(NamedTuple):
    """What a landing folder holds: complete files and the trade lines in them."""

    files: int
    rows: int


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


class LandingCounter:
    """Counts a landing folder's complete files and their non-blank lines, for `landing_trades`.

    A landing file never changes once renamed into place, so each one is read once per counter:
    a report costs a directory listing plus the files that are new since the previous one.
    """

    def __init__(self, landing_dir: Path) -> None:
        self.landing_dir = Path(landing_dir)
        self._rows: dict[str, int] = {}

    def totals(self) -> LandingTotals:
        """The folder's files and rows now."""
        names = set()
        if self.landing_dir.is_dir():
            names = {e.name for e in os.scandir(self.landing_dir) if is_landing_file(e.name)}
        for name in names - self._rows.keys():
            try:
                data = (self.landing_dir / name).read_bytes()
            except FileNotFoundError:  # removed between listing and reading
                continue
            self._rows[name] = sum(1 for line in data.split(b"\n") if line.strip())
        for name in self._rows.keys() - names:
            del self._rows[name]
        return LandingTotals(len(self._rows), sum(self._rows.values()))


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
