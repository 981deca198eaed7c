"""The streaming query of the analytics: landing NDJSON -> Delta tables, exactly once.

Spark's file source and checkpoint hand each landing file to exactly one committed batch; the
batch function (`batch.BatchProcessor`) makes each of its writes idempotent, so a batch replayed
after a crash changes nothing. This module only wires the reader, the sink and the processor
into a query, runs it once or continuously, and stops it between batches. The reader, sink and
checkpoint are the run's `AnalyticsTarget`, which a deployment builds: this module knows none.

A run's summary is read back from the commits it made (`AnalyticsSummary.of_commits`), so it is
the same whether the batches ran in this process (classic Spark) or in a Spark Connect server's
(Databricks serverless), where nothing the batch function does to itself comes back. Only a
continuous run on classic Spark counts as its batches complete, for its live reports.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from pathlib import Path
from typing import Literal

from pyspark.errors import StreamingQueryException
from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQuery

from crypto_assets.analytics.alert_outbox import AlertOutbox
from crypto_assets.analytics.batch import (
    AnalyticsSummary,
    BatchProcessor,
    StepHook,
    StreamProgress,
    alert_rules,
    failure_line,
    first_line,
)
from crypto_assets.analytics.checkpoint_lock import checkpoint_lock
from crypto_assets.analytics.maintenance import MaintenancePolicy
from crypto_assets.analytics.ports import AnalyticsTarget
from crypto_assets.analytics.schema import ALL_TABLES, QUERY_NAME
from crypto_assets.analytics.spark_session import is_spark_connect, on_databricks
from crypto_assets.errors import CryptoAssetsError
from crypto_assets.notifications.channels import channels_for
from crypto_assets.notifications.deliverer import Deliverer
from crypto_assets.notifications.outbox import Outbox
from crypto_assets.settings import Settings

logger = logging.getLogger(__name__)

Mode = Literal["once", "continuous"]

__all__ = ["AnalyticsError", "AnalyticsSummary", "Mode", "StepHook", "run_analytics"]

# How long a run's end waits for the deliverer to send the last alerts; the rest wait for the
# next run (a receiver that is down costs each run's end at most this).
DELIVERY_STOP_SECONDS = 10.0

# `batch.failure_line` in the text of a failed query: on Spark Connect, the batch's traceback.
_BATCH_FAILURE = re.compile(r"analytics batch \d+ failed: .*\(the next run re-runs it\)")


class AnalyticsError(CryptoAssetsError):
    """The analytics query could not start or stopped with an error."""


def app_id_of(query_id: str) -> str:
    """The app id of the query `query_id` in the tables' commits (its Delta transactions)."""
    return f"{QUERY_NAME}:{query_id}"


def query_app_id(checkpoint_dir: Path) -> str:
    """The query id from the checkpoint: stable across restarts, new with a new checkpoint."""
    metadata = json.loads((checkpoint_dir / "metadata").read_text())
    return app_id_of(metadata["id"])


def batch_failure(error: BaseException) -> str | None:
    """The one line of a batch's failure in a query's error text (None when not a batch's)."""
    found = _BATCH_FAILURE.search(str(error))
    return None if found is None else found.group(0)


# Spark's classes that read a query's checkpoint logs (offsets/, commits/, sources/, metadata).
_CHECKPOINT_READERS = ("HDFSMetadataLog", "OffsetSeqLog", "CommitLog", "StreamMetadata")


def checkpoint_advice(error: BaseException, checkpoint: Path) -> str:
    """What to do when `error` came from reading the checkpoint ('' when it did not)."""
    # The Java stack trace is kept by PySpark's captured exception (and its causes) only.
    traces = []
    while error is not None:
        traces.append(str(getattr(error, "_stackTrace", "") or ""))
        error = getattr(error, "_cause", None)
    if not any(reader in trace for trace in traces for reader in _CHECKPOINT_READERS):
        return ""
    return (
        f"; the query's checkpoint {checkpoint} cannot be read (damaged?): stop the analytics and "
        "move that folder aside, the next run starts a new checkpoint and nothing is lost or "
        "doubled (README: Recover from a corrupted checkpoint)"
    )


def stop_gracefully(query: StreamingQuery, wait_seconds: float = 120.0) -> None:
    """Stop `query` between batches, so a running batch finishes its writes first."""
    deadline = time.monotonic() + wait_seconds
    while query.isActive and query.status["isTriggerActive"] and time.monotonic() < deadline:
        time.sleep(0.2)
    if query.isActive:
        query.stop()


def record_progress(query: StreamingQuery, summary: AnalyticsSummary) -> None:
    """Keep Spark's latest batch progress (batch id, rows, rows/s, duration) in `summary`."""
    progress = query.lastProgress
    if progress and "batchId" in progress:
        summary.progress = StreamProgress.of(progress)


class ProgressPoller:
    """Keeps a continuous run's `summary.progress` current, reading Spark's only once it moved.

    `StreamingQuery.lastProgress` builds its Python object with a py4j call per field: read on
    every poll (twice a second), it cost an idle run 13% of a core, 11 of them in the JVM. So it
    is read after this process completed a batch (the live `summary.batches` grew), and again at
    each poll until Spark's progress names a newer batch than before.
    """

    def __init__(self, query: StreamingQuery, summary: AnalyticsSummary) -> None:
        self.query = query
        self.summary = summary
        self._batches = summary.batches
        self._moving_from: int | None = None  # Spark's batch id to see move past

    def poll(self) -> None:
        """Read Spark's progress if a batch completed since it was last seen to move."""
        if self.summary.batches != self._batches:
            self._batches = self.summary.batches
            self._moving_from = self._batch_id()
        if self._moving_from is not None:
            record_progress(self.query, self.summary)
            if self._batch_id() != self._moving_from:
                self._moving_from = None

    def _batch_id(self) -> int:
        return -1 if self.summary.progress is None else self.summary.progress.batch_id


def run_analytics(
    spark: SparkSession,
    settings: Settings,
    target: AnalyticsTarget,
    *,
    mode: Mode = "once",
    trigger_seconds: float | None = None,
    stop_event: threading.Event | None = None,
    maintenance: MaintenancePolicy | None = None,
    on_step: StepHook | None = None,
    summary: AnalyticsSummary | None = None,
    run_url: str | None = None,
) -> AnalyticsSummary:
    """Process landing files into the Delta tables: all new files (`once`) or until `stop_event`.

    `target` is what the run reads, writes and checkpoints to (a deployment's
    `analytics_target`, which also bounds each batch's files). Continuous mode triggers every
    `trigger_seconds` (None: the settings' trigger interval) and compacts and vacuums the tables
    per `maintenance` (default every 50 batches); it needs classic Spark (Spark Connect runs
    `once` only, as Databricks serverless does). `summary`, when given, is filled as batches
    complete (rows, lags, Spark's progress), so another thread can report a continuous run while
    it runs; a continuous run returns it, a `once` run the summary read back from its commits.

    With notifications on (ALERT_WEBHOOK_URL, SLACK_TOKEN and SLACK_CHANNEL) each alert the run
    adds goes out once, linked to `run_url` when given, from a deliverer thread of this process;
    what it could not send by the run's end is sent by the next run (`alert_outbox`).
    """
    landing, checkpoint, reader, sink = (
        target.landing_dir,
        target.checkpoint,
        target.reader,
        target.sink,
    )
    if not landing.is_dir():
        raise AnalyticsError(f"no landing directory {landing}: {target.missing_landing}")
    connect = is_spark_connect(spark)
    if connect and mode == "continuous":
        raise AnalyticsError(
            "continuous analytics need classic Spark: on Spark Connect (Databricks serverless) "
            "the batches run in the server's process and only once/availableNow triggers exist; "
            "run them once (mode once) or on a classic cluster"
        )
    channels = channels_for(settings)  # before anything starts: a bad setting is one line
    lock = checkpoint_lock(checkpoint)
    # On Databricks the checkpoint is on a Volume, whose FUSE mount promises neither flock nor
    # the lock file's in-place writes, and runs on other clusters would not see the lock anyway:
    # there Dagster's run queue (one analytics run at a time) is the guard.
    if not on_databricks():
        lock.acquire()  # FolderInUseError while another query runs
    try:
        sink.ensure_tables()
        reader.expire_processed()
        before = sink.versions()  # the run's commits are the ones after these
    except BaseException:
        lock.release()
        raise
    if mode == "continuous":
        maintenance = MaintenancePolicy() if maintenance is None else maintenance
        summary = AnalyticsSummary() if summary is None else summary
    processor = BatchProcessor(
        reader,
        sink,
        lambda: query_app_id(checkpoint),
        window_seconds=settings.window_seconds,
        watermark_seconds=settings.watermark_seconds,
        rules=alert_rules(settings),
        maintenance=maintenance,
        on_step=on_step,
        # On Spark Connect the function is pickled into the server's process: whatever it would
        # count there never comes back (and the live summary's lock does not pickle).
        live=None if connect else summary,
        alert_outbox=AlertOutbox(target.alerts_outbox, run_url) if channels else None,
    )
    deliverer = Deliverer(Outbox(target.alerts_outbox), channels).start() if channels else None
    writer = (
        reader.stream(spark)
        .writeStream.queryName(QUERY_NAME)
        .option("checkpointLocation", str(checkpoint))
        .foreachBatch(processor)
    )
    if mode == "once":
        writer = writer.trigger(availableNow=True)
    else:
        seconds = settings.analytics_trigger_seconds if trigger_seconds is None else trigger_seconds
        writer = writer.trigger(processingTime=f"{seconds} seconds")
    started = time.monotonic()
    query = writer.start()
    try:
        if mode == "once":
            query.awaitTermination()
        else:
            stop = stop_event or threading.Event()
            poller = ProgressPoller(query, summary)
            while not stop.is_set():
                summary.seconds = time.monotonic() - started  # for live reports
                if query.awaitTermination(0.5):
                    break
                poller.poll()
    except StreamingQueryException as exc:
        if processor.failure is not None:  # the batch ran in this process (classic Spark)
            batch_id, cause = processor.failure
            raise AnalyticsError(failure_line(batch_id, cause)) from cause
        failed = batch_failure(exc)  # Spark Connect: the batch's traceback, as text
        if failed is not None:
            raise AnalyticsError(failed) from exc
        advice = checkpoint_advice(exc, checkpoint)
        raise AnalyticsError(f"analytics query failed: {first_line(exc)}{advice}") from exc
    finally:
        stop_gracefully(query)
        lock.release()
        delivered = None if deliverer is None else deliverer.stop(DELIVERY_STOP_SECONDS)
    if mode == "once":
        summary = AnalyticsSummary.of_commits(sink.run_commits(app_id_of(query.id), before))
    summary.notifications = delivered
    record_progress(query, summary)
    summary.seconds = time.monotonic() - started
    summary.rows_total = {name: sink.row_count(name) for name in ALL_TABLES}
    logger.info("%s", summary.summary_line())
    return summary
