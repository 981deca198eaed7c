"""Ingestion: the `landing_trades` asset and the producer op that materializes it.

The producer runs in a worker thread while the op's own thread reports `landing_trades`
materializations every `report_interval_seconds` (not per file). When Dagster terminates the run
it raises in the op's thread: that is the producer's stop request, so it lands the current batch,
the op logs what it landed and returns, and the run ends SUCCESS (a stop is not an error).
"""

import contextlib
import queue
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import dagster as dg
from pydantic import Field, field_validator

from crypto_assets.errors import CryptoAssetsError
from crypto_assets.local.lakehouse import LandingCounter
from crypto_assets.orchestration.checks import LANDING_TRADES
from crypto_assets.orchestration.code_versions import PRODUCER_CODE_VERSION
from crypto_assets.orchestration.deployments import build_deployment
from crypto_assets.orchestration.metadata import LANDING_SCHEMA, column_schema, producer_metadata
from crypto_assets.orchestration.resources import SETTINGS_KEY, CryptoSettings
from crypto_assets.orchestration.run_config import CheckedConfig, upper_bound
from crypto_assets.orchestration.worker import run_in_worker
from crypto_assets.producer.landing_target import LandingTarget, LandingUpload
from crypto_assets.producer.producer import (
    DEFAULT_MAX_PENDING_TRADES,
    DEFAULT_PROGRESS_SECONDS,
    Producer,
    ProducerConfig,
    ProducerStats,
    ProducerSummary,
    default_rest_url,
)
from crypto_assets.producer.quiet_pairs import QuietPairs
from crypto_assets.replay.source import (
    REPLAY_WARNING,
    TradeSource,
    carried_pairs,
    check_pairs,
    open_source,
)
from crypto_assets.settings import Settings, check_setting, parse_pairs, setting_field

PRODUCER_JOB = "binance_producer_job"
PRODUCER_OP = "produce_trades"

landing_trades = dg.AssetSpec(
    LANDING_TRADES,
    description=(
        "Binance trades landed as NDJSON files, one trade per line. Written by the "
        f"`{PRODUCER_OP}` op of `{PRODUCER_JOB}`: launch the job, or turn on "
        "`binance_producer_sensor`, which starts it and keeps one run going. Each "
        "materialization reports what landed since the previous one, and the trades "
        "(`dagster/row_count`, the Row count) and files the landing folder holds: those waiting "
        "in landing/trades/ and those the analytics archived to landing/_processed/, until "
        "LANDING_RETENTION_HOURS deletes them."
    ),
    group_name="ingestion",
    kinds={"python", "websocket", "json"},
    tags={"layer": "landing", "source": "binance"},
    code_version=PRODUCER_CODE_VERSION,
    metadata={
        "file_pattern": "landing/trades/trades_<YYYYmmdd>_<HHMMSS>_<hex>.json",
        "dagster/column_schema": column_schema(LANDING_SCHEMA),
    },
)

# The longest run in minutes, RUN_DURATION_MINUTES' bound: duration_seconds has the same one.
_MAX_MINUTES = upper_bound(Settings.model_fields["run_duration_minutes"])


class ProduceTradesConfig(CheckedConfig):
    """Run config of the producer op; its defaults are the deployment's settings.

    `batch_interval_seconds`, `max_trades_per_batch` and `duration_minutes` are the fields of
    BATCH_INTERVAL_SECONDS, MAX_TRADES_PER_BATCH and RUN_DURATION_MINUTES (`setting_field`: their
    default and bounds are the model's). `ProduceTradesConfig.for_settings` derives the class the
    job uses, whose defaults (what the Launchpad pre-fills) are the deployment's values of them.
    `pairs` is unset by default: the deployment's TRADING_PAIRS, narrowed on a replay to those
    the recording carries (`run_pairs`), so the demo has no silent pairs; set, it is checked as
    TRADING_PAIRS is. `ws_url` and `rest_url` are checked as BINANCE_WS_URL and BINANCE_REST_URL.
    """

    pairs: list[str] | None = Field(
        None,
        description="Binance symbols to subscribe to, e.g. [btcusdt, ethusdt]; unset: "
        "TRADING_PAIRS (on a replay, those of them it carries)",
    )
    batch_interval_seconds: float = setting_field("batch_interval_seconds")
    max_trades_per_batch: int = setting_field("max_trades_per_batch")
    max_pending_trades: int | None = Field(
        None,
        ge=1,
        le=100_000_000,
        description="Trades kept in memory while the landing disk is full (at least "
        "max_trades_per_batch); beyond, the oldest are dropped and back-filled from REST; "
        f"default {DEFAULT_MAX_PENDING_TRADES} or one batch if larger",
    )
    # RUN_DURATION_MINUTES' field, but a number: `continuous` says "none" here.
    duration_minutes: float = setting_field(
        "run_duration_minutes",
        description="How long to produce (RUN_DURATION_MINUTES); ignored when continuous",
    )
    duration_seconds: float | None = Field(
        None,
        gt=0,
        le=_MAX_MINUTES * 60,
        description="How long to produce, in seconds: overrides minutes",
    )
    continuous: bool = Field(
        False, description="Produce until the run is terminated (RUN_DURATION_MINUTES=none)"
    )
    source: Literal["default", "auto", "live", "replay"] = Field(
        "default", description="auto, live or replay; 'default' takes CRYPTO_SOURCE"
    )
    ws_url: str | None = Field(
        None, description="Explicit websocket base URL (e.g. a replay server); overrides source"
    )
    rest_url: str | None = Field(None, description="REST base for gap filling; default derived")
    report_interval_seconds: float = Field(
        30.0, gt=0, le=3600, description="How often landing_trades materializations are reported"
    )
    progress_interval_seconds: float = Field(
        DEFAULT_PROGRESS_SECONDS,
        gt=0,
        le=3600,
        description="How often the run's log gets a progress line",
    )
    quiet_pair_seconds: float = Field(
        120.0, gt=0, le=86400, description="A pair without a trade this long is reported quiet"
    )

    @field_validator("pairs")
    @classmethod
    def _pairs(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else list(parse_pairs(",".join(value), "pairs"))

    @field_validator("ws_url")
    @classmethod
    def _ws_url(cls, value: str | None) -> str | None:
        if value is not None:
            check_setting("binance_ws_url", value, "ws_url")
        return value

    @field_validator("rest_url")
    @classmethod
    def _rest_url(cls, value: str | None) -> str | None:
        if value is not None:
            check_setting("binance_rest_url", value, "rest_url")
        return value

    @classmethod
    def for_settings(cls, settings: Settings) -> "type[ProduceTradesConfig]":
        """This config class with the deployment's producer settings as its defaults.

        A continuous deployment (RUN_DURATION_MINUTES=none) pre-fills `continuous` and keeps
        the model's `duration_minutes` for a run that turns it off.
        """
        defaults = {
            "batch_interval_seconds": settings.batch_interval_seconds,
            "max_trades_per_batch": settings.max_trades_per_batch,
            "continuous": settings.run_duration_minutes is None,
        }
        if settings.run_duration_minutes is not None:
            defaults["duration_minutes"] = settings.run_duration_minutes
        return cls.with_defaults(**defaults)

    def duration(self) -> float | None:
        """Seconds to produce, or None to produce until stopped."""
        if self.continuous:
            return None
        if self.duration_seconds is not None:
            return self.duration_seconds
        return self.duration_minutes * 60


@contextlib.contextmanager
def trade_source(
    config: ProduceTradesConfig, settings: Settings, landing_dir: Path
) -> Iterator[TradeSource]:
    """The endpoint to read: the configured URL, else what `source` resolves to (maybe a replay).

    A replay continues the market the producer's state in `landing_dir` says was landed.
    """
    if config.ws_url:
        rest = config.rest_url or default_rest_url(config.ws_url, settings.binance_rest_url)
        kind = "replay" if config.source == "replay" else "live"
        yield TradeSource(kind, config.ws_url.rstrip("/"), rest)
        return
    source = settings.source if config.source == "default" else config.source
    chosen = settings.replace(source=source)
    if config.pairs is not None:  # the live probe subscribes to the run's own pairs
        chosen = chosen.replace(trading_pairs=tuple(config.pairs))
    with open_source(chosen, landing_dir) as source:
        yield source


def run_pairs(
    config: ProduceTradesConfig, settings: Settings, source: TradeSource
) -> tuple[tuple[str, ...], str | None]:
    """The pairs to produce, and a line saying why when they are not all of TRADING_PAIRS.

    The config's when set; else TRADING_PAIRS, on a replay only those the recording carries
    (all of them if it carries none or cannot say: `check_pairs` then warns).
    """
    if config.pairs is not None:
        return tuple(config.pairs), None
    pairs = settings.trading_pairs
    carried = carried_pairs(source, pairs) if source.kind == "replay" else None
    if not carried or carried == pairs:
        return pairs, None
    missing = ", ".join(pair for pair in pairs if pair not in carried)
    return carried, (
        f"pairs not set: the pairs of TRADING_PAIRS the replay carries, {', '.join(carried)} "
        f"(it has no {missing})"
    )


def producer_config(
    config: ProduceTradesConfig,
    target: LandingTarget,
    source: TradeSource,
    pairs: tuple[str, ...],
) -> ProducerConfig:
    """The producer's configuration for this run, of `pairs` (`run_pairs`' answer)."""
    return ProducerConfig(
        ws_url=source.ws_url,
        rest_url=source.rest_url,
        pairs=pairs,
        landing_dir=target.landing_dir,
        state_path=target.state_path,
        batch_interval_seconds=config.batch_interval_seconds,
        max_trades_per_batch=config.max_trades_per_batch,
        max_pending_trades=config.max_pending_trades,
        duration_seconds=config.duration(),
        # Each report needs fresh progress; the reports themselves are spaced by run_reporting.
        progress_interval_seconds=min(
            config.progress_interval_seconds, config.report_interval_seconds
        ),
        source=source.kind,
        resume=source.resume,
        log_progress=False,  # the op logs the progress lines in the run's log (ProgressLog)
    )


def run_reporting(
    producer: Producer,
    progress: queue.Queue[ProducerStats],
    report: Callable[[ProducerStats], None],
    min_interval_seconds: float = 0.0,
    on_each: Callable[[ProducerStats], None] | None = None,
) -> ProducerSummary:
    """Run `producer` in a worker thread and `report` its progress from this thread.

    `report` gets the newest progress at most once per `min_interval_seconds`; `on_each` (the
    run log's progress lines) every progress update.

    Dagster's termination (`DagsterExecutionInterruptedError` in this thread) is a stop request:
    the producer lands its current batch and its summary (`stopped=True`) is returned. Anything
    else that interrupts this thread stops the producer the same way, then propagates. What it
    landed last is reported in any case.
    """
    summary: ProducerSummary | None = None
    try:
        summary = run_in_worker(
            producer.run,
            producer.stop,
            progress,
            report,
            name="binance-producer",
            min_interval_seconds=min_interval_seconds,
            stop_on=(dg.DagsterExecutionInterruptedError,),
            on_each=on_each,
        )
        return summary
    finally:
        report(summary or producer.stats())


class ProgressLog:
    """Logs the producer's progress line in the run's log every `interval_seconds` of its run.

    Progress arrives every `update_seconds` (the producer's progress interval, which is also
    bounded by the report interval), so not every update makes a line: one does once
    `interval_seconds` have passed since the previous line, less half an update of jitter.
    """

    def __init__(
        self, context: dg.OpExecutionContext, interval_seconds: float, update_seconds: float
    ) -> None:
        self.context = context
        self.interval_seconds = interval_seconds
        self.slack_seconds = update_seconds / 2
        self.last: ProducerStats | None = None

    def __call__(self, stats: ProducerStats) -> None:
        """Log `stats` as a progress line if one is due."""
        since = stats.seconds - (self.last.seconds if self.last else 0.0)
        if since < self.interval_seconds - self.slack_seconds:
            return
        self.context.log.info("%s", stats.progress_line(self.last))
        self.last = stats


class LandingReporter:
    """Turns producer progress into `landing_trades` materializations, only when files landed.

    It also logs a pair that went quiet (no trade for `quiet_pair_seconds`) or traded again,
    and lists the quiet pairs in each materialization.
    """

    def __init__(
        self,
        context: dg.OpExecutionContext,
        source: TradeSource,
        quiet: QuietPairs,
        landing: LandingCounter | None,
        upload: LandingUpload | None = None,
    ) -> None:
        self.context = context
        self.source = source
        self.quiet = quiet
        self.landing = landing
        self.upload = upload
        self.last: ProducerStats | None = None
        self.disk_last: ProducerStats | None = None

    def __call__(self, stats: ProducerStats) -> None:
        """Report what landed since the previous report, if anything did."""
        went_quiet, woke = self.quiet.update(stats)
        for symbol in sorted(went_quiet):
            self.context.log.warning(
                "%s: no trade for %.0f s (quiet_pair_seconds=%g)",
                symbol.lower(),
                self.quiet.silent_seconds(symbol, stats.seconds),
                self.quiet.quiet_seconds,
            )
        for symbol in sorted(woke):
            self.context.log.info("%s: trading again", symbol.lower())
        self._report_disk(stats)
        if stats.files == (self.last.files if self.last else 0):
            return
        quiet = sorted(symbol.lower() for symbol in self.quiet.quiet)
        metadata = producer_metadata(
            stats,
            self.last,
            self.source.kind,
            self.source.ws_url,
            None if self.landing is None else self.landing.totals(),
        )
        if self.upload is not None:  # the files wait in the spool until they are on the Volume
            metadata["uploaded_files"] = self.upload.files_uploaded
            metadata["uploaded_trades"] = self.upload.trades_uploaded
            metadata["pending_uploads"] = len(self.upload.pending_files())
        metadata["pending_trades"] = stats.pending_trades
        metadata["dropped_trades"] = stats.dropped_trades
        metadata["disk_full_seconds"] = round(stats.disk_full_seconds, 1)
        self.context.log_event(
            dg.AssetMaterialization(
                asset_key=LANDING_TRADES,
                description=landing_description(stats, self.landing is not None),
                metadata={
                    **metadata,
                    "quiet_pairs": dg.MetadataValue.text(", ".join(quiet) or "none"),
                    "quiet_pair_count": len(quiet),
                },
            )
        )
        self.last = stats

    def _report_disk(self, stats: ProducerStats) -> None:
        """A line in the run's log when the landing disk fills, drops trades, or has room again."""
        line = disk_report_line(self.disk_last, stats)
        self.disk_last = stats
        if line is not None:
            self.context.log.warning("%s", line)


def landing_description(stats: ProducerStats, counted: bool) -> str:
    """A landing_trades materialization's description: this run, and what the Row count counts."""
    run = f"{stats.trades} trades in {stats.files} files so far this run."
    if not counted:
        return run
    return (
        f"{run} Row count: the trades the landing folder holds, in files waiting in "
        "landing/trades/ or processed and archived in landing/_processed/ (until "
        "LANDING_RETENTION_HOURS deletes them)."
    )


def disk_report_line(before: ProducerStats | None, stats: ProducerStats) -> str | None:
    """The run log's line on the landing disk after `before`: it filled, dropped, or is back."""
    was_full = before is not None and before.disk_full
    dropped_before = before.dropped_trades if before is not None else 0
    if stats.disk_full and (not was_full or stats.dropped_trades > dropped_before):
        return (
            f"landing disk full: {stats.pending_trades} trades held in memory, "
            f"{stats.dropped_trades} dropped so far (REST back-fills them once space returns); "
            "free space under the landing folder"
        )
    if was_full and not stats.disk_full:
        return (
            f"landing disk writable again (full for {stats.disk_full_seconds:.0f} s in all; "
            f"{stats.dropped_trades} trades dropped, now gaps REST back-fills)"
        )
    return None


def _produce(
    context: dg.OpExecutionContext, config: ProduceTradesConfig, settings: Settings
) -> ProducerSummary:
    target = build_deployment(settings).landing_target()
    upload = target.upload  # None: the files land where the analytics read them
    with trade_source(config, settings, target.landing_dir) as source:
        if source.kind == "replay":
            context.log.warning(REPLAY_WARNING)
        pairs, why = run_pairs(config, settings, source)
        if why is not None:
            context.log.info("%s", why)
        conf = producer_config(config, target, source, pairs)
        for warning in check_pairs(source, conf.pairs):
            context.log.warning(warning)
        context.log.info(
            "producing %s from %s (%s) into %s for %s s",
            ",".join(conf.pairs),
            source.ws_url,
            source.kind,
            target.location,
            "ever" if conf.duration_seconds is None else conf.duration_seconds,
        )
        progress: queue.Queue[ProducerStats] = queue.Queue()
        producer = Producer(conf, on_progress=progress.put, upload=upload)
        reporter = LandingReporter(
            context,
            source,
            QuietPairs(conf.pairs, config.quiet_pair_seconds),
            LandingCounter(conf.landing_dir) if upload is None else None,
            upload,
        )
        lines = ProgressLog(
            context, config.progress_interval_seconds, conf.progress_interval_seconds
        )
        return run_reporting(
            producer, progress, reporter, config.report_interval_seconds, on_each=lines
        )


def _produce_trades(
    context: dg.OpExecutionContext, config: ProduceTradesConfig, settings: CryptoSettings
) -> None:
    """Run the producer for the configured duration (or until terminated), reporting progress."""
    try:
        summary = _produce(context, config, settings.to_settings())
    except CryptoAssetsError as exc:
        # One actionable line in the UI instead of a traceback.
        raise dg.Failure(description=str(exc)) from exc
    how = "stopped on request (run terminated)" if summary.stopped else "finished"
    context.log.info("%s: landed %s trades in %s files", how, summary.trades_landed, summary.files)
    context.log.info("%s", summary.summary_line())


def build_producer_job(settings: CryptoSettings) -> dg.JobDefinition:
    """`binance_producer_job` with the deployment's settings bound to it.

    Bound on the job, not by `Definitions`: Dagster 1.13 re-creates a sensor whose op job gets
    its resources from `Definitions` and warns (BetaWarning about `owners`) while doing so.
    The op's config defaults are the deployment's producer settings (see `ProduceTradesConfig`).
    """
    config_cls = ProduceTradesConfig.for_settings(settings.to_settings())

    @dg.op(
        name=PRODUCER_OP,
        description="Stream Binance trades into landing files; report landing_trades periodically.",
        tags={"kind": "websocket"},
    )
    def produce_trades(
        context: dg.OpExecutionContext, config: config_cls, settings: CryptoSettings
    ) -> None:
        """Run the producer for its duration (or until terminated), reporting progress."""
        _produce_trades(context, config, settings)

    @dg.job(
        name=PRODUCER_JOB,
        resource_defs={SETTINGS_KEY: settings},
        # One step: run it in the run's own process. Terminate then interrupts the op itself,
        # which lands its batch and returns, and the run ends SUCCESS; the multiprocess
        # executor would mark the run CANCELED (an ERROR event) however cleanly the step ended.
        executor_def=dg.in_process_executor,
        description="Run the Binance producer: trades → landing NDJSON files (landing_trades).",
        tags={"crypto_assets/role": "producer"},
    )
    def binance_producer_job() -> None:
        produce_trades()

    return binance_producer_job
