"""Where the Databricks deployment keeps everything: one Unity Catalog Volume and three tables.

Every path of the deployment is derived here from `CATALOG` and `SCHEMA`, so the producer's
upload, `databricks-setup`, the analytics on the cluster and the Dagster definitions agree:

    /Volumes/<catalog>/<schema>/crypto_landing/
        trades/                     landing NDJSON files (the producer uploads them here)
        _producer/state.json        the producer's state file
        _checkpoints/<query>/       the streaming query's checkpoint
        _checkpoints/<query>.alerts/ its alerts on their way to people (notifications on)
        _schemas/<query>/           Auto Loader's schema location
        _tables/<table>/            the tables, when Spark runs off Databricks (no Unity Catalog)
        _dagster/                   what Dagster ships to the cluster (Pipes, the package)

    <catalog>.<schema>.<table>      the Delta tables in Unity Catalog
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from crypto_assets.producer.producer_files import DEFAULT_LANDING_FOLDER

if TYPE_CHECKING:
    from crypto_assets.settings import Settings

VOLUME = "crypto_landing"
LANDING_FOLDER = DEFAULT_LANDING_FOLDER
# The folders `databricks-setup` creates inside the Volume.
FOLDERS = (LANDING_FOLDER, "_producer", "_checkpoints", "_schemas", "_tables", "_dagster")


def quoted(*parts: str) -> str:
    """A SQL identifier of `parts`, each back-quoted (names may hold characters SQL reserves)."""
    return ".".join(f"`{part.replace('`', '``')}`" for part in parts)


@dataclass(frozen=True)
class VolumeLayout:
    """The Volume and table names of one catalog and schema."""

    catalog: str
    schema: str
    volume: str = VOLUME
    # A local folder standing in for the Volume (tests, Spark off Databricks); None: the Volume.
    stand_in: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> VolumeLayout:
        """The layout of `settings.catalog` and `settings.schema_name`."""
        return cls(settings.catalog, settings.schema_name)

    @property
    def full_volume_name(self) -> str:
        """`catalog.schema.volume`, as Unity Catalog names the Volume."""
        return f"{self.catalog}.{self.schema}.{self.volume}"

    @property
    def root(self) -> str:
        """The Volume's path: `/Volumes/<catalog>/<schema>/<volume>` (or its `stand_in`)."""
        return self.stand_in or f"/Volumes/{self.catalog}/{self.schema}/{self.volume}"

    def folder(self, name: str) -> str:
        """A folder of the Volume (one of `FOLDERS`)."""
        return f"{self.root}/{name}"

    @property
    def landing_dir(self) -> str:
        """Where the landing NDJSON files are."""
        return self.folder(LANDING_FOLDER)

    @property
    def producer_state_path(self) -> str:
        """The producer's state file."""
        return f"{self.folder('_producer')}/state.json"

    def checkpoint_dir(self, query: str) -> str:
        """The checkpoint of the streaming query `query`."""
        return f"{self.folder('_checkpoints')}/{query}"

    def alerts_outbox_dir(self, query: str) -> str:
        """The outbox of the alerts the query `query` finds (`analytics.alert_outbox`)."""
        return f"{self.folder('_checkpoints')}/{query}.alerts"

    def schema_location(self, query: str) -> str:
        """Auto Loader's schema location for the query `query`."""
        return f"{self.folder('_schemas')}/{query}"

    @property
    def staging_dir(self) -> str:
        """Where Dagster stages what it sends to the cluster."""
        return self.folder("_dagster")

    def table_name(self, table: str) -> str:
        """The table's Unity Catalog name, `catalog.schema.table`, quoted for SQL."""
        return quoted(self.catalog, self.schema, table)
