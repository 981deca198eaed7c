"""Which reader, sink and checkpoint a run of the analytics uses: the local or Databricks flavour.

- ``local``: landing files under ``data_dir`` read as bytes (`LocalLandingReader`), the Delta
  tables written with delta-rs under ``data_dir/delta`` (`DeltaSink`).
- ``databricks``: the Volume's landing JSON read by Auto Loader (`AutoLoaderReader`), the tables
  written with Delta-Spark (`SparkDeltaSink`) in Unity Catalog, checkpoint and schema location
  on the Volume. Asked for off Databricks (an emulated cluster, tests), it reads with Spark's
  JSON file source and writes path-based tables in the Volume's ``_tables`` folder, or under
  `volume_root` standing in for the Volume.

The batch algorithm (`batch.BatchProcessor`) is the same for both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from crypto_assets.analytics.autoloader_reader import AutoLoaderReader
from crypto_assets.analytics.batch import LandingReader, TableSink
from crypto_assets.analytics.delta_sink import DeltaSink
from crypto_assets.analytics.landing_reader import (
    DEFAULT_MAX_BYTES_PER_TRIGGER,
    LocalLandingReader,
)
from crypto_assets.analytics.landing_retention import LandingRetention
from crypto_assets.analytics.schema import QUERY_NAME
from crypto_assets.analytics.spark_delta_sink import (
    SparkDeltaSink,
    layout_identifier,
    path_identifier,
)
from crypto_assets.analytics.spark_session import on_databricks
from crypto_assets.databricks.layout import LANDING_FOLDER, VolumeLayout

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from crypto_assets.settings import Settings

FlavourName = Literal["local", "databricks"]
FLAVOURS: tuple[FlavourName, ...] = ("local", "databricks")


class StreamingReader(LandingReader, Protocol):
    """A `LandingReader` that also opens the landing stream."""

    def stream(self, spark: SparkSession) -> DataFrame:
        """The streaming DataFrame the batches are cut from."""
        ...


class ManagedSink(TableSink, Protocol):
    """A `TableSink` that creates its tables and counts their rows."""

    def ensure_tables(self) -> None:
        """Create any missing table."""
        ...

    def row_count(self, name: str) -> int:
        """Rows in `name`."""
        ...


@dataclass(frozen=True)
class Flavour:
    """What one run reads, writes and checkpoints to."""

    name: FlavourName
    landing_dir: Path
    checkpoint: Path
    reader: StreamingReader
    sink: ManagedSink


def default_flavour() -> FlavourName:
    """``databricks`` inside a Databricks Runtime, else ``local``."""
    return "databricks" if on_databricks() else "local"


def build_flavour(
    name: FlavourName | None,
    spark: SparkSession,
    settings: Settings,
    *,
    max_bytes_per_trigger: int = DEFAULT_MAX_BYTES_PER_TRIGGER,
    max_files_per_trigger: int | None = None,
    volume_root: Path | None = None,
) -> Flavour:
    """The flavour `name` (None: `default_flavour`) for `settings`."""
    name = name or default_flavour()
    if name == "local":
        landing = settings.landing_dir
        checkpoint = settings.data_dir / "checkpoints" / QUERY_NAME
        hours = settings.landing_retention_hours
        retention = None if hours is None else LandingRetention.for_landing(landing, hours)
        reader = LocalLandingReader(
            landing,
            max_bytes_per_trigger,
            max_files_per_trigger,
            checkpoint_dir=checkpoint,
            retention=retention,
        )
        return Flavour(
            name, landing, checkpoint, reader, DeltaSink(settings.data_dir / "delta", spark)
        )
    if name != "databricks":
        raise ValueError(f"unknown analytics flavour {name!r}: one of {', '.join(FLAVOURS)}")
    layout = VolumeLayout.from_settings(settings)
    databricks = on_databricks()
    if volume_root is None:
        landing, checkpoint = Path(layout.landing_dir), Path(layout.checkpoint_dir(QUERY_NAME))
        schemas = layout.schema_location(QUERY_NAME)
        identifier = layout_identifier(layout, on_databricks=databricks)
    else:
        landing = volume_root / LANDING_FOLDER
        checkpoint = volume_root / "_checkpoints" / QUERY_NAME
        schemas = str(volume_root / "_schemas" / QUERY_NAME)
        identifier = path_identifier(volume_root / "_tables")
    reader = AutoLoaderReader(
        str(landing),
        schemas,
        on_databricks=databricks,
        max_bytes_per_trigger=max_bytes_per_trigger,
        max_files_per_trigger=max_files_per_trigger,
    )
    return Flavour(name, landing, checkpoint, reader, SparkDeltaSink(spark, identifier))
