"""The one place a deployment picks its resources; everything else is the same on both."""

from __future__ import annotations

import dagster as dg

from crypto_assets.errors import CryptoAssetsError
from crypto_assets.orchestration.analytics_assets import (
    streaming_analytics,
    streaming_analytics_job,
)
from crypto_assets.orchestration.freshness import (
    DEFAULT_FRESHNESS,
    FreshnessWindows,
    with_freshness,
)
from crypto_assets.orchestration.ingestion import build_producer_job, landing_trades
from crypto_assets.orchestration.lakehouse import LocalLakehouse
from crypto_assets.orchestration.resources import (
    LAKEHOUSE_KEY,
    SETTINGS_KEY,
    SPARK_KEY,
    STEP_LAUNCHER_KEY,
    CryptoSettings,
    LocalSpark,
)
from crypto_assets.orchestration.schedules import streaming_analytics_schedule
from crypto_assets.orchestration.sensors import build_producer_sensor, landing_files_sensor
from crypto_assets.settings import Settings


def local_resources(settings: Settings) -> dict[str, object]:
    """The embedded default: Spark in the step's process, tables under CRYPTO_DATA_DIR."""
    return {
        SETTINGS_KEY: CryptoSettings.from_settings(settings),
        SPARK_KEY: LocalSpark(),
        LAKEHOUSE_KEY: LocalLakehouse(data_dir=str(settings.data_dir)),
        # Spark runs in the step's own process, so there is nothing to launch.
        STEP_LAUNCHER_KEY: dg.ResourceDefinition.none_resource(),
    }


def resources_for(settings: Settings) -> dict[str, object]:
    """The resources of `settings.deployment`."""
    if settings.deployment == "local":
        return local_resources(settings)
    raise CryptoAssetsError(
        f"CRYPTO_DEPLOYMENT={settings.deployment!r} is not available yet: use 'local'"
    )


def build_definitions(
    settings: Settings, freshness: FreshnessWindows = DEFAULT_FRESHNESS
) -> dg.Definitions:
    """All assets (with their freshness policies), checks, jobs, sensors and the schedule."""
    resources = resources_for(settings)
    producer_job = build_producer_job(resources[SETTINGS_KEY])  # type: ignore[arg-type]
    return dg.Definitions(
        assets=with_freshness([landing_trades, streaming_analytics], freshness),
        jobs=[producer_job, streaming_analytics_job],
        sensors=[build_producer_sensor(producer_job), landing_files_sensor],
        schedules=[streaming_analytics_schedule],
        resources=resources,
    )
