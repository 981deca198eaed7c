"""The three Spark assets: one streaming query turns landing files into three Delta tables.

`trades_raw`, `trades_analytics` and `price_alerts` are written by the same query, so they are
one multi-asset that is never subset, built per deployment (`build_streaming_analytics`). Where
the deployment runs Spark elsewhere it requires that compute's resource too: the Databricks step
launcher (`pyspark_step_launcher`) on a cluster, or Pipes (`databricks_pipes`) on serverless and
on a cluster with DATABRICKS_LAUNCHER=pipes; locally neither exists.

`once` (the default) processes every new landing file (Spark's availableNow trigger) and stops;
`continuous` keeps the query running with a processing-time trigger until the run is terminated,
for the lowest latency. With `follow_producer` (the runs `landing_files_sensor` starts while a
producer run is active) it also ends by itself once no producer run is queued or running: the
query stops between batches, one availableNow pass takes what landed last, and the run succeeds.

A continuous run reports materializations as batches complete, at most every
`report_interval_seconds` (5): the run's numbers so far and row counts from the Delta logs, so
a report costs the same however large the tables are (`live_views`). At its end a run
materializes the tables it changed (the specs are skippable), each with its own numbers and the
windows and alerts it wrote; a run that found no new files records an observation of trades_raw
instead, so the latest materializations keep describing the latest data. The checks are
evaluated at the end of every run, on what it wrote. Both read the rows the run wrote, by their
write time (`Lakehouse.read_written`), and row counts from the Delta logs: what a run's end
costs follows what the run wrote, never the tables' size.
"""

import dataclasses
import datetime as dt
import queue
import threading
import time
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import dagster as dg
from pydantic import Field, model_validator

import crypto_assets
from crypto_assets.analytics.lag import LAGS, RunLag
from crypto_assets.analytics.lakehouse import (
    PRICE_ALERTS,
    TABLES,
    TRADES_ANALYTICS,
    TRADES_RAW,
    Lakehouse,
)
from crypto_assets.analytics.schema import TABLE_SCHEMAS
from crypto_assets.analytics.window_runs import trade_spans
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
from crypto_assets.orchestration.producer_watch import ProducerWatch
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
# check_unique_trade_ids looks new trades up in spans of ids joined across gaps up to this.
UNIQUE_LOOKUP_JOIN_GAP = 1_000
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
        "once",
        description=(
            "once: all new files then stop; continuous: until terminated (or, with "
            "follow_producer, until no producer run is active)"
        ),
    )
    trigger_seconds: float = setting_field(
        "analytics_trigger_seconds",
        description="Continuous mode's trigger interval (ANALYTICS_TRIGGER_SECONDS)",
    )
    follow_producer: bool = Field(
        False,
        description=(
            "Continuous mode, local compute: end once no binance_producer_job run is queued or "
            "running, after one availableNow pass over what landed last (landing_files_sensor's "
            "runs)"
        ),
    )
    report_interval_seconds: float = Field(
        5.0,
        gt=0,
        le=3600,
        description="Continuous mode: how often materializations are reported, at most",
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

    @model_validator(mode="after")
    def _follow_is_continuous(self) -> "StreamingAnalyticsConfig":
        if self.follow_producer and self.mode != "continuous":
            raise ValueError("follow_producer=True: a run follows the producer in mode continuous")
        return self

    def limits(self) -> CheckLimits:
        """The bounds the checks judge by."""
        return CheckLimits.of(self.model_dump())

    @classmethod
    def for_settings(cls, settings: Settings) -> "type[StreamingAnalyticsConfig]":
        """This config class with the deployment's ANALYTICS_TRIGGER_SECONDS as its default."""
        return cls.with_defaults(trigger_seconds=settings.analytics_trigger_seconds)


def live_views(lakehouse: Lakehouse, summary: "AnalyticsSummary") -> dict[str, dict[str, Any]]:
    """Each table's metadata in a continuous run's reports: the run's numbers so far.

    Bounded, however large the tables grow: each table's row count comes from its Delta log
    (`Lakehouse.count_rows`), trades_raw's checkpoint size from the checkpoint Spark keeps
    bounded, the rest from `summary` (files, rows written and revised, lags, Spark's progress).
    No table's rows are read and no table folder is walked.
    """

    def counts(table: str) -> dict[str, Any]:
        written, revised = summary.rows_written.get(table, 0), summary.rows_revised.get(table, 0)
        return table_metadata(lakehouse.count_rows(table), written, revised)

    return {
        TRADES_RAW: {
            **table_metadata(lakehouse.count_rows(TRADES_RAW)),
            **size_metadata(None, lakehouse.checkpoint_size()),
            **trades_raw_metadata(summary),
            **progress_metadata(summary.progress),
            **lag_metadata(summary.lag, "raw"),
        },
        TRADES_ANALYTICS: {
            **counts(TRADES_ANALYTICS),
            # Late trades are in trades_raw but in no window: a trades_analytics number.
            "late_rows": summary.late_rows,
            **lag_metadata(summary.lag, "window"),
        },
        PRICE_ALERTS: {**counts(PRICE_ALERTS), **lag_metadata(summary.lag, "alert")},
    }


def table_views(
    lakehouse: Lakehouse, summary: "AnalyticsSummary | None", written_since: dt.datetime
) -> dict[str, dict[str, Any]]:
    """Each table's own metadata at the end of a run that started at `written_since`.

    `live_views` when `summary` is known (else each table's row count and the checkpoint's
    size), plus each table's size on disk and, from the rows written since `written_since`
    (`Lakehouse.read_written`), trades_analytics' windows (the newest per symbol, the last hour's
    chart, the list) and the newest alerts with their count by type.
    """
    if summary is None:
        views = {table: table_metadata(lakehouse.count_rows(table)) for table in TABLES}
        views[TRADES_RAW].update(size_metadata(None, lakehouse.checkpoint_size()))
    else:
        views = live_views(lakehouse, summary)
    views[TRADES_RAW].update(size_metadata(lakehouse.table_size(TRADES_RAW)))
    views[TRADES_ANALYTICS].update(
        {
            **size_metadata(lakehouse.table_size(TRADES_ANALYTICS)),
            **analytics_metadata(lakehouse.read_written(TRADES_ANALYTICS, written_since)),
        }
    )
    views[PRICE_ALERTS].update(
        {
            **size_metadata(lakehouse.table_size(PRICE_ALERTS)),
            **alerts_metadata(lakehouse.read_written(PRICE_ALERTS, written_since)),
        }
    )
    return views


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


def check_results(
    lakehouse: Lakehouse, limits: CheckLimits, written_since: dt.datetime
) -> dict[str, list]:
    """The data, lag and checkpoint checks of a run that started at `written_since`, grouped by
    the table they judge.

    The data checks read what the run wrote: the trades it inserted, looked up in trades_raw by
    their spans of ids and trade times (so a duplicate of an older trade is found too), and the
    windows it wrote. The lag check reads no table: the unprocessed landing files come from the
    query's checkpoint, where the deployment can tell them.
    """
    new_trades = lakehouse.read_written(
        TRADES_RAW, written_since, ["symbol", "trade_id", "trade_time"]
    )
    spans = [] if new_trades is None else trade_spans(new_trades, UNIQUE_LOOKUP_JOIN_GAP)
    trades = lakehouse.trades_in(spans) if spans else None
    windows = lakehouse.read_written(TRADES_ANALYTICS, written_since)
    landing = lakehouse.landing_files()
    return {
        TRADES_RAW: [
            check_unique_trade_ids(trades, 0 if new_trades is None else new_trades.num_rows),
            check_landing_to_table_lag(
                landing, lakehouse.unprocessed(landing), time.time(), limits.max_lag_seconds
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
            check_vwap_within_low_high(windows),
            check_key_columns_not_null(windows),
        ],
        PRICE_ALERTS: [],
    }


def run_results(
    lakehouse: Lakehouse,
    summary: "AnalyticsSummary",
    limits: CheckLimits,
    written_since: dt.datetime,
) -> list[dg.MaterializeResult | dg.AssetCheckResult]:
    """What a run that started at `written_since` reports: a materialization of each table it
    changed, every check's result."""
    changed = changed_tables(summary)
    views = table_views(lakehouse, summary, written_since) if changed else {}
    checks = check_results(lakehouse, limits, written_since)
    results: list[dg.MaterializeResult | dg.AssetCheckResult] = []
    for table in TABLES:
        if table in changed:
            results.append(
                dg.MaterializeResult(
                    asset_key=table, metadata=views[table], check_results=checks[table]
                )
            )
        else:
            # The checks are still evaluated; only the table's materialization is skipped.
            results.extend(checks[table])
    return results


def no_change_observation(seconds: float) -> dg.AssetObservation:
    """Recorded instead of materializations by a run that found no new landing files."""
    return dg.AssetObservation(
        asset_key=TRADES_RAW,
        description="An analytics run found no new landing files; no table changed.",
        metadata={"processing_seconds": round(seconds, 2)},
    )


def _added(first: dict[str, int], then: dict[str, int]) -> dict[str, int]:
    return {table: first.get(table, 0) + then.get(table, 0) for table in first.keys() | then}


def combined_summary(first: "AnalyticsSummary", then: "AnalyticsSummary") -> "AnalyticsSummary":
    """One run's summary of two parts that ran one after the other on one checkpoint.

    Counts and seconds are added and the lags merged; what describes the state at the end (the
    rows in each table, Spark's latest progress, anything else the summary holds) is `then`'s.
    """
    lag = RunLag()
    for part in (first, then):
        for name in LAGS:
            lag.histograms[name].merge(part.lag.histograms[name])
    lag.latest = then.lag.latest or first.lag.latest
    return dataclasses.replace(
        then,
        files_processed=first.files_processed + then.files_processed,
        batches=first.batches + then.batches,
        rows_written=_added(first.rows_written, then.rows_written),
        rows_revised=_added(first.rows_revised, then.rows_revised),
        rows_removed=_added(first.rows_removed, then.rows_removed),
        duplicates_skipped=first.duplicates_skipped + then.duplicates_skipped,
        late_rows=first.late_rows + then.late_rows,
        bad_rows=first.bad_rows + then.bad_rows,
        seconds=first.seconds + then.seconds,
        lag=lag,
        progress=then.progress or first.progress,
        notifications=(
            then.notifications
            if first.notifications is None or then.notifications is None
            else first.notifications.followed_by(then.notifications)
        ),
    )


def run_continuous(
    spark: "SparkSession",
    settings: Settings,
    config: StreamingAnalyticsConfig,
    report: Callable[[int], None],
    summary: "AnalyticsSummary | None" = None,
    *,
    watch: ProducerWatch | None = None,
    link: str | None = None,
) -> "AnalyticsSummary":
    """Run the continuous query in a worker thread; `report(batch_id)` at most once per interval.

    `summary` is filled as batches complete, for `report` to read the run's lags so far; `link`
    is the run's page, for the notifications of the alerts it finds.

    Dagster's termination (`DagsterExecutionInterruptedError` in this thread) ends a continuous
    run: the query stops between batches and its summary is returned. Anything else that
    interrupts this thread stops the query the same way, then propagates. With a `watch` (a run
    that follows the producer, `config.follow_producer`) the run also ends once no producer run
    is active: the watch stops the query the same way, then one availableNow pass on the same
    session and checkpoint takes what landed since its last batch, and the summary returned is
    that of both parts (`combined_summary`). A termination during that pass waits for its end.
    """
    from crypto_assets.analytics.pipeline import run_analytics  # noqa: PLC0415 - needs pyspark

    if config.follow_producer and watch is None:
        raise ValueError("a run that follows the producer needs a ProducerWatch")
    stop = threading.Event()
    batches: queue.Queue[int] = queue.Queue()

    def on_step(table: str, batch_id: int) -> None:
        if table == PRICE_ALERTS:  # the batch's last write
            batches.put(batch_id)

    target = build_deployment(settings).analytics_target(spark)

    def work() -> "AnalyticsSummary":
        continuous = run_analytics(
            spark,
            settings,
            target,
            mode="continuous",
            trigger_seconds=config.trigger_seconds,
            stop_event=stop,
            on_step=on_step,
            summary=summary,
            run_url=link,
        )
        if watch is None or not watch.producer_ended:
            return continuous
        drained = run_analytics(spark, settings, target, mode="once", run_url=link)
        return combined_summary(continuous, drained)

    if watch is not None:
        watch.start(stop)
    try:
        return run_in_worker(
            work,
            stop.set,
            batches,
            report,
            name="streaming-analytics",
            min_interval_seconds=config.report_interval_seconds,
            stop_on=(dg.DagsterExecutionInterruptedError,),
        )
    finally:
        if watch is not None:
            watch.join()  # run_in_worker set the stop event, which ends the watch


def run_url(settings: Settings, run_id: str) -> str:
    """The run's page in the Dagster UI, for the notifications of the alerts it finds."""
    return f"{settings.dagster_webserver_url}/runs/{run_id}"


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

    started = dt.datetime.now(dt.UTC)
    live = AnalyticsSummary()  # filled by the continuous query as its batches complete
    watch = ProducerWatch(context.instance) if config.follow_producer else None

    def report(batch_id: int) -> None:
        for table, metadata in live_views(lakehouse, live).items():
            context.log_event(
                dg.AssetMaterialization(
                    asset_key=table,
                    description=f"continuous query, after batch {batch_id}",
                    # Spark's progress, when known, is that of the batch before (the batch_id it
                    # names); the lags are this batch's (lag_batch_id).
                    metadata={"batch_id": batch_id, **metadata},
                )
            )

    context.log.info("analytics (%s) over %s", config.mode, lakehouse.landing_location())
    try:
        if config.mode == "once":
            target = build_deployment(settings).analytics_target(spark)
            summary = run_analytics(
                spark, settings, target, mode="once", run_url=run_url(settings, context.run.run_id)
            )
        else:
            summary = run_continuous(
                spark,
                settings,
                config,
                report,
                live,
                watch=watch,
                link=run_url(settings, context.run.run_id),
            )
    except CryptoAssetsError as exc:
        # One actionable line in the UI instead of a traceback.
        raise dg.Failure(description=str(exc)) from exc
    if watch is not None and watch.producer_ended:
        context.log.info("no producer run active: stopped, drained: %s", summary.summary_line())
    elif config.mode == "continuous":
        context.log.info("stopped on request (run terminated): %s", summary.summary_line())
    else:
        context.log.info("%s", summary.summary_line())
    # The end's report and checks read what the whole run wrote (its live reports read none).
    results = run_results(lakehouse, summary, config.limits(), started)
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
