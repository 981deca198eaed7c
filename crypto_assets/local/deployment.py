"""The local deployment: one object that says where a run's data lives and who moves it.

Landing files in a folder under CRYPTO_DATA_DIR, read by `LocalLandingReader`; the tables written
with delta-rs (`DeltaSink`); the checkpoint beside them; `LocalLakehouse` for checks and
metadata. Spark runs in the process that asks (`compute = "local"`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from crypto_assets.analytics.landing_retention import LandingRetention
from crypto_assets.analytics.ports import DEFAULT_MAX_BYTES_PER_TRIGGER, AnalyticsTarget
from crypto_assets.analytics.schema import QUERY_NAME
from crypto_assets.local.delta_sink import DeltaSink
from crypto_assets.local.lakehouse import LocalLakehouse
from crypto_assets.local.layout import LocalLayout
from crypto_assets.producer.landing_target import LandingTarget, StateFile

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from crypto_assets.settings import Settings


@dataclass(frozen=True)
class LocalDeployment:
    """Everything under `settings.data_dir` (`LocalLayout`)."""

    settings: Settings
    name: ClassVar[str] = "local"
    # Where the analytics' Spark runs: in the process of the step that asks for it.
    compute: ClassVar[str] = "local"

    @property
    def layout(self) -> LocalLayout:
        """The folders under CRYPTO_DATA_DIR."""
        return LocalLayout.from_settings(self.settings)

    def landing_target(
        self,
        landing_dir: Path | None = None,
        state_path: Path | StateFile | None = StateFile.BESIDE_LANDING,
    ) -> LandingTarget:
        """The landing folder (`landing_dir`, default the layout's) and the producer's state."""
        return LandingTarget(landing_dir or self.layout.landing_dir, state_path)

    def analytics_target(
        self,
        spark: SparkSession,
        *,
        max_bytes_per_trigger: int = DEFAULT_MAX_BYTES_PER_TRIGGER,
        max_files_per_trigger: int | None = None,
    ) -> AnalyticsTarget:
        """The landing folder read as bytes, the delta-rs tables, the query's checkpoint."""
        # Imported where a run asks: building the deployment (Dagster's process) loads no Spark.
        from crypto_assets.local.landing_reader import LocalLandingReader  # noqa: PLC0415

        layout = self.layout
        checkpoint = layout.checkpoint_dir(QUERY_NAME)
        hours = self.settings.landing_retention_hours
        retention = (
            None if hours is None else LandingRetention.for_landing(layout.landing_dir, hours)
        )
        reader = LocalLandingReader(
            layout.landing_dir,
            max_bytes_per_trigger,
            max_files_per_trigger,
            checkpoint_dir=checkpoint,
            retention=retention,
        )
        sink = DeltaSink(layout.delta_dir)
        outbox = layout.alerts_outbox_dir(QUERY_NAME)
        return AnalyticsTarget(layout.landing_dir, checkpoint, reader, sink, outbox)

    @property
    def lakehouse(self) -> LocalLakehouse:
        """The landing folder and the tables, read with delta-rs."""
        return LocalLakehouse(self.layout)

    def landing_metadata(self) -> dict[str, object]:
        """Definition metadata of the landing asset: its folder (a path in the UI)."""
        return {"landing_location": self.layout.landing_dir}

    def table_metadata(self, table: str) -> dict[str, object]:
        """Definition metadata of a table asset: its folder (a path in the UI)."""
        return {"table_location": self.layout.table_path(table)}
