"""All the project's Dagster definitions, with the resources of the deployment the settings name.

`build_deployment` (`deployments.py`) decides the deployment; this module turns it into Dagster
resources (by where its Spark runs) and into each asset's location metadata.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dagster as dg

from crypto_assets.analytics.lakehouse import TABLES
from crypto_assets.notifications.channels import channels_for
from crypto_assets.orchestration.alert_sensors import build_notification_sensors
from crypto_assets.orchestration.analytics_assets import (
    build_streaming_analytics,
    streaming_analytics_job,
)
from crypto_assets.orchestration.checks import LANDING_TRADES
from crypto_assets.orchestration.deployments import Deployment, build_deployment
from crypto_assets.orchestration.freshness import (
    DEFAULT_FRESHNESS,
    FreshnessWindows,
    with_freshness,
)
from crypto_assets.orchestration.ingestion import build_producer_job, landing_trades
from crypto_assets.orchestration.resources import (
    LAKEHOUSE_KEY,
    PIPES_KEY,
    SETTINGS_KEY,
    SPARK_KEY,
    STEP_LAUNCHER_KEY,
    CryptoSettings,
    DatabricksSpark,
    LocalSpark,
)
from crypto_assets.orchestration.schedules import streaming_analytics_schedule
from crypto_assets.orchestration.sensors import (
    build_continuous_analytics_sensor,
    build_landing_files_sensor,
    build_producer_sensor,
)
from crypto_assets.settings import Settings


def resources_for(deployment: Deployment) -> dict[str, object]:
    """The Dagster resources of `deployment`: its settings, lakehouse and Spark, by its compute.

    Locally Spark runs in the step's own process: no step launcher, no Pipes client, so neither
    is registered (the Launchpads and the resources page would list them for nothing). On a
    Databricks cluster with DATABRICKS_LAUNCHER=step_launcher (the default) the whole step runs
    there, so its Spark session is the cluster's; on serverless, and on a cluster with
    DATABRICKS_LAUNCHER=pipes (no DBFS), the step stays here and submits the same analytics as a
    Pipes task.
    """
    settings = deployment.settings
    resources: dict[str, object] = {
        SETTINGS_KEY: CryptoSettings.from_settings(settings),
        LAKEHOUSE_KEY: deployment.lakehouse,
    }
    if deployment.compute == "local":
        return {**resources, SPARK_KEY: LocalSpark()}
    resources[SPARK_KEY] = DatabricksSpark()
    # DATABRICKS_LAUNCHER chooses only among a cluster's launchers: serverless is always Pipes.
    if deployment.compute == "cluster" and settings.databricks_launcher == "step_launcher":
        from crypto_assets.orchestration.databricks.step_launcher import (  # noqa: PLC0415
            databricks_step_launcher,
        )

        return {**resources, STEP_LAUNCHER_KEY: databricks_step_launcher(settings)}
    from crypto_assets.orchestration.databricks.pipes import pipes_analytics  # noqa: PLC0415

    return {**resources, PIPES_KEY: pipes_analytics(settings)}


def data_locations(deployment: Deployment) -> dict[str, dict[str, Any]]:
    """Definition metadata per asset: where its data lives on `deployment`.

    Locally a path (the landing folder, each Delta table's folder); on Databricks the landing
    Volume and each table's Unity Catalog name `catalog.schema.table` (`dagster/table_name`).
    """
    locations = {
        LANDING_TRADES: deployment.landing_metadata(),
        **{table: deployment.table_metadata(table) for table in TABLES},
    }
    return {asset: _as_metadata(values) for asset, values in locations.items()}


def _as_metadata(values: dict[str, object]) -> dict[str, Any]:
    """A folder as path metadata (the UI offers to copy it); any other value as it is."""
    return {
        key: dg.MetadataValue.path(str(value)) if isinstance(value, Path) else value
        for key, value in values.items()
    }


def with_locations(
    assets: Sequence[dg.AssetSpec | dg.AssetsDefinition], deployment: Deployment
) -> list[dg.AssetSpec | dg.AssetsDefinition]:
    """`assets` with their data location (`data_locations`) added to their metadata."""
    locations = data_locations(deployment)

    def locate(spec: dg.AssetSpec) -> dg.AssetSpec:
        return spec.merge_attributes(metadata=locations.get(spec.key.to_user_string(), {}))

    return list(dg.map_asset_specs(locate, assets))


def build_definitions(
    settings: Settings, freshness: FreshnessWindows = DEFAULT_FRESHNESS
) -> dg.Definitions:
    """All assets (with their locations and freshness policies), checks, jobs, sensors, schedule."""
    channels_for(settings)  # a malformed notification setting is one line, before any run
    deployment = build_deployment(settings)
    resources = resources_for(deployment)
    producer_job = build_producer_job(resources[SETTINGS_KEY])  # type: ignore[arg-type]
    analytics = build_streaming_analytics(settings, resources.keys())
    assets = with_locations([landing_trades, analytics], deployment)
    return dg.Definitions(
        assets=with_freshness(assets, freshness),
        jobs=[producer_job, streaming_analytics_job],
        sensors=[
            build_producer_sensor(producer_job),
            build_continuous_analytics_sensor(settings.analytics_trigger_seconds),
            # A run that follows the producer watches the instance from its query's process.
            build_landing_files_sensor(follow_producer=deployment.compute == "local"),
            *build_notification_sensors(settings, producer_job),
        ],
        schedules=[streaming_analytics_schedule],
        resources=resources,
    )
