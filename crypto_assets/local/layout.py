"""Where the local deployment keeps everything: one folder, `CRYPTO_DATA_DIR`.

Every path of the local deployment is derived here from `data_dir`, so the producer, the
analytics, the lakehouse the checks read and the Dagster definitions agree (the Databricks
deployment's spool, `<data_dir>/spool/trades/`, is `databricks.volume_upload`'s):

    <data_dir>/
        landing/trades/             landing NDJSON files (the producer writes them here)
        landing/_processed/         files the analytics processed, kept for LANDING_RETENTION_HOURS
        landing/_state/             the producer's state file and lock (`ProducerFiles`)
        landing/_quarantine/        lines the producer could not parse
        checkpoints/<query>/        the streaming query's checkpoint
        checkpoints/<query>.alerts/ its alerts on their way to people (notifications on)
        delta/<table>/              the Delta tables
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from crypto_assets.producer.producer_files import DEFAULT_LANDING_FOLDER

if TYPE_CHECKING:
    from crypto_assets.settings import Settings


@dataclass(frozen=True)
class LocalLayout:
    """The folders of one data directory."""

    data_dir: Path

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalLayout:
        """The layout of `settings.data_dir` (CRYPTO_DATA_DIR)."""
        return cls(Path(settings.data_dir))

    @property
    def landing_dir(self) -> Path:
        """Where the producer lands NDJSON files."""
        return self.data_dir / "landing" / DEFAULT_LANDING_FOLDER

    @property
    def delta_dir(self) -> Path:
        """The folder of the Delta tables."""
        return self.data_dir / "delta"

    def table_path(self, table: str) -> Path:
        """The Delta table `table`'s folder."""
        return self.delta_dir / table

    def checkpoint_dir(self, query: str) -> Path:
        """The checkpoint of the streaming query `query`."""
        return self.data_dir / "checkpoints" / query

    def alerts_outbox_dir(self, query: str) -> Path:
        """The outbox of the alerts the query `query` finds (`analytics.alert_outbox`)."""
        return self.data_dir / "checkpoints" / f"{query}.alerts"
