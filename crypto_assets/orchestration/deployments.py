"""The one place a deployment picks its resources and says where its data lives."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dagster as dg

from crypto_assets.orchestration.analytics_assets import (
    build_streaming_analytics,
    streaming_analytics_job,
)
from crypto_assets.orchestration.checks import LANDING_TRADES
from crypto_assets.orchestration.freshness import (
    DEFAULT_FRESHNESS,
    FreshnessWindows,
    with_freshness,
)
from crypto_assets.orchestration.ingestion import build_producer_job, landing_trades
from crypto_assets.orchestration.lakehouse import TABLES, LocalLakehouse
from crypto_assets.orchestration.resources import (
    LAKEHOUSE_KEY,
    SERVERLESS_KEY,
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
    build_producer_sensor,
    landing_files_sensor,
)
from crypto_assets.settings import Settings


def local_resources(settings: Settings) -> dict[str, object]:
    """The embedded default: Spark in the step's process, tables under CRYPTO_DATA_DIR."""
    # Spark runs in the step's own process: no step launcher, no Pipes client, so neither is
    # registered (the Launchpads and the resources page would list them for nothing).
    return {
        SETTINGS_KEY: CryptoSettings.from_settings(settings),
        SPARK_KEY: LocalSpark(),
        LAKEHOUSE_KEY: LocalLakehouse(data_dir=str(settings.data_dir)),
    }


def databricks_resources(settings: Settings) -> dict[str, object]:
    """Spark on Databricks: a classic cluster (step launcher) or serverless compute (Pipes).

    On a cluster the whole step runs there, so its Spark session is the cluster's; on serverless
    the step stays here and submits the same analytics as a Pipes task.
    """
    # Imported here: the local deployment never loads the Databricks integration.
    from crypto_assets.databricks.lakehouse import DatabricksLakehouse  # noqa: PLC0415
    from crypto_assets.databricks.serverless import ServerlessAnalytics  # noqa: PLC0415
    from crypto_assets.databricks.step_launcher import databricks_step_launcher  # noqa: PLC0415

    compute: dict[str, object]
    if settings.databricks_compute == "cluster":
        compute = {STEP_LAUNCHER_KEY: databricks_step_launcher(settings)}
    else:
        compute = {SERVERLESS_KEY: ServerlessAnalytics()}
    return {
        SETTINGS_KEY: CryptoSettings.from_settings(settings),
        SPARK_KEY: DatabricksSpark(),
        LAKEHOUSE_KEY: DatabricksLakehouse(
            catalog=settings.catalog,
            schema_name=settings.schema_name,
            host=settings.databricks_host,
        ),
        **compute,
    }


def resources_for(settings: Settings) -> dict[str, object]:
    """The resources of `settings.deployment`."""
    if settings.deployment == "databricks":
        return databricks_resources(settings)
    return local_resources(settings)


def data_locations(settings: Settings) -> dict[str, dict[str, Any]]:
    """Definition metadata per asset: where its data lives on `settings.deployment`.

    Locally a path (the landing folder, each Delta table's folder); on Databricks the landing
    Volume and each table's Unity Catalog name `catalog.schema.table` (`dagster/table_name`).
    """
    if settings.deployment == "databricks":
        volume = f"/Volumes/{settings.catalog}/{settings.schema_name}/crypto_landing/trades/"
        return {
            LANDING_TRADES: {"landing_location": dg.MetadataValue.path(volume)},
            **{
                table: {"dagster/table_name": f"{settings.catalog}.{settings.schema_name}.{table}"}
                for table in TABLES
            },
        }
    lakehouse = LocalLakehouse(data_dir=str(settings.data_dir))
    return {
        LANDING_TRADES: {"landing_location": dg.MetadataValue.path(str(settings.landing_dir))},
        **{
            table: {"table_location": dg.MetadataValue.path(lakehouse.table_location(table))}
            for table in TABLES
        },
    }


def with_locations(
    assets: Sequence[dg.AssetSpec | dg.AssetsDefinition], settings: Settings
) -> list[dg.AssetSpec | dg.AssetsDefinition]:
    """`assets` with their data location (`data_locations`) added to their metadata."""
    locations = data_locations(settings)

    def locate(spec: dg.AssetSpec) -> dg.AssetSpec:
        return spec.merge_attributes(metadata=locations.get(spec.key.to_user_string(), {}))

    return list(dg.map_asset_specs(locate, assets))


def build_definitions(
    settings: Settings, freshness: FreshnessWindows = DEFAULT_FRESHNESS
) -> dg.Definitions:
    """All assets (with their locations and freshness policies), checks, jobs, sensors, schedule."""
    resources = resources_for(settings)
    producer_job = build_producer_job(resources[SETTINGS_KEY])  # type: ignore[arg-type]
    analytics = build_streaming_analytics(settings, resources.keys())
    assets = with_locations([landing_trades, analytics], settings)
    return dg.Definitions(
        assets=with_freshness(assets, freshness),
        jobs=[producer_job, streaming_analytics_job],
        sensors=[
            build_producer_sensor(producer_job),
            build_continuous_analytics_sensor(settings.analytics_trigger_seconds),
            landing_files_sensor,
        ],
        schedules=[streaming_analytics_schedule],
        resources=resources,
    )
