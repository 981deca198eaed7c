"""Ingestion: the `landing_trades` asset and the producer op that materializes it.

The producer runs in a worker thread while the op's own thread reports `landing_trades`
materializations every `report_interval_seconds` (not per file). When Dagster terminates the run
it raises in the op's thread; the `finally` stops the producer, which lands the current batch.
"""

import contextlib
import queue
from collections.abc import Callable, Iterator
from typing import Literal

import dagster as dg
from pydantic import Field

from crypto_assets.errors import CryptoAssetsError
from crypto_assets.orchestration.checks import LANDING_TRADES
from crypto_assets.orchestration.metadata import producer_metadata
from crypto_assets.orchestration.resources import SETTINGS_KEY, CryptoSettings
from crypto_assets.orchestration.worker import run_in_worker
from crypto_assets.producer.producer import (
    Producer,
    ProducerConfig,
    ProducerStats,
    ProducerSummary,
    default_rest_url,
)
from crypto_assets.producer.source import REPLAY_WARNING, TradeSource, open_source
from crypto_assets.settings import Settings, parse_pairs

PRODUCER_JOB = "binance_producer_job"
PRODUCER_OP = "produce_trades"

landing_trades = dg.AssetSpec(
    LANDING_TRADES,
    description="Binance trades landed as NDJSON files, one trade per line, by the producer op.",
    group_name="ingestion",
    kinds={"json"},
    metadata={"file_pattern": "landing/trades/trades_<YYYYmmdd>_<HHMMSS>_<hex>.json"},
)


class ProduceTradesConfig(dg.Config):
    """Run config of the producer op; unset values come from the deployment's settings."""

    pairs: list[str] | None = Field(None, description="Symbols; default TRADING_PAIRS")
    batch_interval_seconds: float | None = Field(None, gt=0, description="Default from settings")
    max_trades_per_batch: int | None = Field(None, gt=0, description="Default from settings")
    duration_seconds: float | None = Field(
        None, gt=0, description="How long to produce; default RUN_DURATION_MINUTES"
    )
    continuous: bool = Field(False, description="Produce until the run is terminated")
    source: Literal["default", "auto", "live", "replay"] = Field(
        "default", description="auto, live or replay; 'default' takes CRYPTO_SOURCE"
    )
    ws_url: str | None = Field(
        None, description="Explicit websocket base URL (e.g. a replay server); overrides source"
    )
    rest_url: str | None = Field(None, description="REST base for gap filling; default derived")
    report_interval_seconds: float = Field(
        30.0, gt=0, description="How often landing_trades materializations are reported"
    )
    progress_interval_seconds: float = Field(
        10.0, gt=0, description="How often the producer logs a progress line"
    )

    def duration(self, settings: Settings) -> float | None:
        """Seconds to produce, or None to produce until stopped."""
        if self.continuous:
            return None
        if self.duration_seconds is not None:
            return self.duration_seconds
        minutes = settings.run_duration_minutes
        return None if minutes is None else minutes * 60


@contextlib.contextmanager
def trade_source(config: ProduceTradesConfig, settings: Settings) -> Iterator[TradeSource]:
    """The endpoint to read: the configured URL, else what `source` resolves to (maybe a replay)."""
    if config.ws_url:
        rest = config.rest_url or default_rest_url(config.ws_url, settings.binance_rest_url)
        kind = "replay" if config.source == "replay" else "live"
        yield TradeSource(kind, config.ws_url.rstrip("/"), rest)
        return
    source = settings.source if config.source == "default" else config.source
    chosen = settings.replace(source=source)
    with open_source(chosen) as source:
        yield source


def producer_config(
    config: ProduceTradesConfig, settings: Settings, source: TradeSource
) -> ProducerConfig:
    """The producer's configuration for this run."""
    pairs = parse_pairs(",".join(config.pairs), "pairs") if config.pairs else settings.trading_pairs
    return ProducerConfig(
        ws_url=source.ws_url,
        rest_url=source.rest_url,
        pairs=pairs,
        landing_dir=settings.landing_dir,
        batch_interval_seconds=config.batch_interval_seconds or settings.batch_interval_seconds,
        max_trades_per_batch=config.max_trades_per_batch or settings.max_trades_per_batch,
        duration_seconds=config.duration(settings),
        # Each report needs fresh progress; the reports themselves are spaced by run_reporting.
        progress_interval_seconds=min(
            config.progress_interval_seconds, config.report_interval_seconds
        ),
        source=source.kind,
        resume=source.resume,
    )


def run_reporting(
    producer: Producer,
    progress: queue.Queue[ProducerStats],
    report: Callable[[ProducerStats], None],
    min_interval_seconds: float = 0.0,
) -> ProducerSummary:
    """Run `producer` in a worker thread and `report` its progress from this thread.

    Whatever interrupts this thread (Dagster's termination included) stops the producer, which
    lands its current batch, before the exception propagates; what it landed last is reported
    in any case.
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
        )
        return summary
    finally:
        report(summary or producer.stats())


class LandingReporter:
    """Turns producer progress into `landing_trades` materializations, only when files landed."""

    def __init__(self, context: dg.OpExecutionContext, source: TradeSource) -> None:
        self.context = context
        self.source = source
        self.last: ProducerStats | None = None

    def __call__(self, stats: ProducerStats) -> None:
        """Report what landed since the previous report, if anything did."""
        if stats.files == (self.last.files if self.last else 0):
            return
        self.context.log_event(
            dg.AssetMaterialization(
                asset_key=LANDING_TRADES,
                description=f"{stats.trades} trades in {stats.files} files so far this run",
                metadata=producer_metadata(stats, self.last, self.source.kind, self.source.ws_url),
            )
        )
        self.last = stats


def _produce(
    context: dg.OpExecutionContext, config: ProduceTradesConfig, settings: Settings
) -> ProducerSummary:
    with trade_source(config, settings) as source:
        if source.kind == "replay":
            context.log.warning(REPLAY_WARNING)
        conf = producer_config(config, settings, source)
        context.log.info(
            "producing %s from %s (%s) into %s for %s s",
            ",".join(conf.pairs),
            source.ws_url,
            source.kind,
            conf.landing_dir,
            "ever" if conf.duration_seconds is None else conf.duration_seconds,
        )
        progress: queue.Queue[ProducerStats] = queue.Queue()
        producer = Producer(conf, on_progress=progress.put)
        reporter = LandingReporter(context, source)
        return run_reporting(producer, progress, reporter, config.report_interval_seconds)


@dg.op(
    name=PRODUCER_OP,
    description="Stream Binance trades into landing files; report landing_trades periodically.",
    tags={"kind": "websocket"},
)
def produce_trades(
    context: dg.OpExecutionContext, config: ProduceTradesConfig, settings: CryptoSettings
) -> None:
    """Run the producer for the configured duration (or until terminated), reporting progress."""
    try:
        summary = _produce(context, config, settings.to_settings())
    except CryptoAssetsError as exc:
        # One actionable line in the UI instead of a traceback.
        raise dg.Failure(description=str(exc)) from exc
    context.log.info("%s", summary.summary_line())


def build_producer_job(settings: CryptoSettings) -> dg.JobDefinition:
    """`binance_producer_job` with the deployment's settings bound to it.

    Bound on the job, not by `Definitions`: Dagster 1.13 re-creates a sensor whose op job gets
    its resources from `Definitions` and warns (BetaWarning about `owners`) while doing so.
    """

    @dg.job(
        name=PRODUCER_JOB,
        resource_defs={SETTINGS_KEY: settings},
        description="Run the Binance producer: trades → landing NDJSON files (landing_trades).",
        tags={"crypto_assets/role": "producer"},
    )
    def binance_producer_job() -> None:
        produce_trades()

    return binance_producer_job
