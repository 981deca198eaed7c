"""The one place that knows the deployments: CRYPTO_DEPLOYMENT names one, built here.

A deployment is one object (`Deployment`) that says, for a run of these settings, where landing
files go and how they get there, what reads them and what writes the tables, where the query
checkpoints, which lakehouse the checks read, and where its Spark runs (`compute`, from which
`definitions.resources_for` picks the Dagster resources). The producer, the batch algorithm and
the transforms know none of them: they take what the deployment builds.

- ``local`` (`crypto_assets.local.deployment`): files under CRYPTO_DATA_DIR, Spark in-process.
- ``databricks`` (`crypto_assets.databricks.deployment`): the Unity Catalog Volume and tables,
  Spark on a classic cluster or serverless compute.

This module imports neither Dagster nor PySpark: the command line builds deployments too.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from crypto_assets.analytics.lakehouse import Lakehouse
    from crypto_assets.analytics.ports import AnalyticsTarget
    from crypto_assets.producer.landing_target import LandingTarget, StateFile
    from crypto_assets.settings import Settings


class Deployment(Protocol):
    """Where a run's data lives and what moves it, for one deployment and its settings."""

    settings: Settings

    @property
    def name(self) -> str:
        """CRYPTO_DEPLOYMENT's value for it."""
        ...

    @property
    def compute(self) -> str:
        """Where the analytics' Spark runs: ``local``, ``cluster`` or ``serverless``."""
        ...

    @property
    def lakehouse(self) -> Lakehouse:
        """The landing files and tables as the checks, sensors and metadata read them."""
        ...

    def landing_target(
        self, landing_dir: Path | None = None, state_path: Path | StateFile | None = ...
    ) -> LandingTarget:
        """Where a producer writes its files (`landing_dir` overrides the folder), its state."""
        ...

    def analytics_target(
        self,
        spark: SparkSession,
        *,
        max_bytes_per_trigger: int = ...,
        max_files_per_trigger: int | None = None,
    ) -> AnalyticsTarget:
        """The reader, sink and checkpoint of an analytics run, each batch bounded as given."""
        ...

    def landing_metadata(self) -> dict[str, object]:
        """Definition metadata of `landing_trades`: where the files are."""
        ...

    def table_metadata(self, table: str) -> dict[str, object]:
        """Definition metadata of a table's asset: where it is."""
        ...


def _local(settings: Settings) -> Deployment:
    from crypto_assets.local.deployment import LocalDeployment  # noqa: PLC0415

    return LocalDeployment(settings)


def _databricks(settings: Settings) -> Deployment:
    # Imported only when chosen: the local deployment never loads the Databricks SDK.
    from crypto_assets.databricks.deployment import DatabricksDeployment  # noqa: PLC0415

    return DatabricksDeployment(settings)


DEPLOYMENTS: dict[str, Callable[[Settings], Deployment]] = {
    "local": _local,
    "databricks": _databricks,
}


def build_deployment(settings: Settings) -> Deployment:
    """The deployment `settings.deployment` (CRYPTO_DEPLOYMENT) names, for `settings`."""
    return DEPLOYMENTS[settings.deployment](settings)
