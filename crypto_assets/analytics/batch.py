"""The batch algorithm, written once: quarantine -> trades_raw -> touched windows -> alerts.

It is the streaming query's foreachBatch function. It reads the batch through a `LandingReader`
and writes through a `TableSink` (`ports.py`), the two seams where the deployments differ. Every
step is idempotent per `(query id, batch id)`: a batch that failed part-way, by an exception or a
kill at any step, is re-run by Spark to the same tables. Windows and alerts are recomputed from
trades_raw, never from the batch alone, so their content does not depend on how the data was
split into batches or runs. What a batch touched is a list of disjoint window runs, handled in
chunks, so no step costs more for data that spans years than for data that spans minutes.

The function holds no Spark session and reports through its commits, not its own state: on Spark
Connect (Databricks serverless) it is pickled and runs in a Python process of the server. Each
batch works through its DataFrame's session, its last commit carries its `BatchRecord`, and a run's
`AnalyticsSummary` is read back from the commits the run made (`AnalyticsSummary.of_commits`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from crypto_assets.analytics.alert_outbox import AlertOutbox
from crypto_assets.analytics.lag import LAGS, META_BATCH_LAG, BatchLag, RunLag, batch_lag_of
from crypto_assets.analytics.maintenance import MaintenancePolicy
from crypto_assets.analytics.ports import (
    META_BATCH,
    BatchTag,
    LandingReader,
    MergeCounts,
    RunCommit,
    TableSink,
)
from crypto_assets.analytics.schema import (
    ALL_TABLES,
    PRICE_ALERTS,
    TRADES_ANALYTICS,
    TRADES_QUARANTINE,
    TRADES_RAW,
)
from crypto_assets.analytics.transforms import (
    WINDOW_COLUMNS,
    AlertRules,
    alert_rows,
    scoring_sql,
)
from crypto_assets.analytics.window_runs import (
    MAX_RUNS_PER_QUERY,
    Run,
    chunks,
    id_runs,
    runs_of,
    widened,
    window_starts,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from crypto_assets.notifications.deliverer import DeliveryStats
    from crypto_assets.settings import Settings

logger = logging.getLogger(__name__)

# Called after each commit of a batch with (step, batch_id); the step is the table name for the
# commit that completes it, ``<table>:<n>`` for the n-th earlier piece. Progress hooks, fault tests.
StepHook = Callable[[str, int], None]


def alert_rules(settings: Settings) -> AlertRules:
    """The alert rules configured in `settings`."""
    return AlertRules(
        settings.price_change_threshold_pct,
        settings.volume_spike_min_trades,
        settings.volume_spike_factor,
        settings.volume_spike_lookback,
        settings.volume_spike_min_history,
    )


@dataclass(frozen=True)
class StreamProgress:
    """Spark's progress of the latest completed micro-batch (`StreamingQuery.lastProgress`).

    Its batch and duration only: Spark's input row counts count what Spark itself read, and the
    local reader reads the landing files without Spark (the run's summary counts them).
    """

    batch_id: int
    batch_duration_s: float

    @classmethod
    def of(cls, progress: dict) -> StreamProgress:
        """From a `lastProgress` dictionary."""
        return cls(
            int(progress["batchId"]),
            float((progress.get("durationMs") or {}).get("triggerExecution") or 0) / 1000,
        )


def _per_table() -> dict[str, int]:
    return dict.fromkeys(ALL_TABLES, 0)


@dataclass
class BatchRecord:
    """What one batch did besides its rows: files read, bad, late and duplicate trades, its lags.

    The batch's last commit carries it (`metadata`), so a run's summary counts every batch the run
    processed, even one whose writes had all been made by an earlier, failed attempt.
    """

    files: int
    bad_rows: int = 0
    late_rows: int = 0
    duplicates_skipped: int = 0
    lag: BatchLag | None = None

    def metadata(self) -> dict[str, str]:
        """The commit metadata that carries it: `META_BATCH`, and `META_BATCH_LAG` with lags."""
        counts = [self.files, self.bad_rows, self.late_rows, self.duplicates_skipped]
        found = {META_BATCH: json.dumps(counts)}
        if self.lag is not None:
            found[META_BATCH_LAG] = self.lag.to_json()
        return found

    @classmethod
    def of_commit(cls, metadata: Mapping[str, Any]) -> BatchRecord | None:
        """The record a commit's metadata carries, if any."""
        text = metadata.get(META_BATCH)
        if not text:
            return None
        files, bad, late, duplicates = json.loads(text)
        return cls(files, bad, late, duplicates, batch_lag_of(metadata))


@dataclass
class AnalyticsSummary:
    """What one run did: files and batches, rows per table (new, revised, removed, in all).

    `rows_written` counts the rows a run added to each table; `rows_revised` the rewrites of rows
    already there (a window updated by later trades, an alert recomputed with it: each rewrite
    once, so a window revised by three batches counts three); `rows_removed` the rows deleted
    (an alert that no longer holds). `lag` holds the run's end-to-end lags so far; `progress`
    Spark's latest batch progress; `notifications` what the run's deliverer sent (None: off).
    """

    files_processed: int = 0
    batches: int = 0
    rows_written: dict[str, int] = field(default_factory=_per_table)
    rows_revised: dict[str, int] = field(default_factory=_per_table)
    rows_removed: dict[str, int] = field(default_factory=_per_table)
    rows_total: dict[str, int] = field(default_factory=_per_table)
    duplicates_skipped: int = 0
    late_rows: int = 0
    bad_rows: int = 0
    seconds: float = 0.0
    lag: RunLag = field(default_factory=RunLag)
    progress: StreamProgress | None = None
    notifications: DeliveryStats | None = None

    def count(self, table: str, merged: MergeCounts) -> None:
        """Add what one MERGE did to `table`."""
        self.rows_written[table] += merged.inserted
        self.rows_revised[table] += merged.updated
        self.rows_removed[table] += merged.deleted

    def add_batch(self, record: BatchRecord) -> None:
        """Add one batch: its files, bad, late and duplicate rows, its lags (its rows: `count`)."""
        self.files_processed += record.files
        self.batches += 1
        self.bad_rows += record.bad_rows
        self.late_rows += record.late_rows
        self.duplicates_skipped += record.duplicates_skipped
        if record.lag is not None:
            self.lag.add(record.lag)

    @classmethod
    def of_commits(cls, commits: Iterable[RunCommit]) -> AnalyticsSummary:
        """A run's summary from the commits it made: rows from each, the rest from the records."""
        summary = cls()
        records: dict[int, BatchRecord] = {}
        for commit in commits:
            summary.count(commit.table, commit.counts)
            record = BatchRecord.of_commit(commit.metadata)
            if record is not None:
                records[commit.batch_id] = record
        for batch_id in sorted(records):  # so the run's latest lag is its last batch's
            summary.add_batch(records[batch_id])
        return summary

    def table_line(self, table: str) -> str:
        """``trades_analytics +4 new, 2 revised (8 in the table)``: what the run did to it."""
        parts = [f"+{self.rows_written[table]} new"]
        if self.rows_revised[table]:
            parts.append(f"{self.rows_revised[table]} revised")
        if self.rows_removed[table]:
            parts.append(f"{self.rows_removed[table]} removed")
        return f"{table} {', '.join(parts)} ({self.rows_total[table]} in the table)"

    def summary_line(self) -> str:
        """One line for the CLI and run metadata."""
        tables = ", ".join(self.table_line(name) for name in ALL_TABLES)
        lags = self.lag.stats()
        p95s = ", ".join(
            f"trade->{name} " + ("-" if lags[name].p95_s is None else f"{lags[name].p95_s:.2f} s")
            for name in LAGS
        )
        line = (
            f"analytics: {self.files_processed} files in {self.batches} batches, "
            f"{self.seconds:.1f} s; "
            f"{tables}; duplicates skipped {self.duplicates_skipped}, late rows {self.late_rows}, "
            f"bad rows {self.bad_rows}; p95 lag {p95s}"
        )
        return line if self.notifications is None else f"{line}; {self.notifications.line()}"


def first_line(error: BaseException) -> str:
    """The first line of an error's message, or its type's name."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def failure_line(batch_id: int, error: BaseException) -> str:
    """``analytics batch 3 failed: ValueError: ... (the next run re-runs it)``."""
    return (
        f"analytics batch {batch_id} failed: {type(error).__name__}: {first_line(error)}"
        " (the next run re-runs it)"
    )


class BatchFailedError(RuntimeError):
    """A failed batch's error as `failure_line`: the text Spark carries back to the caller."""


def first_per_trade(rows: pa.Table) -> pa.Table:
    """One row per (symbol, trade_id): the one from the first source file by name."""
    keys = rows.select(["symbol", "trade_id"]).group_by(["symbol", "trade_id"]).aggregate([])
    if keys.num_rows == rows.num_rows:  # no trade twice: the usual batch (sorting took seconds)
        return rows
    ordered = rows.sort_by(
        [("symbol", "ascending"), ("trade_id", "ascending"), ("source_file", "ascending")]
    )
    ordered = ordered.append_column("_row", pa.array(range(ordered.num_rows), pa.int64()))
    firsts = ordered.group_by(["symbol", "trade_id"], use_threads=False).aggregate(
        [("_row", "min")]
    )
    rows_kept = firsts["_row_min"]
    return ordered.take(pc.take(rows_kept, pc.sort_indices(rows_kept))).drop_columns(["_row"])


def by_date(trades: pa.Table) -> list[pa.Table]:
    """`trades` in pieces of at most `MAX_RUNS_PER_QUERY` trade dates (one MERGE each)."""
    dates = sorted(pc.unique(trades["trade_date"]).to_pylist())
    if len(dates) <= MAX_RUNS_PER_QUERY:
        return [trades]
    return [
        trades.filter(pc.is_in(trades["trade_date"], pa.array(piece, pa.string())))
        for piece in (
            dates[i : i + MAX_RUNS_PER_QUERY] for i in range(0, len(dates), MAX_RUNS_PER_QUERY)
        )
    ]


def in_runs(rows: pa.Table, runs: Sequence[Run]) -> pa.Array:
    """Which rows have their (symbol, window_start) inside one of `runs`."""
    inside = pa.array([False] * rows.num_rows, pa.bool_())
    start_ms = pc.divide(pc.cast(rows["window_start"], pa.int64()), 1000)
    for run in runs:
        in_run = pc.and_(
            pc.equal(rows["symbol"], run.symbol),
            pc.and_(pc.greater_equal(start_ms, run.first), pc.less_equal(start_ms, run.last)),
        )
        inside = pc.or_(inside, in_run)
    return inside


def stamped(rows: pa.Table, column: str, moment: dt.datetime) -> pa.Table:
    """`rows` with `column` added, `moment` on every row (a timestamp in microseconds, UTC)."""
    return rows.append_column(column, pa.array([moment] * rows.num_rows, pa.timestamp("us", "UTC")))


def alerts_in(scored: pa.Table, runs: Sequence[Run], detected: dt.datetime) -> pa.Table:
    """The price_alerts rows of scored windows (`transforms.alert_rows`) inside `runs`, detected
    at `detected`."""
    return stamped(alert_rows(scored.filter(in_runs(scored, runs))), "detected_time", detected)


class StepClock:
    """Seconds spent per step of a batch, for the log."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._start = self._last = time.monotonic()

    def lap(self, step: str) -> None:
        """Close the current step, adding its time to `step`'s."""
        now = time.monotonic()
        self.laps[step] = self.laps.get(step, 0.0) + now - self._last
        self._last = now

    @property
    def total(self) -> float:
        """Seconds since the clock started."""
        return time.monotonic() - self._start

    def __str__(self) -> str:
        steps = ", ".join(f"{step} {seconds:.2f}" for step, seconds in self.laps.items())
        return f"{self.total:.2f} s ({steps})"


def now_ms() -> int:
    """Wall clock, epoch milliseconds."""
    return time.time_ns() // 1_000_000


def _lags_s(trade_times: pa.Array | pa.ChunkedArray, at_ms: int) -> pa.Array:
    lags = pc.divide(pc.cast(pc.subtract(at_ms, trade_times), pa.float64()), 1000.0)
    return lags.combine_chunks() if isinstance(lags, pa.ChunkedArray) else lags


def _key_ms(moment: dt.datetime) -> int:
    return round(moment.timestamp() * 1000)


class LagProbe:
    """The lags of the trades one batch inserted, taken as the batch's commits land.

    trade -> trades_raw and trade -> window are wall clock after the step's final commit minus
    trade_time. trade -> alert is, per alert new in this batch, its detected_time minus the
    earliest trade_time among this batch's inserted trades in its window: an upper bound of the
    lag of the trade that triggered it (which may be a later one in the same batch).
    """

    def __init__(self, window_ms: int) -> None:
        self.window_ms = window_ms
        self.samples: dict[str, Sequence[float] | pa.Array] = {name: [] for name in LAGS}
        self._open_times = pa.array([], pa.int64())
        self._first_in_window: dict[tuple[str, int], int] = {}

    def trades_committed(self, inserted: pa.Table, open_rows: pa.Array) -> None:
        """The batch's inserted trades (symbol, trade_time) are committed to trades_raw."""
        self.samples["raw"] = _lags_s(inserted["trade_time"], now_ms())
        opened = inserted.filter(open_rows).select(["symbol", "trade_time"])
        self._open_times = opened["trade_time"].combine_chunks()
        starts = window_starts(opened["trade_time"], self.window_ms)
        firsts = (
            opened.append_column("start", starts)
            .group_by(["symbol", "start"], use_threads=False)
            .aggregate([("trade_time", "min")])
        )
        self._first_in_window = {
            (row["symbol"], row["start"]): row["trade_time_min"] for row in firsts.to_pylist()
        }

    def windows_committed(self) -> None:
        """The windows of the batch's open trades are committed to trades_analytics."""
        self.samples["window"] = _lags_s(self._open_times, now_ms())

    def alerts_found(self, new_alerts: pa.Table) -> None:
        """Alerts about to be written that did not exist before the batch."""
        lags = list(self.samples["alert"])  # earlier pieces of the batch
        for row in new_alerts.select(["symbol", "window_start", "detected_time"]).to_pylist():
            first = self._first_in_window.get((row["symbol"], _key_ms(row["window_start"])))
            if first is not None:  # a window this batch put no trade into: not its lag
                lags.append((_key_ms(row["detected_time"]) - first) / 1000)
        self.samples["alert"] = lags

    @property
    def measured(self) -> bool:
        """True when the batch inserted a trade."""
        return len(self.samples["raw"]) > 0

    def batch_lag(self, tag: BatchTag) -> BatchLag:
        """The batch's stats, as of now."""
        return BatchLag.of(tag.app_id, tag.batch_id, now_ms(), self.samples)


@dataclass(frozen=True)
class BatchContext:
    """What the steps of one batch share: its tag, sink, lag probe and record."""

    tag: BatchTag
    sink: TableSink
    probe: LagProbe
    record: BatchRecord


class BatchProcessor:
    """The foreachBatch function: quarantine, trades_raw, trades_analytics, price_alerts.

    It holds no Spark session (each batch binds `sink` to its DataFrame's), so it also runs pickled
    in another process (Spark Connect). What a batch did goes into its commits; `live`, when
    given, is filled too as batches complete, for reports of a continuous run in this process.
    `alert_outbox`, when given (notifications on), receives the alerts each batch adds.
    """

    def __init__(
        self,
        reader: LandingReader,
        sink: TableSink,
        app_id: Callable[[], str],
        *,
        window_seconds: float,
        watermark_seconds: float,
        rules: AlertRules,
        maintenance: MaintenancePolicy | None = None,
        on_step: StepHook | None = None,
        live: AnalyticsSummary | None = None,
        alert_outbox: AlertOutbox | None = None,
    ) -> None:
        self.reader = reader
        self.sink = sink
        self._app_id = app_id
        self.window_ms = round(window_seconds * 1000)
        self.watermark_ms = round(watermark_seconds * 1000)
        self.rules = rules
        self.scoring = scoring_sql(self.window_ms, rules)
        self.maintenance = maintenance
        self.on_step = on_step
        self.live = live
        self.alert_outbox = alert_outbox
        self.failure: tuple[int, Exception] | None = None

    def __call__(self, batch_df: DataFrame, batch_id: int) -> None:
        """Process one micro-batch; every step is skipped or idempotent when the batch replays."""
        try:
            self._process(batch_df, batch_id)
        except Exception as exc:
            # Spark reports it wrapped in a Java stack trace, and on Spark Connect as the text of
            # another process's traceback: a caller in this process takes the error from here, any
            # caller finds the one line of `BatchFailedError` in that text.
            self.failure = (batch_id, exc)
            raise BatchFailedError(failure_line(batch_id, exc)) from exc

    def _process(self, batch_df: DataFrame, batch_id: int) -> None:
        clock = StepClock()
        tag = BatchTag(self._app_id(), batch_id)
        decoded, files = self.reader.decode(batch_df, dt.datetime.now(dt.UTC))
        clock.lap("read")
        if files == 0:
            return
        record = BatchRecord(files, bad_rows=decoded.rejected.num_rows)
        sink = self.sink.on(batch_df.sparkSession)
        batch = BatchContext(tag, sink, LagProbe(self.window_ms), record)
        self._quarantine(batch, decoded.rejected)
        clock.lap(TRADES_QUARANTINE)
        good = decoded.trades
        recorded = False
        if good.num_rows:
            runs = self._trades_raw(batch, first_per_trade(good), good.num_rows)
            clock.lap(TRADES_RAW)
            if runs:
                recorded = self._windows_and_alerts(batch, runs, clock)
        if not recorded:  # no price_alerts commit of this attempt carries the record: one more
            record.lag = batch.probe.batch_lag(tag) if batch.probe.measured else None
            batch.sink.record_batch(tag, record.metadata())
            self._add_live(record)
            clock.lap("record")
        if self.maintenance is not None and self.maintenance.due(batch_id):
            batch.sink.maintain(self.maintenance.retention_hours)
            self.reader.expire_processed()
            clock.lap("maintenance")
        rows = good.num_rows + decoded.rejected.num_rows
        logger.info(
            "batch %s: %s files, %s trades, %s rejected lines, %s, %.0f rows/s; lag %s",
            batch_id,
            files,
            good.num_rows,
            decoded.rejected.num_rows,
            clock,
            rows / max(clock.total, 1e-9),
            "none" if record.lag is None else record.lag.line(),
        )

    def _count(self, table: str, merged: MergeCounts) -> None:
        if self.live is not None:
            self.live.count(table, merged)

    def _add_live(self, record: BatchRecord) -> None:
        if self.live is not None:
            self.live.add_batch(record)

    def _step_done(self, table: str, batch_id: int) -> None:
        if self.on_step is not None:
            self.on_step(table, batch_id)

    def _quarantine(self, batch: BatchContext, bad: pa.Table) -> None:
        sink, tag = batch.sink, batch.tag
        if bad.num_rows == 0 or sink.applied(TRADES_QUARANTINE, tag):
            return
        reasons = pc.value_counts(bad["reason"]).to_pylist()
        common = max(reasons, key=lambda r: r["counts"])
        logger.warning(
            "batch %s: %s landing lines quarantined in %s (most often: %s)",
            tag.batch_id,
            bad.num_rows,
            TRADES_QUARANTINE,
            common["values"],
        )
        sink.append_quarantine(bad, tag)
        self._count(TRADES_QUARANTINE, MergeCounts(bad.num_rows))
        self._step_done(TRADES_QUARANTINE, tag.batch_id)

    @staticmethod
    def _watermark_input(sink: TableSink, tag: BatchTag) -> int | None:
        """Latest trade time before this batch: as its first attempt recorded, else the table's."""
        found, max_before = sink.recorded_max_trade_time(tag)
        return max_before if found else sink.max_trade_time()

    def _trades_raw(self, batch: BatchContext, good: pa.Table, landed: int) -> list[Run]:
        """Merge the batch's unique good trades (of `landed` good rows) into trades_raw.

        Returns the runs of open windows (not yet past the watermark) the batch touched, hands
        the trades it inserted to the batch's probe, and counts late and duplicates in its record.
        """
        sink, tag, record = batch.sink, batch.tag, batch.record
        max_before = self._watermark_input(sink, tag)
        starts = window_starts(good["trade_time"], self.window_ms)
        late = pa.array([False] * good.num_rows, pa.bool_())
        if max_before is not None:
            closed_until = max_before - self.watermark_ms
            late = pc.less_equal(pc.add(starts, self.window_ms), closed_until)
        late_count = pc.sum(late).as_py() or 0
        if sink.applied(TRADES_RAW, tag):
            record.late_rows = late_count
            logger.info("batch %s: trades_raw already holds this batch (replay)", tag.batch_id)
        else:
            # The trades already known (duplicates, or a failed attempt's earlier pieces) are
            # neither inserted nor late news: the rest is what this attempt inserts.
            known = sink.existing_trades(id_runs(good["symbol"], good["trade_id"], 1000))
            new = (
                good.select(["symbol", "trade_id", "trade_time"])
                .append_column("_late", late)
                .join(known, ["symbol", "trade_id"], join_type="left anti")
            )
            record.late_rows = pc.sum(new["_late"]).as_py() or 0
            inserted = 0
            pieces = by_date(good)
            for index, piece in enumerate(pieces):
                final = index == len(pieces) - 1
                merged = sink.merge_trades_raw(
                    piece, tag, max_before, final=final, unseen=known.num_rows == 0
                )
                inserted += merged
                self._count(TRADES_RAW, MergeCounts(merged))
                if final:
                    batch.probe.trades_committed(new, pc.invert(new["_late"]))
                self._step_done(TRADES_RAW if final else f"{TRADES_RAW}:{index}", tag.batch_id)
            record.duplicates_skipped = landed - inserted
        if late_count:
            logger.warning(
                "batch %s: %s trades arrived after the watermark; kept in %s only",
                tag.batch_id,
                late_count,
                TRADES_RAW,
            )
        open_rows = pc.invert(late)
        lookback = self.rules.volume_spike_lookback
        return runs_of(
            good["symbol"].filter(open_rows), starts.filter(open_rows), self.window_ms, lookback
        )

    def _windows_and_alerts(self, batch: BatchContext, runs: list[Run], clock: StepClock) -> bool:
        """Recompute the windows `runs` touched and the alerts they affect, in pieces.

        A piece's windows and alerts come from one query of the sink's engine, so one conversion
        to Arrow. Each piece commits its windows, then its alerts; the final piece's commits mark
        the steps applied, and its price_alerts commit carries the batch's record (returns True).
        """
        sink, tag, probe = batch.sink, batch.tag, batch.probe
        outbox = self.alert_outbox
        if sink.applied(PRICE_ALERTS, tag):
            if outbox is not None:  # a crash may have come between the commit and the release
                outbox.release(tag)
            return False
        windows_applied = sink.applied(TRADES_ANALYTICS, tag)
        # A window's volume baseline covers the `lookback` slots before it, and whether each of
        # them counts depends on the slot before it (a slot after one without a row is an edge,
        # outside every history). So a touched window at slot s changes the alerts of the
        # windows up to s + 1 + lookback, and alerts are computed from the lookback + 1 slots
        # before them: rows farther back are outside every history and change nothing.
        reach = (self.rules.volume_spike_lookback + 1) * self.window_ms
        pieces = list(chunks(runs))
        for index, piece in enumerate(pieces):
            final = index == len(pieces) - 1
            affected = widened(piece, after=reach)
            windows, alerts = self._recompute(batch, piece, affected, reach)
            if not windows_applied:
                merged = sink.merge_analytics(windows, tag, final=final)
                if final:
                    probe.windows_committed()
                self._count(TRADES_ANALYTICS, merged)
                step = TRADES_ANALYTICS if final else f"{TRADES_ANALYTICS}:{index}"
                self._step_done(step, tag.batch_id)
            clock.lap(TRADES_ANALYTICS)
            self._replace_alerts(batch, alerts, affected, final=final, index=index)
            clock.lap(PRICE_ALERTS)
        return True

    def _recompute(
        self, batch: BatchContext, piece: list[Run], affected: list[Run], reach: int
    ) -> tuple[pa.Table, pa.Table]:
        """The windows of `piece` from trades_raw, and the alerts inside `affected`.

        The alerts' inputs are these windows and, read from trades_analytics, the others of
        `affected` and the `reach` before them: earlier pieces of the batch are committed. One
        query of the sink's engine computes both.
        """
        stored = widened(affected, before=reach)
        scored = batch.sink.score(self.scoring, piece, self.window_ms, stored)
        computed = dt.datetime.now(dt.UTC)
        windows = scored.filter(scored["_fresh"]).select(WINDOW_COLUMNS)
        return stamped(windows, "updated_time", computed), alerts_in(scored, affected, computed)

    def _replace_alerts(
        self, batch: BatchContext, alerts: pa.Table, affected: list[Run], *, final: bool, index: int
    ) -> None:
        """Make price_alerts hold `alerts` inside `affected`; the final piece records the batch."""
        sink, tag, probe, record = batch.sink, batch.tag, batch.probe, batch.record
        outbox = self.alert_outbox
        if alerts.num_rows and (probe.measured or outbox is not None):
            before = sink.alert_keys(affected)
            new = alerts.join(
                before, ["symbol", "window_start", "alert_type"], join_type="left anti"
            )
            if probe.measured:
                probe.alerts_found(new)
            if outbox is not None:  # before the commit that adds them
                outbox.stage(tag, new)
        if final:
            record.lag = probe.batch_lag(tag) if probe.measured else None
        merged = sink.replace_alerts(
            alerts, affected, tag, final=final, record=record.metadata() if final else None
        )
        self._count(PRICE_ALERTS, merged)
        if final:  # before the step's hook: a report it triggers sees the whole batch
            self._add_live(record)
        self._step_done(PRICE_ALERTS if final else f"{PRICE_ALERTS}:{index}", tag.batch_id)
        if final and outbox is not None:  # after the hook, which a fault test may fail
            outbox.release(tag)
