"""The three Spark assets: one streaming query turns landing files into three Delta tables.

`trades_raw`, `trades_analytics` and `price_alerts` are written by the same query, so they are
one multi-asset that is never subset, built per deployment (`build_streaming_analytics`). Where
the deployment runs Spark elsewhere it requires that compute's resource too: the Databricks step
launcher (`pyspark_step_launcher`) on a cluster, or Pipes (`databricks_pipes`) on serverless and
on a cluster with DATABRICKS_LAUNCHER=pipes; locally neither exists.

`once` (the default) processes every new landing file (Spark's availableNow trigger) and stops;
`continuous` keeps the query running with a processing-time trigger until the run is terminated,
for the lowest latency, and reports materializations as batches complete.

A run materializes only the tables it changed (the specs are skippable), each with its own
numbers; a run that found no new files records an observation of trades_raw instead, so the latest
materializations keep describing the latest data. The checks are evaluated on every run.
"""

import datetime as dt
import queue
import threading
import time
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import dagster as dg
from pydantic import Field

import crypto_assets
from crypto_assets.analytics.lakehouse import (
    PRICE_ALERTS,
    TABLES,
    TRADES_ANALYTICS,
    TRADES_RAW,
    Lakehouse,
)
from crypto_assets.analytics.schema import TABLE_SCHEMAS
from crypto_assets.errors import CryptoAssetsError
from crypto_assets.orchestration.checks import (
    ANALYTICS_CHECK_SPECS,
    LAG_BATCHES_JUDGED,
    LANDING_TRADES,
    CheckLimits,
    check_checkpoint_bounded,
    check_key_columns_not_null,
    check_landing_to_table_lag,
    check_trade_lag_p95,
    check_unique_trade_ids,
    check_vwap_within_low_high,
)
from crypto_assets.orchestration.code_versions import ANALYTICS_CODE_VERSION
from crypto_assets.orchestration.deployments import build_deployment
from crypto_assets.orchestration.metadata import (
    alerts_metadata,
    analytics_metadata,
    column_schema,
    lag_metadata,
    progress_metadata,
    size_metadata,
    table_metadata,
    trades_raw_metadata,
)
from crypto_assets.orchestration.resources import (
    LAKEHOUSE_KEY,
    PIPES_KEY,
    SETTINGS_KEY,
    SPARK_KEY,
    STEP_LAUNCHER_KEY,
)
from crypto_assets.orchestration.run_config import CheckedConfig
from crypto_assets.orchestration.worker import run_in_worker
from crypto_assets.settings import Settings, setting_field

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from crypto_assets.analytics.pipeline import AnalyticsSummary

ANALYTICS_JOB = "streaming_analytics_job"
# Where Spark runs, when not in the step's own process: a Databricks cluster through the step
# launcher, or Databricks (serverless or a cluster) through Pipes. A deployment registers the one
# it uses, if any.
COMPUTE_KEYS = frozenset({STEP_LAUNCHER_KEY, PIPES_KEY})

_TABLE_DEFINITIONS = (
    (
        TRADES_RAW,
        LANDING_TRADES,
        "Every landed trade exactly once, with its source file and ingest lag.",
        "bronze",
    ),
    (
        TRADES_ANALYTICS,
        TRADES_RAW,
        "Per symbol and tumbling window: VWAP, OHLC, volume, buy/sell ratio.",
        "gold",
    ),
    (
        PRICE_ALERTS,
        TRADES_ANALYTICS,
        "PRICE_MOVE and VOLUME_SPIKE alerts per symbol and window.",
        "gold",
    ),
)
# Skippable: a run that changed nothing in a table reports no materialization of it, so the
# latest materialization keeps describing the table's latest change.
TABLE_SPECS = tuple(
    dg.AssetSpec(
        table,
        deps=[upstream],
        description=description,
        group_name="analytics",
        kinds={"spark", "delta"},
        tags={"layer": layer, "source": "binance"},
        code_version=ANALYTICS_CODE_VERSION,
        metadata={"dagster/column_schema": column_schema(TABLE_SCHEMAS[table])},
        skippable=True,
    )
    for table, upstream, description, layer in _TABLE_DEFINITIONS
)


class StreamingAnalyticsConfig(CheckedConfig):
    """Run config of the analytics: once (availableNow) or a continuous query.

    `trigger_seconds` is ANALYTICS_TRIGGER_SECONDS' field (`setting_field`: its default and
    bounds are the model's). `StreamingAnalyticsConfig.for_settings` derives the class the asset
    uses, whose `trigger_seconds` default (what the Launchpad pre-fills) is the deployment's.
    """

    mode: Literal["once", "continuous"] = Field(
        "once", description="once: all new files then stop; continuous: until terminated"
    )
    trigger_seconds: float = setting_field(
        "analytics_trigger_seconds",
        description="Continuous mode's trigger interval (ANALYTICS_TRIGGER_SECONDS)",
    )
    report_interval_seconds: float = Field(
        60.0, gt=0, le=3600, description="Continuous mode: how often materializations are reported"
    )
    max_lag_seconds: float = Field(
        300.0, gt=0, le=86400, description="check_landing_to_table_lag: how long a file may wait"
    )
    max_p95_lag_seconds: float = Field(
        30.0,
        gt=0,
        le=86400,
        description="check_trade_lag_p95: bound of p95 trade → trades_raw and trade → alert lag",
    )
    max_checkpoint_files: int = Field(
        2_000, gt=0, description="check_checkpoint_bounded: most files the checkpoint may hold"
    )
    max_checkpoint_bytes: int = Field(
        256 * 1024 * 1024,
        gt=0,
        description="check_checkpoint_bounded: most bytes the checkpoint may hold",
    )

    def limits(self) -> CheckLimits:
        """The bounds the checks judge by."""
        return CheckLimits.of(self.model_dump())

    @classmethod
    def for_settings(cls, settings: Settings) -> "type[StreamingAnalyticsConfig]":
        """This config class with the deployment's ANALYTICS_TRIGGER_SECONDS as its default."""
        return cls.with_defaults(trigger_seconds=settings.analytics_trigger_seconds)


def table_views(
    lakehouse: Lakehouse,
    summary: "AnalyticsSummary | None",
    written_since: dt.datetime | None,
) -> dict[str, dict[str, Any]]:
    """Each table's own metadata, read from the tables (and `summary`'s counts when known).

    Every table gets its size and the lag of the trades reaching it (trade -> trades_raw, -> its
    window, -> alert); trades_raw also the checkpoint's size and Spark's progress.
    """

    def counts(table: str, total: int) -> dict[str, Any]:
        if summary is None:
            return table_metadata(total)
        written, revised = summary.rows_written.get(table, 0), summary.rows_revised.get(table, 0)
        return table_metadata(total, written, revised)

    def lag(name: str) -> dict[str, Any]:
        return {} if summary is None else lag_metadata(summary.lag, name)

    raw = table_metadata(lakehouse.count_rows(TRADES_RAW))
    analytics = counts(TRADES_ANALYTICS, lakehouse.count_rows(TRADES_ANALYTICS))
    raw.update(size_metadata(lakehouse.table_size(TRADES_RAW), lakehouse.checkpoint_size()))
    if summary is not None:
        raw.update(trades_raw_metadata(summary))
        raw.update(progress_metadata(summary.progress))
        # Late trades are in trades_raw but in no window: a trades_analytics number.
        analytics["late_rows"] = summary.late_rows
    return {
        TRADES_RAW: {**raw, **lag("raw")},
        TRADES_ANALYTICS: {
            **analytics,
            **size_metadata(lakehouse.table_size(TRADES_ANALYTICS)),
            **analytics_metadata(lakehouse.read_table(TRADES_ANALYTICS), written_since),
            **lag("window"),
        },
        PRICE_ALERTS: {
            **counts(PRICE_ALERTS, lakehouse.count_rows(PRICE_ALERTS)),
            **size_metadata(lakehouse.table_size(PRICE_ALERTS)),
            **alerts_metadata(lakehouse.read_table(PRICE_ALERTS)),
            **lag("alert"),
        },
    }


def changed_tables(summary: "AnalyticsSummary") -> tuple[str, ...]:
    """The tables a run changed, so the ones it materializes.

    trades_raw when the run read files (even when every trade was a duplicate, the table is
    then up to date with landing); trades_analytics and price_alerts when it wrote windows (new
    or revised), since alerts are recomputed exactly for the windows written.
    """
    changed = []
    if summary.files_processed:
        changed.append(TRADES_RAW)
    if summary.rows_written.get(TRADES_ANALYTICS, 0) or summary.rows_revised.get(
        TRADES_ANALYTICS, 0
    ):
        changed.extend([TRADES_ANALYTICS, PRICE_ALERTS])
    return tuple(changed)


def check_results(lakehouse: Lakehouse, limits: CheckLimits) -> dict[str, list]:
    """The data, lag and checkpoint checks, grouped by the table they judge."""
    raw = lakehouse.read_table(TRADES_RAW, columns=["symbol", "trade_id", "source_file"])
    analytics = lakehouse.read_table(TRADES_ANALYTICS)
    processed = [] if raw is None else raw["source_file"].unique().to_pylist()
    return {
        TRADES_RAW: [
            check_unique_trade_ids(raw),
            check_landing_to_table_lag(
                lakehouse.landing_files(), processed, time.time(), limits.max_lag_seconds
            ),
            check_trade_lag_p95(
                lakehouse.recent_batch_lags(LAG_BATCHES_JUDGED), limits.max_p95_lag_seconds
            ),
            check_checkpoint_bounded(
                lakehouse.checkpoint_size(),
                limits.max_checkpoint_files,
                limits.max_checkpoint_bytes,
            ),
        ],
        TRADES_ANALYTICS: [
            check_vwap_within_low_high(analytics),
            check_key_columns_not_null(analytics),
        ],
        PRICE_ALERTS: [],
    }


def run_results(
    lakehouse: Lakehouse,
    summary: "AnalyticsSummary",
    limits: CheckLimits,
    written_since: dt.datetime | None,
) -> list[dg.MaterializeResult | dg.AssetCheckResult]:
    """What a run reports: a materialization of each table it changed, every check's result."""
    changed = changed_tables(summary)
    views = table_views(lakehouse, summary, written_since) if changed else {}
    checks = check_results(lakehouse, limits)
    results: list[dg.MaterializeResult | dg.AssetCheckResult] = []
    for table in TABLES:
        if table in changed:
            results.append(
                dg.MaterializeResult(
                    asset_key=table, metadata=views[table], check_results=checks[table]
                )
            )
        else:
            # The checks still judge the table as it is; only its materialization is skipped.
            results.extend(checks[table])
    return results


def no_change_observation(seconds: float) -> dg.AssetObservation:
    """Recorded instead of materializations by a run that found no new landing files."""
    return dg.AssetObservation(
        asset_key=TRADES_RAW,
        description="An analytics run found no new landing files; no table changed.",
        metadata={"processing_seconds": round(seconds, 2)},
    )


def run_continuous(
    spark: "SparkSession",
    settings: Settings,
    config: StreamingAnalyticsConfig,
    report: Callable[[int], None],
    summary: "AnalyticsSummary | None" = None,
) -> "AnalyticsSummary":
    """Run the continuous query in a worker thread; `report(batch_id)` at most once per interval.

    `summary` is filled as batches complete, for `report` to read the run's lags so far.

    Dagster's termination (`DagsterExecutionInterruptedError` in this thread) is the way a
    continuous run ends: the query stops between batches and its summary is returned. Anything
    else that interrupts this thread stops the query the same way, then propagates.
    """
    from crypto_assets.analytics.pipeline import run_analytics  # noqa: PLC0415 - needs pyspark

    stop = threading.Event()
    batches: queue.Queue[int] = queue.Queue()

    def on_step(table: str, batch_id: int) -> None:
        if table == PRICE_ALERTS:  # the batch's last write
            batches.put(batch_id)

    target = build_deployment(settings).analytics_target(spark)

    def work() -> "AnalyticsSummary":
        return run_analytics(
            spark,
            settings,
            target,
            mode="continuous",
            trigger_seconds=config.trigger_seconds,
            stop_event=stop,
            on_step=on_step,
            summary=summary,
        )

    return run_in_worker(
        work,
        stop.set,
        batches,
        report,
        name="streaming-analytics",
        min_interval_seconds=config.report_interval_seconds,
        stop_on=(dg.DagsterExecutionInterruptedError,),
    )


def _streaming_analytics(
    context: dg.AssetExecutionContext, config: StreamingAnalyticsConfig
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """The body of `streaming_analytics` (see `build_streaming_analytics`)."""
    from crypto_assets.analytics.pipeline import (  # noqa: PLC0415 - needs pyspark
        AnalyticsSummary,
        run_analytics,
    )

    settings: Settings = context.resources.settings.to_settings()
    pipes = getattr(context.resources, PIPES_KEY, None)
    if pipes is not None:  # Databricks through Pipes: the same analytics, as a Databricks task
        yield from pipes.run(context, settings, config.model_dump())
        return
    lakehouse: Lakehouse = context.resources.lakehouse
    spark = context.resources.spark.get_session()
    # Where the code came from: on a Databricks cluster, the wheel the step launcher installed.
    context.log.debug("crypto_assets imported from %s", Path(crypto_assets.__file__).parent)

    last_report = dt.datetime.now(dt.UTC)
    live = AnalyticsSummary()  # filled by the continuous query as its batches complete

    def report(batch_id: int) -> None:
        nonlocal last_report
        now = dt.datetime.now(dt.UTC)
        for table, metadata in table_views(lakehouse, live, last_report).items():
            context.log_event(
                dg.AssetMaterialization(
                    asset_key=table,
                    description=f"continuous query, after batch {batch_id}",
                    # Spark's progress, when known, is that of the batch before (the batch_id it
                    # names); the lags are this batch's (lag_batch_id).
                    metadata={"batch_id": batch_id, **metadata},
                )
            )
        last_report = now

    context.log.info("analytics (%s) over %s", config.mode, lakehouse.landing_location())
    try:
        if config.mode == "once":
            target = build_deployment(settings).analytics_target(spark)
            summary = run_analytics(spark, settings, target, mode="once")
        else:
            summary = run_continuous(spark, settings, config, report, live)
    except CryptoAssetsError as exc:
        # One actionable line in the UI instead of a traceback.
        raise dg.Failure(description=str(exc)) from exc
    if config.mode == "continuous":
        context.log.info("stopped on request (run terminated): %s", summary.summary_line())
    else:
        context.log.info("%s", summary.summary_line())
    results = run_results(lakehouse, summary, config.limits(), last_report)
    if not changed_tables(summary):
        context.log.info("no new landing files: no table changed, nothing materialized")
        context.log_event(no_change_observation(summary.seconds))
    yield from results


def build_streaming_analytics(
    settings: Settings, resource_keys: Collection[str]
) -> dg.AssetsDefinition:
    """The three tables' multi-asset, its config's defaults the deployment's settings.

    It requires the settings, Spark and lakehouse resources, and of the compute resources
    (`COMPUTE_KEYS`) those among the deployment's `resource_keys`.
    """
    config_cls = StreamingAnalyticsConfig.for_settings(settings)

    @dg.multi_asset(
        name="streaming_analytics",
        specs=list(TABLE_SPECS),
        check_specs=list(ANALYTICS_CHECK_SPECS),
        required_resource_keys={SPARK_KEY, SETTINGS_KEY, LAKEHOUSE_KEY}
        | (COMPUTE_KEYS & set(resource_keys)),
        can_subset=False,
    )
    def streaming_analytics(
        context: dg.AssetExecutionContext, config: config_cls
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        """Landing files → trades_raw → trades_analytics → price_alerts, in one streaming query."""
        yield from _streaming_analytics(context, config)

    return streaming_analytics


streaming_analytics_job = dg.define_asset_job(
    ANALYTICS_JOB,
    selection=dg.AssetSelection.assets(*TABLES),
    description="Landing files → Delta tables (availableNow by default), with their checks.",
    tags={"crypto_assets/role": "analytics"},
    # One step: run it in the run's own process, so Terminate interrupts the step itself, which
    # stops a continuous query between batches and returns; the run then ends SUCCESS, where the
    # multiprocess executor would mark it CANCELED (an ERROR event) however cleanly it stopped.
    executor_def=dg.in_process_executor,
)
