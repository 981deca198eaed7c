"""Asset checks: data quality of the Delta tables, and how far the tables lag landing.

The evaluators are plain functions over Arrow tables and file listings, so tests call them on
tiny tables; the analytics asset attaches their results to its materializations (`check_specs`).
Freshness is not a check here: Dagster's freshness policies (`freshness.py`) judge it on their own.
Numeric metadata is what Dagster plots over evaluations, so only counts that can move are numbers;
constants and per-column details are text.
"""

from collections.abc import Sequence
from pathlib import PurePosixPath

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from crypto_assets.orchestration.lakehouse import TRADES_ANALYTICS, TRADES_RAW, LandingFile

LANDING_TRADES = "landing_trades"

CHECK_UNIQUE_TRADE_IDS = "check_trades_raw_unique_trade_ids"
CHECK_LANDING_TO_TABLE_LAG = "check_landing_to_table_lag"
CHECK_VWAP_WITHIN_LOW_HIGH = "check_vwap_within_low_high"
CHECK_KEY_COLUMNS_NOT_NULL = "check_trades_analytics_key_columns_not_null"

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
        description="Every (symbol, trade_id) appears in trades_raw at most once.",
    ),
    dg.AssetCheckSpec(
        CHECK_LANDING_TO_TABLE_LAG,
        asset=TRADES_RAW,
        description="Landing files not yet in trades_raw are younger than the allowed lag.",
    ),
    dg.AssetCheckSpec(
        CHECK_VWAP_WITHIN_LOW_HIGH,
        asset=TRADES_ANALYTICS,
        description="Every window's VWAP lies between its low and high price.",
    ),
    dg.AssetCheckSpec(
        CHECK_KEY_COLUMNS_NOT_NULL,
        asset=TRADES_ANALYTICS,
        description="No nulls in trades_analytics' key and price columns.",
    ),
)


def check_unique_trade_ids(table: pa.Table | None) -> dg.AssetCheckResult:
    """Fails when a (symbol, trade_id) pair occurs more than once in trades_raw."""
    if table is None or table.num_rows == 0:
        return dg.AssetCheckResult(
            check_name=CHECK_UNIQUE_TRADE_IDS,
            asset_key=TRADES_RAW,
            passed=True,
            metadata={"rows": 0},
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
            "duplicate_rows": extra,
            "duplicated_ids_sample": ", ".join(sample) or "none",
        },
    )


def check_vwap_within_low_high(table: pa.Table | None) -> dg.AssetCheckResult:
    """Fails when a window's VWAP lies outside [low, high] (beyond float rounding)."""
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
    """Fails when a key or price column of trades_analytics is missing or holds a null."""
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
    processed_files: Sequence[str],
    now: float,
    max_lag_seconds: float,
) -> dg.AssetCheckResult:
    """Fails when a landing file has waited longer than `max_lag_seconds` to reach trades_raw."""
    done = {PurePosixPath(name).name for name in processed_files}
    waiting = [f for f in landing if f.name not in done]
    oldest = max((now - f.modified for f in waiting), default=0.0)
    return dg.AssetCheckResult(
        check_name=CHECK_LANDING_TO_TABLE_LAG,
        asset_key=TRADES_RAW,
        passed=oldest <= max_lag_seconds,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "landing_files": len(landing),
            "files_in_table": len(done),
            "files_waiting": len(waiting),
            "oldest_waiting_seconds": round(oldest, 1),
            "max_lag": f"{max_lag_seconds:g} s",
        },
    )
