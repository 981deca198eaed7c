"""Asset checks: data quality of the Delta tables, how far they lag landing and the trades, and
whether the streaming checkpoint stays bounded.

The evaluators are plain functions over Arrow tables and file listings, so tests call them on
tiny tables; the analytics asset attaches their results to its materializations (`check_specs`).
The data checks judge what a run wrote (its trades, its windows), which the asset reads from the
tables by file statistics (`Lakehouse.read_written`): a check costs what the run wrote, however
large the tables grow, and every row is judged by the run that writes it.
Freshness is not a check here: Dagster's freshness policies (`freshness.py`) judge it on their own.
Numeric metadata is what Dagster plots over evaluations, so only counts that can move are numbers;
constants and per-column details are text.
"""

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from crypto_assets.analytics.lag import BatchLag, LagStats, merge_batch_lags
from crypto_assets.analytics.lakehouse import (
    TRADES_ANALYTICS,
    TRADES_RAW,
    CheckpointSize,
    LandingFile,
)

LANDING_TRADES = "landing_trades"

CHECK_UNIQUE_TRADE_IDS = "check_trades_raw_unique_trade_ids"
CHECK_LANDING_TO_TABLE_LAG = "check_landing_to_table_lag"
CHECK_VWAP_WITHIN_LOW_HIGH = "check_vwap_within_low_high"
CHECK_KEY_COLUMNS_NOT_NULL = "check_trades_analytics_key_columns_not_null"
CHECK_TRADE_LAG_P95 = "check_trade_lag_p95"
CHECK_CHECKPOINT_BOUNDED = "check_checkpoint_bounded"

# The batches the lag check judges: the latest ones, about a minute of 5 s landing files.
LAG_BATCHES_JUDGED = 12
# Spark keeps this many batches in a checkpoint's offsets and commits logs (minBatchesToRetain);
# an offsets log holding more than twice as many is not being cleaned up: it grows without bound.
SPARK_BATCHES_RETAINED = 100

ANALYTICS_KEY_COLUMNS = (
    "symbol",
    "window_start",
    "window_end",
    "trade_count",
    "volume",
    "vwap",
    "open",
    "high",
    "low",
    "close",
)
# vwap = Σp·q / Σq can land a few ulps outside [low, high] when every trade has the same price.
_RELATIVE_TOLERANCE = 1e-9
_SAMPLE = 5

ANALYTICS_CHECK_SPECS = (
    dg.AssetCheckSpec(
        CHECK_UNIQUE_TRADE_IDS,
        asset=TRADES_RAW,
        description=(
            "Every (symbol, trade_id) appears in trades_raw at most once: each trade a run "
            "inserts, against trades_raw's trades of the same ids and trade times."
        ),
    ),
    dg.AssetCheckSpec(
        CHECK_LANDING_TO_TABLE_LAG,
        asset=TRADES_RAW,
        description=(
            "Landing files the analytics have not processed yet are younger than the allowed "
            "lag (judged where the deployment can tell them, from the query's checkpoint)."
        ),
    ),
    dg.AssetCheckSpec(
        CHECK_VWAP_WITHIN_LOW_HIGH,
        asset=TRADES_ANALYTICS,
        description="Every window a run writes has its VWAP between its low and high price.",
    ),
    dg.AssetCheckSpec(
        CHECK_KEY_COLUMNS_NOT_NULL,
        asset=TRADES_ANALYTICS,
        description="No nulls in the key and price columns of the windows a run writes.",
    ),
    dg.AssetCheckSpec(
        CHECK_TRADE_LAG_P95,
        asset=TRADES_RAW,
        description=(
            "Over the latest batches, p95 of trade → trades_raw and of trade → alert lag is "
            "within max_p95_lag_seconds."
        ),
    ),
    dg.AssetCheckSpec(
        CHECK_CHECKPOINT_BOUNDED,
        asset=TRADES_RAW,
        description=(
            "The streaming checkpoint stays within max_checkpoint_files and "
            "max_checkpoint_bytes, and Spark still purges its old batches."
        ),
    ),
)


class CheckLimits(NamedTuple):
    """The bounds the checks judge by (fields of the analytics run config, same names)."""

    max_lag_seconds: float = 300.0
    max_p95_lag_seconds: float = 30.0
    max_checkpoint_files: int = 2_000
    max_checkpoint_bytes: int = 256 * 1024 * 1024

    @classmethod
    def of(cls, config: Mapping[str, Any]) -> "CheckLimits":
        """The limits in a run config's fields (the others ignored)."""
        return cls(**{name: config[name] for name in cls._fields if name in config})


def check_unique_trade_ids(
    table: pa.Table | None, new_trades: int | None = None
) -> dg.AssetCheckResult:
    """Fails when a (symbol, trade_id) pair occurs more than once in `table`.

    `table` holds trades_raw's (symbol, trade_id) rows: those sharing the ids and trade times of
    the `new_trades` trades a run inserted, these included.
    """
    judged = {} if new_trades is None else {"new_trades": new_trades}
    if table is None or table.num_rows == 0:
        return dg.AssetCheckResult(
            check_name=CHECK_UNIQUE_TRADE_IDS,
            asset_key=TRADES_RAW,
            passed=True,
            metadata={"rows": 0, **judged},
        )
    counts = table.group_by(["symbol", "trade_id"]).aggregate([([], "count_all")])
    repeated = counts.filter(pc.greater(counts["count_all"], 1))
    extra = pc.sum(repeated["count_all"]).as_py() - repeated.num_rows if repeated.num_rows else 0
    sample = [
        f"{row['symbol']} #{row['trade_id']} seen {row['count_all']} times"
        for row in repeated.slice(0, _SAMPLE).to_pylist()
    ]
    return dg.AssetCheckResult(
        check_name=CHECK_UNIQUE_TRADE_IDS,
        asset_key=TRADES_RAW,
        passed=repeated.num_rows == 0,
        metadata={
            "rows": table.num_rows,
            **judged,
            "duplicate_rows": extra,
            "duplicated_ids_sample": ", ".join(sample) or "none",
        },
    )


def check_vwap_within_low_high(table: pa.Table | None) -> dg.AssetCheckResult:
    """Fails when a window of `table` (those a run wrote) has its VWAP outside [low, high],
    beyond float rounding."""
    if table is None or table.num_rows == 0:
        return dg.AssetCheckResult(
            check_name=CHECK_VWAP_WITHIN_LOW_HIGH,
            asset_key=TRADES_ANALYTICS,
            passed=True,
            metadata={"windows": 0},
        )
    low = pc.multiply(table["low"], 1 - _RELATIVE_TOLERANCE)
    high = pc.multiply(table["high"], 1 + _RELATIVE_TOLERANCE)
    outside = pc.or_(pc.less(table["vwap"], low), pc.greater(table["vwap"], high))
    bad = table.filter(pc.fill_null(outside, False))
    sample = [
        f"{row['symbol']} {row['window_start']}: vwap {row['vwap']} "
        f"not in [{row['low']}, {row['high']}]"
        for row in bad.select(["symbol", "window_start", "vwap", "low", "high"])
        .slice(0, _SAMPLE)
        .to_pylist()
    ]
    return dg.AssetCheckResult(
        check_name=CHECK_VWAP_WITHIN_LOW_HIGH,
        asset_key=TRADES_ANALYTICS,
        passed=bad.num_rows == 0,
        metadata={
            "windows": table.num_rows,
            "windows_outside_range": bad.num_rows,
            "sample": "; ".join(sample) or "none",
        },
    )


def check_key_columns_not_null(table: pa.Table | None) -> dg.AssetCheckResult:
    """Fails when a key or price column of `table` (the windows a run wrote) is missing or
    holds a null."""
    if table is None or table.num_rows == 0:
        return dg.AssetCheckResult(
            check_name=CHECK_KEY_COLUMNS_NOT_NULL,
            asset_key=TRADES_ANALYTICS,
            passed=True,
            metadata={"windows": 0},
        )
    missing = [c for c in ANALYTICS_KEY_COLUMNS if c not in table.column_names]
    nulls = {c: table[c].null_count for c in ANALYTICS_KEY_COLUMNS if c not in missing}
    with_nulls = [f"{column} {count}" for column, count in nulls.items() if count]
    return dg.AssetCheckResult(
        check_name=CHECK_KEY_COLUMNS_NOT_NULL,
        asset_key=TRADES_ANALYTICS,
        passed=not missing and not with_nulls,
        metadata={
            "windows": table.num_rows,
            "null_values": sum(nulls.values()),
            "nulls_by_column": ", ".join(with_nulls) or "none",
            "missing_columns": ", ".join(missing) or "none",
        },
    )


def check_landing_to_table_lag(
    landing: Sequence[LandingFile],
    waiting: Sequence[LandingFile] | None,
    now: float,
    max_lag_seconds: float,
) -> dg.AssetCheckResult:
    """Fails when a landing file has waited longer than `max_lag_seconds` to reach trades_raw.

    `waiting` are those of `landing` not processed yet (`Lakehouse.unprocessed`); None where the
    deployment cannot tell without reading trades_raw: then nothing is judged.
    """
    if waiting is None:
        return dg.AssetCheckResult(
            check_name=CHECK_LANDING_TO_TABLE_LAG,
            asset_key=TRADES_RAW,
            passed=True,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "landing_files": len(landing),
                "waiting": "not known on this deployment without reading trades_raw (not judged)",
                "max_lag": f"{max_lag_seconds:g} s",
            },
        )
    oldest = max((now - f.modified for f in waiting), default=0.0)
    return dg.AssetCheckResult(
        check_name=CHECK_LANDING_TO_TABLE_LAG,
        asset_key=TRADES_RAW,
        passed=oldest <= max_lag_seconds,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "landing_files": len(landing),
            "files_waiting": len(waiting),
            "oldest_waiting_seconds": round(oldest, 1),
            "max_lag": f"{max_lag_seconds:g} s",
        },
    )


def check_trade_lag_p95(batches: Sequence[BatchLag], max_p95_seconds: float) -> dg.AssetCheckResult:
    """Fails when p95 trade -> trades_raw or trade -> alert lag of `batches` passes the bound.

    `batches` are the latest ones (newest first); their histograms are merged, so a few slow
    batches among many small ones weigh by their trades. No batch yet: nothing to judge, passes.
    """
    lags: dict[str, LagStats] = merge_batch_lags(batches)
    raw, alert = lags["raw"], lags["alert"]
    over = [
        f"trade → {name} p95 {stats.p95_s:.1f} s"
        for name, stats in (("trades_raw", raw), ("alert", alert))
        if stats.p95_s is not None and stats.p95_s > max_p95_seconds
    ]
    # Without samples a p95 is left out rather than written as a made-up number.
    p95s = {
        f"lag_trade_to_{name}_p95_s": round(stats.p95_s, 3)
        for name, stats in (("raw", raw), ("alert", alert))
        if stats.p95_s is not None
    }
    return dg.AssetCheckResult(
        check_name=CHECK_TRADE_LAG_P95,
        asset_key=TRADES_RAW,
        passed=not over,
        # A backlog after a restart or a back-fill fails it too, and it clears by itself once
        # the query has caught up: a warning to look at, not an error on its own.
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "batches_judged": len(batches),
            "trades_judged": raw.count,
            "alerts_judged": alert.count,
            **p95s,
            "max_p95_lag": f"{max_p95_seconds:g} s",
            "over_bound": "; ".join(over) or "none",
        },
    )


def check_checkpoint_bounded(
    size: CheckpointSize | None, max_files: int, max_bytes: int
) -> dg.AssetCheckResult:
    """Fails when the checkpoint passes `max_files` or `max_bytes`, or keeps its old batches.

    Spark purges a checkpoint's offsets and commits beyond its last `SPARK_BATCHES_RETAINED`
    batches, so a healthy checkpoint's file count plateaus; an offsets log holding more than
    twice that number means the purge stopped and the folder grows with every batch.
    """
    if size is None:
        return dg.AssetCheckResult(
            check_name=CHECK_CHECKPOINT_BOUNDED,
            asset_key=TRADES_RAW,
            passed=True,
            metadata={"checkpoint": "not visible from here (not judged)"},
        )
    problems = []
    if size.files > max_files:
        problems.append(f"{size.files} files > {max_files}")
    if size.bytes > max_bytes:
        problems.append(f"{size.bytes} bytes > {max_bytes}")
    if size.offsets > 2 * SPARK_BATCHES_RETAINED:
        problems.append(
            f"{size.offsets} batches in offsets/ > {2 * SPARK_BATCHES_RETAINED}: not purged"
        )
    return dg.AssetCheckResult(
        check_name=CHECK_CHECKPOINT_BOUNDED,
        asset_key=TRADES_RAW,
        passed=not problems,
        # Unbounded growth never heals by itself and ends in a full disk or a slow restart.
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "checkpoint_bytes": size.bytes,
            "checkpoint_files": size.files,
            "checkpoint_offsets_batches": size.offsets,
            "max_checkpoint_files": max_files,
            "max_checkpoint_bytes": max_bytes,
            "problems": "; ".join(problems) or "none",
        },
    )
