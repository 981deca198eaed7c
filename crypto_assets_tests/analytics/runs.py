"""One analytics run of the local deployment, with the batch bounds a test asks for."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crypto_assets.analytics.pipeline import run_analytics
from crypto_assets.analytics.ports import DEFAULT_MAX_BYTES_PER_TRIGGER
from crypto_assets.local.deployment import LocalDeployment

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from crypto_assets.analytics.batch import AnalyticsSummary
    from crypto_assets.settings import Settings


def run_local(
    spark: SparkSession,
    settings: Settings,
    *,
    max_bytes_per_trigger: int = DEFAULT_MAX_BYTES_PER_TRIGGER,
    max_files_per_trigger: int | None = None,
    **options: Any,
) -> AnalyticsSummary:
    """`run_analytics` on the local deployment of `settings` (`options`: its keywords)."""
    target = LocalDeployment(settings).analytics_target(
        spark,
        max_bytes_per_trigger=max_bytes_per_trigger,
        max_files_per_trigger=max_files_per_trigger,
    )
    return run_analytics(spark, settings, target, **options)
