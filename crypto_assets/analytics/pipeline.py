"""The streaming query of the local deployment: landing NDJSON -> Delta tables, exactly once.

Spark's file source and checkpoint hand each landing file to exactly one committed batch; the
batch function (`BatchProcessor`) makes each of its writes idempotent, so a batch replayed after
a crash changes nothing. Windows and alerts are recomputed from the tables, never from the batch
alone, so their content does not depend on how the data was split into batches or runs.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.errors import StreamingQueryException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F  # noqa: N812 - the PySpark convention
from pyspark.sql.streaming import StreamingQuery

from crypto_assets.analytics.delta_sink import DeltaSink, WindowRanges, utc_timestamp
from crypto_assets.analytics.maintenance import MaintenancePolicy, compact_and_vacuum
from crypto_assets.analytics.schema import (
    ALL_TABLES,
    CORRUPT_RECORD,
    LANDING_COLUMNS,
    LANDING_FILE_GLOB,
    LANDING_SCHEMA,
    PRICE_ALERTS,
    PRICE_ALERTS_SCHEMA,
    QUERY_NAME,
    TRADE_INPUTS,
    TRADES_ANALYTICS,
    TRADES_QUARANTINE,
    TRADES_RAW,
)
from crypto_assets.analytics.transforms import (
    REJECT_REASON,
    classify_landing,
    enrich_trades,
    price_alerts,
    window_metrics,
)
from crypto_assets.errors import CryptoAssetsError
from crypto_assets.settings import Settings

logger = logging.getLogger(__name__)

Mode = Literal["once", "continuous"]
# Called after each committed step of a batch with (table, batch_id): progress hooks, fault tests.
StepHook = Callable[[str, int], None]


class AnalyticsError(CryptoAssetsError):
    """The analytics query could not start or stopped with an error."""


@dataclass(frozen=True)
class AlertRules:
    """The alert thresholds of DESIGN.md, as plain numbers for the pure transform."""

    price_change_threshold_pct: float
    volume_spike_min_trades: int
    volume_spike_factor: float
    volume_spike_lookback: int

    @classmethod
    def from_settings(cls, settings: Settings) -> AlertRules:
        """The rules configured in `settings`."""
        return cls(
            settings.price_change_threshold_pct,
            settings.volume_spike_min_trades,
            settings.volume_spike_factor,
            settings.volume_spike_lookback,
        )


@dataclass
class AnalyticsSummary:
    """What one run did: files and batches, rows written and in total per table, skipped rows."""

    files_processed: int = 0
    batches: int = 0
    rows_written: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ALL_TABLES, 0))
    rows_total: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ALL_TABLES, 0))
    duplicates_skipped: int = 0
    late_rows: int = 0
    bad_rows: int = 0
    seconds: float = 0.0

    def summary_line(self) -> str:
        """One line for the CLI and run metadata."""
        tables = ", ".join(
            f"{name} +{self.rows_written[name]} ({self.rows_total[name]} total)"
            for name in ALL_TABLES
        )
        return (
            f"analytics: {self.files_processed} files in {self.batches} batches, "
            f"{self.seconds:.1f} s; "
            f"{tables}; duplicates skipped {self.duplicates_skipped}, late rows {self.late_rows}, "
            f"bad rows {self.bad_rows}"
        )


def first_per_trade(rows: pa.Table) -> pa.Table:
    """One row per (symbol, trade_id): the one from the first source file by name."""
    ordered = rows.sort_by(
        [("symbol", "ascending"), ("trade_id", "ascending"), ("source_file", "ascending")]
    )
    ordered = ordered.append_column("_row", pa.array(range(ordered.num_rows), pa.int64()))
    firsts = ordered.group_by(["symbol", "trade_id"], use_threads=False).aggregate(
        [("_row", "min")]
    )
    rows_kept = firsts["_row_min"]
    return ordered.take(pc.take(rows_kept, pc.sort_indices(rows_kept))).drop_columns(["_row"])


def within(rows: pa.Table, ranges: WindowRanges) -> pa.Table:
    """Rows whose (symbol, window_start) lies inside that symbol's inclusive range."""
    keep = pa.array([False] * rows.num_rows, pa.bool_())
    for symbol, (lo, hi) in ranges.items():
        start = rows["window_start"]
        inside = pc.and_(
            pc.equal(rows["symbol"], symbol),
            pc.and_(
                pc.greater_equal(start, utc_timestamp(lo)), pc.less_equal(start, utc_timestamp(hi))
            ),
        )
        keep = pc.or_(keep, inside)
    return rows.filter(keep)


class StepClock:
    """Seconds spent per step of a batch, for the log."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.monotonic()

    def lap(self, step: str) -> None:
        """Close the current step under `step`."""
        now = time.monotonic()
        self.laps[step] = now - self._last
        self._last = now

    def __str__(self) -> str:
        steps = ", ".join(f"{step} {seconds:.2f}" for step, seconds in self.laps.items())
        return f"{sum(self.laps.values()):.2f} s ({steps})"


class BatchProcessor:
    """The foreachBatch function: quarantine, trades_raw, trades_analytics, price_alerts."""

    def __init__(
        self,
        spark: SparkSession,
        sink: DeltaSink,
        checkpoint_dir: Path,
        *,
        window_seconds: float,
        watermark_seconds: float,
        rules: AlertRules,
        maintenance: MaintenancePolicy | None = None,
        on_step: StepHook | None = None,
    ) -> None:
        self.spark = spark
        self.sink = sink
        self.checkpoint_dir = checkpoint_dir
        self.window_ms = round(window_seconds * 1000)
        self.watermark_ms = round(watermark_seconds * 1000)
        self.rules = rules
        self.maintenance = maintenance
        self.on_step = on_step
        self.summary = AnalyticsSummary()
        self._files: set[str] = set()
        self._app_id: str | None = None

    @property
    def app_id(self) -> str:
        """The query id from the checkpoint: stable across restarts, new with a new checkpoint."""
        if self._app_id is None:
            metadata = json.loads((self.checkpoint_dir / "metadata").read_text())
            self._app_id = f"{QUERY_NAME}:{metadata['id']}"
        return self._app_id

    def __call__(self, batch_df: DataFrame, batch_id: int) -> None:
        """Process one micro-batch; every step is skipped or idempotent when the batch replays."""
        clock = StepClock()
        rows = self._collect(batch_df)
        clock.lap("read")
        if rows.num_rows == 0:
            return
        self._files.update(pc.unique(rows["source_file"]).to_pylist())
        self.summary.files_processed = len(self._files)
        self.summary.batches += 1
        rejected = pc.is_valid(rows[REJECT_REASON])
        self._quarantine(rows.filter(rejected), batch_id)
        good = rows.filter(pc.invert(rejected))
        clock.lap(TRADES_QUARANTINE)
        if good.num_rows:
            ranges = self._trades_raw(first_per_trade(good), good.num_rows, batch_id)
            clock.lap(TRADES_RAW)
            if ranges:
                self._analytics(ranges, batch_id)
                clock.lap(TRADES_ANALYTICS)
                self._alerts(ranges, batch_id)
                clock.lap(PRICE_ALERTS)
        if self.maintenance is not None and self.maintenance.due(batch_id):
            for name in ALL_TABLES:
                compact_and_vacuum(self.sink.path(name), self.maintenance.retention_hours)
            clock.lap("maintenance")
        logger.info("batch %s: %s rows, %s", batch_id, rows.num_rows, clock)

    def _collect(self, batch_df: DataFrame) -> pa.Table:
        # One Spark action per batch: parse, classify and enrich, then hand over as Arrow.
        columns = [*LANDING_COLUMNS, "source_file", REJECT_REASON, "raw_line"]
        prepared = enrich_trades(classify_landing(batch_df).select(*columns))
        return prepared.toArrow()

    def _step_done(self, table: str, batch_id: int) -> None:
        if self.on_step is not None:
            self.on_step(table, batch_id)

    def _quarantine(self, bad: pa.Table, batch_id: int) -> None:
        self.summary.bad_rows += bad.num_rows
        if bad.num_rows == 0 or self.sink.applied(TRADES_QUARANTINE, self.app_id, batch_id):
            return
        logger.warning("batch %s: %s bad landing rows quarantined", batch_id, bad.num_rows)
        rows = bad.rename_columns([n if n != REJECT_REASON else "reason" for n in bad.column_names])
        self.sink.append_quarantine(rows, self.app_id, batch_id)
        self.summary.rows_written[TRADES_QUARANTINE] += bad.num_rows
        self._step_done(TRADES_QUARANTINE, batch_id)

    def _trades_raw(self, good: pa.Table, landed: int, batch_id: int) -> WindowRanges:
        """Merge the batch's unique good trades (of `landed` good rows) into trades_raw.

        Returns the open (not yet past the watermark) windows the batch touched, per symbol.
        """
        replay = self.sink.applied(TRADES_RAW, self.app_id, batch_id)
        if replay:
            found, max_before = self.sink.recorded_max_trade_time(self.app_id, batch_id)
            if not found:
                logger.warning("batch %s: watermark of the first attempt not found", batch_id)
        else:
            max_before = self.sink.max_trade_time()
        starts = pc.multiply(pc.divide(good["trade_time"], self.window_ms), self.window_ms)
        late = pa.array([False] * good.num_rows, pa.bool_())
        if max_before is not None:
            closed_until = max_before - self.watermark_ms
            late = pc.less_equal(pc.add(starts, self.window_ms), closed_until)
        late_count = pc.sum(late).as_py() or 0
        if replay:
            self.summary.late_rows += late_count
            logger.info("batch %s: trades_raw already holds this batch (replay)", batch_id)
        else:
            late_rows = good.filter(late)
            known = self.sink.existing_trades(
                late_rows.select(["symbol", "trade_id", "trade_date"])
            )
            self.summary.late_rows += late_rows.num_rows - known.num_rows
            inserted = self.sink.merge_trades_raw(good, self.app_id, batch_id, max_before)
            self.summary.rows_written[TRADES_RAW] += inserted
            self.summary.duplicates_skipped += landed - inserted
            self._step_done(TRADES_RAW, batch_id)
        if late_count:
            logger.warning(
                "batch %s: %s trades arrived after the watermark; kept in %s only",
                batch_id,
                late_count,
                TRADES_RAW,
            )
        open_windows = pa.table({"symbol": good["symbol"], "start": starts}).filter(pc.invert(late))
        bounds = open_windows.group_by("symbol").aggregate([("start", "min"), ("start", "max")])
        return {
            symbol: (lo, hi)
            for symbol, lo, hi in zip(
                bounds["symbol"].to_pylist(),
                bounds["start_min"].to_pylist(),
                bounds["start_max"].to_pylist(),
                strict=True,
            )
        }

    def _analytics(self, ranges: WindowRanges, batch_id: int) -> None:
        if self.sink.applied(TRADES_ANALYTICS, self.app_id, batch_id):
            return
        metrics = window_metrics(self._trades_in(ranges), self.window_ms / 1000)
        written = self.sink.merge_analytics(metrics.toArrow(), self.app_id, batch_id)
        self.summary.rows_written[TRADES_ANALYTICS] += written
        self._step_done(TRADES_ANALYTICS, batch_id)

    def _trades_in(self, ranges: WindowRanges) -> DataFrame:
        """Every trades_raw trade in the windows of `ranges`, read by Spark from the snapshot."""
        # Spark scans the snapshot's Parquet files in parallel; shipping the rows from Python
        # through createDataFrame would cost several times more for large batches.
        files = self.sink.trade_files(ranges, self.window_ms)
        wanted = F.lit(False)
        for symbol, (lo, hi) in ranges.items():
            in_range = F.col("trade_time").between(lo, hi + self.window_ms - 1)
            wanted = wanted | ((F.col("symbol") == symbol) & in_range)
        return self.spark.read.schema(TRADE_INPUTS).parquet(*files).where(wanted)

    def _alerts(self, ranges: WindowRanges, batch_id: int) -> None:
        if self.sink.applied(PRICE_ALERTS, self.app_id, batch_id):
            return
        # A window's volume baseline covers the `lookback` slots before it, so a touched window
        # changes the alerts of the next `lookback` windows too.
        reach = self.rules.volume_spike_lookback * self.window_ms
        affected = {s: (lo, hi + reach) for s, (lo, hi) in ranges.items()}
        inputs = self.sink.read_analytics({s: (lo - reach, hi) for s, (lo, hi) in affected.items()})
        alerts = PRICE_ALERTS_SCHEMA.empty_table()
        if inputs.num_rows:
            found = price_alerts(
                self.spark.createDataFrame(inputs),
                window_seconds=self.window_ms / 1000,
                price_change_threshold_pct=self.rules.price_change_threshold_pct,
                volume_spike_min_trades=self.rules.volume_spike_min_trades,
                volume_spike_factor=self.rules.volume_spike_factor,
                volume_spike_lookback=self.rules.volume_spike_lookback,
            )
            alerts = within(found.toArrow(), affected)
        written = self.sink.replace_alerts(alerts, affected, self.app_id, batch_id)
        self.summary.rows_written[PRICE_ALERTS] += written
        self._step_done(PRICE_ALERTS, batch_id)


def landing_stream(
    spark: SparkSession, landing_dir: Path, max_files_per_trigger: int | None
) -> DataFrame:
    """The landing files as a stream of fixed-schema rows plus `source_file` (the file name)."""
    reader = (
        spark.readStream.schema(LANDING_SCHEMA)
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT_RECORD)
        .option("pathGlobFilter", LANDING_FILE_GLOB)
    )
    if max_files_per_trigger:
        reader = reader.option("maxFilesPerTrigger", max_files_per_trigger)
    return reader.json(str(landing_dir)).withColumn("source_file", F.col("_metadata.file_name"))


def stop_gracefully(query: StreamingQuery, wait_seconds: float = 120.0) -> None:
    """Stop `query` between batches, so a running batch finishes its writes first."""
    deadline = time.monotonic() + wait_seconds
    while query.isActive and query.status["isTriggerActive"] and time.monotonic() < deadline:
        time.sleep(0.2)
    if query.isActive:
        query.stop()


def run_analytics(
    spark: SparkSession,
    settings: Settings,
    *,
    mode: Mode = "once",
    trigger_seconds: float = 10.0,
    stop_event: threading.Event | None = None,
    maintenance: MaintenancePolicy | None = None,
    max_files_per_trigger: int | None = None,
    on_step: StepHook | None = None,
) -> AnalyticsSummary:
    """Process landing files into the Delta tables: all new files (`once`) or until `stop_event`.

    Continuous mode compacts and vacuums the tables per `maintenance` (default every 50 batches).
    """
    landing = settings.landing_dir
    if not landing.is_dir():
        raise AnalyticsError(
            f"no landing directory {landing}: run the producer first or fix --data-dir"
        )
    sink = DeltaSink(settings.data_dir / "delta")
    sink.ensure_tables()
    checkpoint = settings.data_dir / "checkpoints" / QUERY_NAME
    if mode == "continuous" and maintenance is None:
        maintenance = MaintenancePolicy()
    processor = BatchProcessor(
        spark,
        sink,
        checkpoint,
        window_seconds=settings.window_seconds,
        watermark_seconds=settings.watermark_seconds,
        rules=AlertRules.from_settings(settings),
        maintenance=maintenance,
        on_step=on_step,
    )
    writer = (
        landing_stream(spark, landing, max_files_per_trigger)
        .writeStream.queryName(QUERY_NAME)
        .option("checkpointLocation", str(checkpoint))
        .foreachBatch(processor)
    )
    if mode == "once":
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=f"{trigger_seconds} seconds")
    started = time.monotonic()
    query = writer.start()
    try:
        if mode == "once":
            query.awaitTermination()
        else:
            stop = stop_event or threading.Event()
            while not stop.is_set() and not query.awaitTermination(0.5):
                pass
    except StreamingQueryException as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AnalyticsError(f"analytics query failed: {first_line}") from exc
    finally:
        stop_gracefully(query)
    for progress in query.recentProgress:
        logger.debug("batch %s durations (ms): %s", progress.batchId, progress.durationMs)
    summary = processor.summary
    summary.seconds = time.monotonic() - started
    summary.rows_total = {name: sink.row_count(name) for name in ALL_TABLES}
    logger.info("%s", summary.summary_line())
    return summary
