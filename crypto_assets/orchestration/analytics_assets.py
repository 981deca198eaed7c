"""The three Spark assets: one streaming query turns landing files into three Delta tables.

`trades_raw`, `trades_analytics` and `price_alerts` are written by the same query, so they are
one multi-asset that is never subset. It requires the `pyspark_step_launcher` resource: nothing
locally, the Databricks step launcher when the deployment runs Spark on a cluster.

`once` (the default) processes every new landing file (Spark's availableNow trigger) and stops;
`continuous` keeps the query running with a processing-time trigger until the run is terminated,
for the lowest latency, and reports materializations as batches complete.
"""

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal

import dagster as dg
from pydantic import Field

from crypto_assets.errors import CryptoAssetsError
from crypto_assets.orchestration.checks import (
    ANALYTICS_CHECK_SPECS,
    LANDING_TRADES,
    check_key_columns_not_null,
    check_landing_to_table_lag,
    check_unique_trade_ids,
    check_vwap_within_low_high,
)
from crypto_assets.orchestration.lakehouse import (
    PRICE_ALERTS,
    TABLES,
    TRADES_ANALYTICS,
    TRADES_RAW,
    LakehouseResource,
)
from crypto_assets.orchestration.metadata import (
    alerts_metadata,
    analytics_metadata,
    run_metadata,
    table_metadata,
)
from crypto_assets.orchestration.resources import (
    LAKEHOUSE_KEY,
    SETTINGS_KEY,
    SPARK_KEY,
    STEP_LAUNCHER_KEY,
)
from crypto_assets.orchestration.worker import run_in_worker
from crypto_assets.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from crypto_assets.analytics.pipeline import AnalyticsSummary

ANALYTICS_JOB = "streaming_analytics_job"

TABLE_SPECS = (
    dg.AssetSpec(
        TRADES_RAW,
        deps=[LANDING_TRADES],
        description="Every landed trade exactly once, with its source file and ingest lag.",
        group_name="analytics",
        kinds={"spark", "delta"},
    ),
    dg.AssetSpec(
        TRADES_ANALYTICS,
        deps=[TRADES_RAW],
        description="Per symbol and tumbling window: VWAP, OHLC, volume, buy/sell ratio.",
        group_name="analytics",
        kinds={"spark", "delta"},
    ),
    dg.AssetSpec(
        PRICE_ALERTS,
        deps=[TRADES_ANALYTICS],
        description="PRICE_MOVE and VOLUME_SPIKE alerts per symbol and window.",
        group_name="analytics",
        kinds={"spark", "delta"},
    ),
)


class StreamingAnalyticsConfig(dg.Config):
    """Run config of the analytics: once (availableNow) or a continuous query."""

    mode: Literal["once", "continuous"] = Field(
        "once", description="once: all new files then stop; continuous: until terminated"
    )
    trigger_seconds: float = Field(10.0, gt=0, description="Continuous mode's trigger interval")
    report_interval_seconds: float = Field(
        60.0, gt=0, description="Continuous mode: how often materializations are reported"
    )
    max_lag_seconds: float = Field(
        300.0, gt=0, description="check_landing_to_table_lag: how long a file may wait"
    )


def _table_metadata(lakehouse: LakehouseResource, summary: "AnalyticsSummary | None") -> dict:
    """Per table: row count, rows written this run (when known) and location."""
    return {
        table: table_metadata(
            lakehouse.count_rows(table),
            None if summary is None else summary.rows_written.get(table, 0),
            lakehouse.table_location(table),
        )
        for table in TABLES
    }


def table_views(
    lakehouse: LakehouseResource, summary: "AnalyticsSummary | None"
) -> dict[str, dict[str, Any]]:
    """The metadata of each of the three tables, read from the tables themselves."""
    tables = _table_metadata(lakehouse, summary)
    shared = {} if summary is None else run_metadata(summary)
    return {
        TRADES_RAW: {**tables[TRADES_RAW], **shared},
        TRADES_ANALYTICS: {
            **tables[TRADES_ANALYTICS],
            **shared,
            **analytics_metadata(lakehouse.read_table(TRADES_ANALYTICS)),
        },
        PRICE_ALERTS: {
            **tables[PRICE_ALERTS],
            **shared,
            **alerts_metadata(lakehouse.read_table(PRICE_ALERTS)),
        },
    }


def check_results(lakehouse: LakehouseResource, max_lag_seconds: float) -> dict[str, list]:
    """The four data checks, grouped by the table they judge."""
    raw = lakehouse.read_table(TRADES_RAW, columns=["symbol", "trade_id", "source_file"])
    analytics = lakehouse.read_table(TRADES_ANALYTICS)
    processed = [] if raw is None else raw["source_file"].unique().to_pylist()
    return {
        TRADES_RAW: [
            check_unique_trade_ids(raw),
            check_landing_to_table_lag(
                lakehouse.landing_files(), processed, time.time(), max_lag_seconds
            ),
        ],
        TRADES_ANALYTICS: [
            check_vwap_within_low_high(analytics),
            check_key_columns_not_null(analytics),
        ],
        PRICE_ALERTS: [],
    }


def run_continuous(
    spark: "SparkSession",
    settings: Settings,
    config: StreamingAnalyticsConfig,
    report: Callable[[int], None],
) -> "AnalyticsSummary":
    """Run the continuous query in a worker thread; `report(batch_id)` at most once per interval.

    Whatever interrupts this thread (Dagster's termination included) stops the query cleanly
    (the current batch completes) before the exception propagates.
    """
    from crypto_assets.analytics.pipeline import run_analytics  # noqa: PLC0415 - needs pyspark

    stop = threading.Event()
    batches: queue.Queue[int] = queue.Queue()

    def on_step(table: str, batch_id: int) -> None:
        if table == PRICE_ALERTS:  # the batch's last write
            batches.put(batch_id)

    def work() -> "AnalyticsSummary":
        return run_analytics(
            spark,
            settings,
            mode="continuous",
            trigger_seconds=config.trigger_seconds,
            stop_event=stop,
            on_step=on_step,
        )

    return run_in_worker(
        work,
        stop.set,
        batches,
        report,
        name="streaming-analytics",
        min_interval_seconds=config.report_interval_seconds,
    )


@dg.multi_asset(
    name="streaming_analytics",
    specs=list(TABLE_SPECS),
    check_specs=list(ANALYTICS_CHECK_SPECS),
    required_resource_keys={STEP_LAUNCHER_KEY, SPARK_KEY, SETTINGS_KEY, LAKEHOUSE_KEY},
    can_subset=False,
)
def streaming_analytics(
    context: dg.AssetExecutionContext, config: StreamingAnalyticsConfig
) -> Iterator[dg.MaterializeResult]:
    """Landing files → trades_raw → trades_analytics → price_alerts, in one streaming query."""
    from crypto_assets.analytics.pipeline import run_analytics  # noqa: PLC0415 - needs pyspark

    settings: Settings = context.resources.settings.to_settings()
    lakehouse: LakehouseResource = context.resources.lakehouse
    spark = context.resources.spark.get_session()

    def report(batch_id: int) -> None:
        for table, metadata in table_views(lakehouse, None).items():
            context.log_event(
                dg.AssetMaterialization(
                    asset_key=table,
                    description=f"continuous query, after batch {batch_id}",
                    metadata={**metadata, "batch_id": batch_id},
                )
            )

    context.log.info("analytics (%s) over %s", config.mode, settings.landing_dir)
    try:
        if config.mode == "once":
            summary = run_analytics(spark, settings, mode="once")
        else:
            summary = run_continuous(spark, settings, config, report)
    except CryptoAssetsError as exc:
        # One actionable line in the UI instead of a traceback.
        raise dg.Failure(description=str(exc)) from exc
    context.log.info("%s", summary.summary_line())
    views = table_views(lakehouse, summary)
    checks = check_results(lakehouse, config.max_lag_seconds)
    for table in (TRADES_RAW, TRADES_ANALYTICS, PRICE_ALERTS):
        yield dg.MaterializeResult(
            asset_key=table, metadata=views[table], check_results=checks[table]
        )


streaming_analytics_job = dg.define_asset_job(
    ANALYTICS_JOB,
    selection=dg.AssetSelection.assets(*TABLES),
    description="Landing files → Delta tables (availableNow by default), with their checks.",
    tags={"crypto_assets/role": "analytics"},
)
