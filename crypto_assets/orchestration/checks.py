"""Asset checks: data quality of the Delta tables, freshness, and how far the tables lag landing.

The evaluators are plain functions over Arrow tables and file listings, so tests call them on
tiny tables; the analytics asset attaches their results to its materializations (`check_specs`),
and the two freshness checks run on their own against the lakehouse.
"""

import time
from collections.abc import Sequence
from pathlib import PurePosixPath

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from crypto_assets.orchestration.lakehouse import (
    PRICE_ALERTS,
    TRADES_ANALYTICS,
    TRADES_RAW,
    LakehouseResource,
    LandingFile,
)

LANDING_TRADES = "landing_trades"

CHECK_UNIQUE_TRADE_IDS = "check_trades_raw_unique_trade_ids"
CHECK_LANDING_TO_TABLE_LAG = "check_landing_to_table_lag"
CHECK_VWAP_WITHIN_LOW_HIGH = "check_vwap_within_low_high"
CHECK_KEY_COLUMNS_NOT_NULL = "check_trades_analytics_key_columns_not_null"
CHECK_LANDING_FRESHNESS = "check_landing_trades_freshness"
CHECK_ALERTS_FRESHNESS = "check_price_alerts_freshness"

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
            "distinct_trades": counts.num_rows,
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
    return dg.AssetCheckResult(
        check_name=CHECK_KEY_COLUMNS_NOT_NULL,
        asset_key=TRADES_ANALYTICS,
        passed=not missing and not any(nulls.values()),
        metadata={
            "windows": table.num_rows,
            "missing_columns": ", ".join(missing) or "none",
            **{f"nulls_{column}": count for column, count in nulls.items()},
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
            "max_lag_seconds": max_lag_seconds,
        },
    )


def freshness_result(
    check_name: str, asset_key: str, newest: float | None, now: float, max_age_seconds: float
) -> dg.AssetCheckResult:
    """Fails when the newest update (epoch seconds) is older than `max_age_seconds`, or missing."""
    age = None if newest is None else max(0.0, now - newest)
    return dg.AssetCheckResult(
        check_name=check_name,
        asset_key=asset_key,
        passed=age is not None and age <= max_age_seconds,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "age_seconds": -1.0 if age is None else round(age, 1),
            "max_age_seconds": max_age_seconds,
            "status": "never updated" if age is None else "updated",
        },
    )


class FreshnessConfig(dg.Config):
    """How old the newest update may be before the check warns."""

    max_age_seconds: float = 600.0


@dg.asset_check(
    asset=LANDING_TRADES,
    name=CHECK_LANDING_FRESHNESS,
    description="The producer landed a file recently (newest landing file younger than max age).",
)
def check_landing_trades_freshness(
    config: FreshnessConfig, lakehouse: LakehouseResource
) -> dg.AssetCheckResult:
    """Age of the newest landing file against the allowed maximum."""
    files = lakehouse.landing_files()
    newest = max((f.modified for f in files), default=None)
    return freshness_result(
        CHECK_LANDING_FRESHNESS, LANDING_TRADES, newest, time.time(), config.max_age_seconds
    )


@dg.asset_check(
    asset=PRICE_ALERTS,
    name=CHECK_ALERTS_FRESHNESS,
    description="The alert rules were evaluated recently (newest price_alerts commit).",
)
def check_price_alerts_freshness(
    config: FreshnessConfig, lakehouse: LakehouseResource
) -> dg.AssetCheckResult:
    """Age of price_alerts' newest Delta commit against the allowed maximum."""
    committed = lakehouse.last_commit_time(PRICE_ALERTS)
    newest = None if committed is None else committed.timestamp()
    return freshness_result(
        CHECK_ALERTS_FRESHNESS, PRICE_ALERTS, newest, time.time(), config.max_age_seconds
    )


FRESHNESS_CHECKS = (check_landing_trades_freshness, check_price_alerts_freshness)
