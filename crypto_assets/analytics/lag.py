"""End-to-end lag of the analytics: per batch exactly, per run in a small bounded histogram.

Three lags, in seconds, of the trades a batch inserted (see `batch.BatchProcessor`): trade ->
trades_raw, trade -> its window's update, trade -> alert. A batch's stats travel in the commit
metadata of its final price_alerts commit (`META_BATCH_LAG`), so `crypto-assets show` and the soak
read recent batches back from the Delta history with delta-rs alone.

The run's percentiles come from `LagHistogram`: log-spaced buckets with a relative error of at
most 1 % (a DDSketch without collapsing), so a run of days keeps at most ~1,100 counters per lag.
Written here rather than taken from a library: it is forty lines, and the sketch packages on the
registry are either unmaintained or bring protobuf for a serialisation we do not need.
"""

from __future__ import annotations

import json
import math
import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

META_BATCH_LAG = "crypto_assets.batch_lag"
LAGS = ("raw", "window", "alert")
RELATIVE_ERROR = 0.01
# Lags below this count as 0 (a clock difference, not a lag); the bucket count stays bounded.
MIN_LAG_SECONDS = 0.001
_GAMMA = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)
_LOG_GAMMA = math.log(_GAMMA)
_ZERO = -(2**31)  # the bucket of lags below MIN_LAG_SECONDS


class LagStats(NamedTuple):
    """Count, p50, p95 and max of one lag, in seconds (None when there is no sample)."""

    count: int
    p50_s: float | None
    p95_s: float | None
    max_s: float | None


NO_LAG = LagStats(0, None, None, None)


def _seconds_array(seconds: Sequence[float] | pa.Array) -> pa.Array:
    """Lags in seconds as a float64 Arrow array (as given when already one)."""
    return seconds if isinstance(seconds, pa.Array) else pa.array(seconds, pa.float64())


class LagHistogram:
    """Counts of lags in log-spaced buckets: quantiles within `RELATIVE_ERROR`, bounded memory."""

    def __init__(self, buckets: Mapping[int, int] | None = None, max_s: float = 0.0) -> None:
        self.buckets: Counter[int] = Counter(buckets or {})
        self.max_s = max_s

    @property
    def count(self) -> int:
        """Number of samples."""
        return sum(self.buckets.values())

    def add(self, seconds: float, count: int = 1) -> None:
        """Record a lag (negative ones, clock skew, as 0)."""
        small = seconds < MIN_LAG_SECONDS
        index = _ZERO if small else math.ceil(math.log(seconds) / _LOG_GAMMA)
        self.buckets[index] += count
        self.max_s = max(self.max_s, seconds)

    def add_all(self, seconds: Sequence[float] | pa.Array) -> None:
        """Record every lag of `seconds` (as `add` does one by one, in a few array operations)."""
        values = _seconds_array(seconds)
        if len(values) == 0:
            return
        small = pc.less(values, MIN_LAG_SECONDS)
        zeros = pc.sum(small).as_py() or 0
        if zeros:
            self.buckets[_ZERO] += zeros
        rest = values.filter(pc.invert(small))
        if len(rest):
            indices = pc.cast(pc.ceil(pc.divide(pc.ln(rest), _LOG_GAMMA)), pa.int64())
            for row in pc.value_counts(indices).to_pylist():
                self.buckets[row["values"]] += row["counts"]
        self.max_s = max(self.max_s, pc.max(values).as_py())

    def merge(self, other: LagHistogram) -> None:
        """Add every sample of `other`."""
        self.buckets.update(other.buckets)
        self.max_s = max(self.max_s, other.max_s)

    def quantile(self, q: float) -> float | None:
        """The `q` quantile (0..1) within `RELATIVE_ERROR`; None when empty."""
        total = self.count
        if total == 0:
            return None
        rank = q * (total - 1)  # the sample at this 0-based rank, as numpy's "lower"/"higher"
        seen = 0
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if seen > rank:
                if index == _ZERO:
                    return 0.0
                # The bucket (gamma^(i-1), gamma^i] is represented by its relative midpoint.
                return min(2 * _GAMMA**index / (_GAMMA + 1), self.max_s)
        return self.max_s

    def stats(self) -> LagStats:
        """p50, p95 and max of the samples."""
        if not self.buckets:
            return NO_LAG
        return LagStats(self.count, self.quantile(0.5), self.quantile(0.95), self.max_s)

    def to_json(self) -> list:
        """[max, [[bucket, count], ...]]: compact enough for a commit's metadata."""
        return [round(self.max_s, 3), [[i, n] for i, n in sorted(self.buckets.items())]]

    @classmethod
    def from_json(cls, value: Sequence) -> LagHistogram:
        """The inverse of `to_json`."""
        max_s, pairs = value
        return cls({int(i): int(n) for i, n in pairs}, float(max_s))


def exact_stats(seconds: Sequence[float] | pa.Array) -> LagStats:
    """p50/p95 (linear interpolation, like numpy's default) and max of a batch's samples."""
    values = _seconds_array(seconds)
    if len(values) == 0:
        return NO_LAG
    clamped = pc.max_element_wise(values, 0.0)
    ordered = clamped.take(pc.sort_indices(clamped))

    def at(q: float) -> float:
        rank = q * (len(ordered) - 1)
        low = math.floor(rank)
        high = min(low + 1, len(ordered) - 1)
        low_value, high_value = ordered[low].as_py(), ordered[high].as_py()
        return low_value + (high_value - low_value) * (rank - low)

    return LagStats(len(ordered), at(0.5), at(0.95), ordered[-1].as_py())


@dataclass
class BatchLag:
    """One batch's lags: exact stats per lag and the histogram of its samples."""

    app_id: str
    batch_id: int
    finished_ms: int
    stats: dict[str, LagStats]
    histograms: dict[str, LagHistogram]

    @classmethod
    def of(
        cls,
        app_id: str,
        batch_id: int,
        finished_ms: int,
        samples: Mapping[str, Sequence[float] | pa.Array],
    ) -> BatchLag:
        """The stats of the raw/window/alert `samples` (seconds) of one batch."""
        histograms = {}
        for name in LAGS:
            histogram = LagHistogram()
            histogram.add_all(samples.get(name, ()))
            histograms[name] = histogram
        stats = {name: exact_stats(samples.get(name, ())) for name in LAGS}
        return cls(app_id, batch_id, finished_ms, stats, histograms)

    @property
    def raw(self) -> LagStats:
        """trade -> trades_raw."""
        return self.stats["raw"]

    @property
    def window(self) -> LagStats:
        """trade -> its window's update."""
        return self.stats["window"]

    @property
    def alert(self) -> LagStats:
        """trade -> alert."""
        return self.stats["alert"]

    def to_json(self) -> str:
        """The compact JSON stored under `META_BATCH_LAG`."""
        return json.dumps(
            {
                "app_id": self.app_id,
                "batch_id": self.batch_id,
                "finished_ms": self.finished_ms,
                "stats": {n: [_ms(v) for v in s] for n, s in self.stats.items()},
                "hist": {n: h.to_json() for n, h in self.histograms.items() if h.count},
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> BatchLag:
        """The inverse of `to_json`."""
        value = json.loads(text)
        stats = {n: LagStats(*value["stats"].get(n, NO_LAG)) for n in LAGS}
        hist = value.get("hist", {})
        histograms = {
            n: LagHistogram.from_json(hist[n]) if n in hist else LagHistogram() for n in LAGS
        }
        return cls(
            value["app_id"], int(value["batch_id"]), int(value["finished_ms"]), stats, histograms
        )

    def line(self) -> str:
        """One log line: p50/p95/max of each lag."""
        return "; ".join(f"trade->{name} {describe(self.stats[name])}" for name in LAGS)


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def describe(stats: LagStats) -> str:
    """``p50 1.2 s, p95 3.4 s, max 5.0 s (n=12)``, or ``none`` without samples."""
    if stats.count == 0:
        return "none"
    return (
        f"p50 {stats.p50_s:.2f} s, p95 {stats.p95_s:.2f} s, max {stats.max_s:.2f} s "
        f"(n={stats.count})"
    )


@dataclass
class RunLag:
    """A run's lags so far: one histogram per lag, and the latest batch's stats.

    The query's thread adds batches while a continuous run's reports read it: a lock keeps a
    reader from iterating a histogram that is being updated.
    """

    histograms: dict[str, LagHistogram] = field(
        default_factory=lambda: {name: LagHistogram() for name in LAGS}
    )
    latest: BatchLag | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, batch: BatchLag) -> None:
        """Count a batch's samples into the run."""
        with self._lock:
            for name in LAGS:
                self.histograms[name].merge(batch.histograms[name])
            self.latest = batch

    def stats(self) -> dict[str, LagStats]:
        """p50/p95/max per lag over the run so far."""
        with self._lock:
            return {name: self.histograms[name].stats() for name in LAGS}


def merge_batch_lags(batches: Iterable[BatchLag]) -> dict[str, LagStats]:
    """p50/p95/max per lag over all `batches` (from their histograms)."""
    run = RunLag()
    for batch in batches:
        run.add(batch)
    return run.stats()


def batch_lag_of(commit: Mapping[str, Any]) -> BatchLag | None:
    """The batch lag a commit's info carries: a delta-rs custom key or Spark's userMetadata JSON."""
    text = commit.get(META_BATCH_LAG)
    if text is None and isinstance(commit.get("userMetadata"), str):
        try:
            user = json.loads(commit["userMetadata"])
        except ValueError:
            return None
        text = user.get(META_BATCH_LAG) if isinstance(user, dict) else None
    if not text:
        return None
    try:
        return BatchLag.from_json(text)
    except (ValueError, KeyError, TypeError):
        return None


def recent_batch_lags(commits: Iterable[Mapping[str, Any]], limit: int) -> list[BatchLag]:
    """The `limit` newest batch lags among `commits` (given newest first)."""
    found = []
    for commit in commits:
        lag = batch_lag_of(commit)
        if lag is not None:
            found.append(lag)
            if len(found) >= limit:
                break
    return found


def read_recent_batch_lags(
    table_path: Path | str, limit: int = 20, depth: int = 200
) -> list[BatchLag]:
    """Newest first, the lags of the last batches in price_alerts' last `depth` commits."""
    if not DeltaTable.is_deltatable(str(table_path)):
        return []
    history = DeltaTable(str(table_path)).history(depth)
    ordered = sorted(history, key=lambda c: -int(c.get("version", 0)))
    return recent_batch_lags(ordered, limit)
