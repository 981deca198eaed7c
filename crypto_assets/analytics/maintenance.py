"""Small-file hygiene of the Delta tables: compact the many small batch files, then vacuum."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from deltalake import DeltaTable

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MaintenancePolicy:
    """Compact and vacuum every `every_batches` batches; vacuum keeps `retention_hours` of files."""

    every_batches: int = 50
    retention_hours: int = 1

    def due(self, batch_id: int) -> bool:
        """True after every `every_batches`-th batch."""
        return (batch_id + 1) % self.every_batches == 0


def compact_and_vacuum(table_path: str, retention_hours: int) -> tuple[int, int]:
    """Bin-pack small files of one table and delete unreferenced ones; (files added, deleted)."""
    table = DeltaTable(table_path)
    metrics = table.optimize.compact()
    # The retention is chosen by the caller (tests use 0); the 7-day default guard would refuse it.
    deleted = table.vacuum(
        retention_hours=retention_hours, dry_run=False, enforce_retention_duration=False
    )
    logger.info(
        "maintenance of %s: %s files compacted into %s, %s files vacuumed",
        table_path,
        metrics.get("numFilesRemoved"),
        metrics.get("numFilesAdded"),
        len(deleted),
    )
    return int(metrics.get("numFilesAdded", 0)), len(deleted)
