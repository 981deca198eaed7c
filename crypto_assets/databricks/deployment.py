"""The Databricks deployment: one object that says where a run's data lives and who moves it.

Landing files spooled locally and uploaded to the Unity Catalog Volume (`VolumeUploader`, which
keeps the producer's state on the Volume too); read there by Auto Loader (`AutoLoaderReader`);
the tables written with Delta-Spark in Unity Catalog (`SparkDeltaSink`); checkpoint and schema
location on the Volume (`VolumeLayout`); `DatabricksLakehouse` for checks and metadata. Spark
runs on a classic cluster or serverless compute (`compute`, DATABRICKS_COMPUTE).

Off Databricks (an emulated cluster, tests) the reader falls back to Spark's JSON file source
and the tables are path tables in the Volume's ``_tables`` folder, or under `volume_root`
standing in for the whole Volume.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from crypto_assets.analytics.ports import DEFAULT_MAX_BYTES_PER_TRIGGER, AnalyticsTarget
from crypto_assets.analytics.schema import QUERY_NAME
from crypto_assets.analytics.spark_session import on_databricks
from crypto_assets.databricks.lakehouse import DatabricksLakehouse
from crypto_assets.databricks.layout import VolumeLayout
from crypto_assets.databricks.volume_upload import VolumeUploader, default_spool_dir
from crypto_assets.databricks.workspace import workspace_client
from crypto_assets.producer.landing_target import LandingTarget, StateFile
from crypto_assets.settings import SettingsError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from crypto_assets.settings import Settings


@dataclass(frozen=True)
class DatabricksDeployment:
    """The Volume and tables of `settings.catalog`.`settings.schema_name` (`VolumeLayout`).

    `volume_root`: a local folder standing in for the Volume (tests, off Databricks).
    """

    settings: Settings
    volume_root: Path | None = None
    name: ClassVar[str] = "databricks"

    @property
    def compute(self) -> str:
        """Where the analytics' Spark runs: ``cluster`` or ``serverless``.

        How a run gets there: a cluster through the step launcher or Pipes (DATABRICKS_LAUNCHER),
        serverless always through Pipes (`definitions.resources_for`).
        """
        return self.settings.databricks_compute

    @property
    def layout(self) -> VolumeLayout:
        """The Volume's paths and the tables' names."""
        return VolumeLayout.from_settings(self.settings)

    def landing_target(
        self,
        landing_dir: Path | None = None,
        state_path: Path | StateFile | None = StateFile.BESIDE_LANDING,
    ) -> LandingTarget:
        """A local spool (`landing_dir`, default under CRYPTO_DATA_DIR) uploaded to the Volume.

        The producer's state is kept on the Volume, so a state path of its own is refused.
        """
        if state_path is not StateFile.BESIDE_LANDING:
            raise SettingsError(
                f"state file {state_path}: the Databricks deployment keeps the producer's state "
                f"on the Volume ({self.layout.producer_state_path})"
            )
        upload = VolumeUploader(
            workspace_client(self.settings),
            self.layout,
            landing_dir or default_spool_dir(self.settings.data_dir),
        )
        return LandingTarget(upload.spool_dir, upload.state_path, upload)

    def analytics_target(
        self,
        spark: SparkSession,
        *,
        max_bytes_per_trigger: int = DEFAULT_MAX_BYTES_PER_TRIGGER,
        max_files_per_trigger: int | None = None,
    ) -> AnalyticsTarget:
        """Auto Loader on the landing Volume, Delta-Spark tables, the Volume's checkpoint."""
        # Imported where a run asks: building the deployment (Dagster's process) loads no Spark.
        from crypto_assets.databricks.autoloader_reader import AutoLoaderReader  # noqa: PLC0415
        from crypto_assets.databricks.spark_delta_sink import (  # noqa: PLC0415
            SparkDeltaSink,
            layout_identifier,
        )

        layout, databricks = self.layout, on_databricks()
        if self.volume_root is not None:
            layout = dataclasses.replace(layout, stand_in=str(self.volume_root))
            databricks = False  # a stand-in folder: path tables, Spark's JSON file source
        landing, checkpoint = Path(layout.landing_dir), Path(layout.checkpoint_dir(QUERY_NAME))
        schemas = layout.schema_location(QUERY_NAME)
        identifier = layout_identifier(layout, on_databricks=databricks)
        reader = AutoLoaderReader(
            str(landing),
            schemas,
            on_databricks=databricks,
            max_bytes_per_trigger=max_bytes_per_trigger,
            max_files_per_trigger=max_files_per_trigger,
        )
        return AnalyticsTarget(
            landing,
            checkpoint,
            reader,
            SparkDeltaSink(spark, identifier),
            Path(layout.alerts_outbox_dir(QUERY_NAME)),
            missing_landing="run crypto-assets databricks-setup, then the producer",
        )

    @property
    def lakehouse(self) -> DatabricksLakehouse:
        """The Volume (mounted, or through the Files API) and the Unity Catalog tables."""
        return DatabricksLakehouse(self.layout, self.settings)

    def landing_metadata(self) -> dict[str, object]:
        """Definition metadata of the landing asset: the Volume's landing folder."""
        return {"landing_location": Path(self.layout.landing_dir)}

    def table_metadata(self, table: str) -> dict[str, object]:
        """Definition metadata of a table asset: its Unity Catalog name (`dagster/table_name`)."""
        return {"dagster/table_name": f"{self.layout.catalog}.{self.layout.schema}.{table}"}
