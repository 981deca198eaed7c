"""The analytics' ports: what a deployment plugs into the batch algorithm, and what it reads back.

A deployment answers with an `AnalyticsTarget`: a `StreamingReader` of its landing files, a
`ManagedSink` of its four tables and the query's checkpoint. Every commit of a sink carries, in
its metadata, the streaming batch it belongs to (`BatchTag`), and the trades_raw ones the watermark
input of the batch (the `META_*` keys), so a replayed batch finds what its first attempt did. Each
batch's last commit also carries its record (`META_BATCH`: files, bad, late and duplicate rows)
and its lags, so a run's summary is read back from the commits it made (`ManagedSink.run_commits`):
on Spark Connect the batches run in another process, whose objects the caller never sees.

No Spark and no Delta library here: Dagster's process imports the ports to build a deployment
without loading PySpark (`pyspark` appears in annotations only).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, Self

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

    from crypto_assets.analytics.landing_decoder import DecodedBatch
    from crypto_assets.analytics.landing_retention import Expired
    from crypto_assets.analytics.window_runs import Run

# The bytes of landing files one batch reads: ~260,000 producer trades, the driver peaks near
# 1 GB resident (measured with benchmarks/analytics_throughput.py); 32 MiB took a quarter longer
# for a backlog.
DEFAULT_MAX_BYTES_PER_TRIGGER = 64 * 1024 * 1024


# Keys of the commit metadata that persist the watermark input of a batch across restarts.
META_APP_ID = "crypto_assets.app_id"
META_BATCH_ID = "crypto_assets.batch_id"
META_MAX_TRADE_TIME = "crypto_assets.max_trade_time_before_ms"
# The record of a batch (`batch.BatchRecord` JSON), in the batch's last commit.
META_BATCH = "crypto_assets.batch"


class BatchTag(NamedTuple):
    """The streaming batch a commit belongs to: the query id and the batch id."""

    app_id: str
    batch_id: int


class MergeCounts(NamedTuple):
    """What one MERGE did to a table: rows it inserted, rewrote in place and deleted."""

    inserted: int
    updated: int = 0
    deleted: int = 0


class RunCommit(NamedTuple):
    """One commit a run made: its table, its batch, what it did to the rows, its metadata."""

    table: str
    batch_id: int
    counts: MergeCounts
    metadata: Mapping[str, Any]


def recorded_watermark(
    commits: Iterable[Mapping[str, Any]], tag: BatchTag
) -> tuple[bool, int | None] | None:
    """The watermark input `tag`'s batch stored with its trades_raw commits, from `commits`
    (their metadata, newest first): ``(True, value)`` when found, ``(False, None)`` when a commit
    of an earlier batch of the same query comes first (a query's batches commit in order, so this
    one committed nothing), None when `commits` end undecided.

    It reads `commits` only up to its answer: usually the newest, the previous batch's.
    """
    for commit in commits:
        if commit.get(META_APP_ID) != tag.app_id:
            continue  # maintenance, a table property, another query
        batch_id = int(commit[META_BATCH_ID])
        if batch_id == tag.batch_id:
            value = commit.get(META_MAX_TRADE_TIME) or None
            return True, None if value is None else int(value)
        if batch_id < tag.batch_id:
            return False, None
    return None


class LandingReader(Protocol):
    """Turns one micro-batch of the landing stream into good trades and rejected lines."""

    def decode(self, batch_df: DataFrame, processed: dt.datetime) -> tuple[DecodedBatch, int]:
        """The batch's (decoded rows, number of files)."""
        ...

    def expire_processed(self) -> Expired:
        """Age out landing files archived after their batch committed (`landing_retention`)."""
        ...


class TableSink(Protocol):
    """The four tables, written idempotently per `BatchTag` (delta-rs, or Delta-Spark).

    A sink travels with the batch function, pickled on Spark Connect, without its Spark session
    (which is the caller's and does not pickle): each batch binds it to its own with `on`.
    """

    def on(self, spark: SparkSession) -> Self:
        """This sink, reading and writing through `spark` (the session of the batch's DataFrame)."""
        ...

    def applied(self, name: str, tag: BatchTag) -> bool:
        """True when `name` holds this batch's last commit."""
        ...

    def append_quarantine(self, rows: pa.Table, tag: BatchTag) -> None:
        """Append rejected lines."""
        ...

    def max_trade_time(self) -> int | None:
        """Latest trade_time in trades_raw."""
        ...

    def recorded_max_trade_time(self, tag: BatchTag) -> tuple[bool, int | None]:
        """(found, value) of the watermark input stored by this batch's first attempt."""
        ...

    def existing_trades(self, id_runs: Sequence[Run]) -> pa.Table:
        """(symbol, trade_id) of trades_raw inside runs of trade ids."""
        ...

    def merge_trades_raw(
        self,
        rows: pa.Table,
        tag: BatchTag,
        max_before: int | None,
        *,
        final: bool,
        unseen: bool = False,
    ) -> int:
        """Insert unseen trades of at most `MAX_RUNS_PER_QUERY` dates; rows inserted.

        `unseen`: the caller found none of `rows` in the table (`existing_trades`), so a sink that
        is the table's one writer may append them instead of merging.
        """
        ...

    def merge_analytics(self, rows: pa.Table, tag: BatchTag, *, final: bool) -> MergeCounts:
        """Upsert window rows: new windows inserted, windows already there rewritten."""
        ...

    def score(
        self, sql: str, trades: Sequence[Run], window_ms: int, stored: Sequence[Run]
    ) -> pa.Table:
        """`transforms.scoring_sql`'s `sql` run where the tables are, as Arrow.

        ``{trades}`` is bound to trades_raw's trades in the windows of `trades`, ``{stored}`` to
        trades_analytics' windows inside `stored` but outside `trades` (each at most
        `MAX_RUNS_PER_QUERY` runs).
        """
        ...

    def alert_keys(self, runs: Sequence[Run]) -> pa.Table:
        """(symbol, window_start, alert_type) of price_alerts inside `runs`."""
        ...

    def replace_alerts(
        self,
        rows: pa.Table,
        runs: Sequence[Run],
        tag: BatchTag,
        *,
        final: bool,
        record: Mapping[str, str] | None = None,
    ) -> MergeCounts:
        """Make price_alerts hold exactly `rows` inside `runs`; the final commit gets `record`.

        `record` is the batch's record and lags (`META_BATCH`, `lag.META_BATCH_LAG`): a `final`
        call that changes no row still makes a commit to carry them.
        """
        ...

    def record_batch(self, tag: BatchTag, record: Mapping[str, str]) -> None:
        """A commit of no rows in price_alerts carrying `record`, for a batch that wrote none.

        No app transaction: it is made again whenever the batch runs again, so each run that
        processed the batch counts it.
        """
        ...

    def maintain(self, retention_hours: int) -> None:
        """Compact and vacuum the tables."""
        ...


class StreamingReader(LandingReader, Protocol):
    """A `LandingReader` that also opens the landing stream."""

    def stream(self, spark: SparkSession) -> DataFrame:
        """The streaming DataFrame the batches are cut from."""
        ...


class ManagedSink(TableSink, Protocol):
    """A `TableSink` that creates its tables and counts their rows."""

    def ensure_tables(self) -> None:
        """Create any missing table."""
        ...

    def row_count(self, name: str) -> int:
        """Rows in `name`."""
        ...

    def versions(self) -> dict[str, int]:
        """The latest version of each table (-1 for none): a run's commits come after these."""
        ...

    def run_commits(self, app_id: str, after: Mapping[str, int]) -> list[RunCommit]:
        """The commits of query `app_id` newer than the versions `after` (from `versions`)."""
        ...


@dataclass(frozen=True)
class AnalyticsTarget:
    """What one run of the analytics reads, writes and checkpoints to: a deployment's answer.

    `alerts_outbox` is where the alerts go on their way to people when notifications are on
    (`alert_outbox`); `missing_landing` says what to do when `landing_dir` does not exist yet.
    """

    landing_dir: Path
    checkpoint: Path
    reader: StreamingReader
    sink: ManagedSink
    alerts_outbox: Path
    missing_landing: str = "run the producer first or fix --data-dir"
