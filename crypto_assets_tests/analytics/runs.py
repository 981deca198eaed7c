"""One analytics run of the local deployment, with the batch bounds a test asks for; summaries
as plain facts to compare."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crypto_assets.analytics.batch import AnalyticsSummary
from crypto_assets.analytics.pipeline import run_analytics
from crypto_assets.analytics.ports import DEFAULT_MAX_BYTES_PER_TRIGGER
from crypto_assets.local.deployment import LocalDeployment

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

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


def summary_facts(summary: AnalyticsSummary) -> dict[str, Any]:
    """What a run's summary says, as plain values: counts per table, batch totals, lag counts."""
    return {
        "files_processed": summary.files_processed,
        "batches": summary.batches,
        "rows_written": dict(summary.rows_written),
        "rows_revised": dict(summary.rows_revised),
        "rows_removed": dict(summary.rows_removed),
        "duplicates_skipped": summary.duplicates_skipped,
        "late_rows": summary.late_rows,
        "bad_rows": summary.bad_rows,
        "lag_counts": {name: stats.count for name, stats in summary.lag.stats().items()},
        "latest_lag_batch": None if summary.lag.latest is None else summary.lag.latest.batch_id,
    }


def run_counted(spark: SparkSession, settings: Settings, **options: Any) -> AnalyticsSummary:
    """`run_local`, checking that the summary read back from the run's commits equals the one
    counted in this process as its batches ran."""
    live = AnalyticsSummary()
    summary = run_local(spark, settings, summary=live, **options)
    assert summary_facts(summary) == summary_facts(live)
    return summary
