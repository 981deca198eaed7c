"""Names and schemas of the analytics: the trades the window metrics read and the four Delta tables.

The Arrow schemas are the contract of DESIGN.md ("Analytics definitions"); every write casts to
them, so a table's schema never drifts with whatever types a batch happened to produce.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from crypto_assets import landing_record

if TYPE_CHECKING:
    pass

TRADES_RAW = "trades_raw"
TRADES_ANALYTICS = "trades_analytics"
PRICE_ALERTS = "price_alerts"
TRADES_QUARANTINE = "trades_quarantine"
ALL_TABLES = (TRADES_RAW, TRADES_ANALYTICS, PRICE_ALERTS, TRADES_QUARANTINE)

# The one streaming query of the local deployment; its checkpoint lives in checkpoints/<QUERY_NAME>.
QUERY_NAME = "landing_trades_to_delta"

PRICE_MOVE = "PRICE_MOVE"
VOLUME_SPIKE = "VOLUME_SPIKE"


# The trades_raw columns the window metrics read.
TRADE_INPUT_FIELDS = ("symbol", "trade_id", "price", "quantity", "trade_time", "is_buyer_maker")


_TS = pa.timestamp("us", tz="UTC")

# A landing line's fields (landing_record), then what the analytics add.
TRADES_RAW_SCHEMA = pa.schema(
    [
        *landing_record.arrow_schema(),
        ("source_file", pa.string()),
        ("processed_time", _TS),
        ("ingest_lag_ms", pa.int64()),
        # UTC date of trade_time: the partition that keeps each MERGE from scanning the whole table.
        ("trade_date", pa.string()),
    ]
)

TRADES_ANALYTICS_SCHEMA = pa.schema(
    [
        ("symbol", pa.string()),
        ("window_start", _TS),
        ("window_end", _TS),
        ("trade_count", pa.int64()),
        ("volume", pa.float64()),
        ("quote_volume", pa.float64()),
        ("vwap", pa.float64()),
        ("open", pa.float64()),
        ("close", pa.float64()),
        ("high", pa.float64()),
        ("low", pa.float64()),
        ("avg_price", pa.float64()),
        ("price_range_pct", pa.float64()),
        ("price_change_pct", pa.float64()),
        ("buy_volume", pa.float64()),
        ("sell_volume", pa.float64()),
        ("buy_sell_ratio", pa.float64()),
        ("updated_time", _TS),
    ]
)

PRICE_ALERTS_SCHEMA = pa.schema(
    [
        ("alert_type", pa.string()),
        ("symbol", pa.string()),
        ("window_start", _TS),
        ("window_end", _TS),
        ("metric_value", pa.float64()),
        ("threshold", pa.float64()),
        ("message", pa.string()),
        ("detected_time", _TS),
    ]
)

TRADES_QUARANTINE_SCHEMA = pa.schema(
    [
        ("source_file", pa.string()),
        ("raw_line", pa.string()),
        ("reason", pa.string()),
        ("processed_time", _TS),
    ]
)

TABLE_SCHEMAS: dict[str, pa.Schema] = {
    TRADES_RAW: TRADES_RAW_SCHEMA,
    TRADES_ANALYTICS: TRADES_ANALYTICS_SCHEMA,
    PRICE_ALERTS: PRICE_ALERTS_SCHEMA,
    TRADES_QUARANTINE: TRADES_QUARANTINE_SCHEMA,
}
TABLE_PARTITIONS: dict[str, list[str]] = {TRADES_RAW: ["trade_date"]}
# The column every row gets its write time in, from the clock of the batch that writes it (a
# revised window, a recomputed alert: the time of its latest write). The rows a run wrote are
# those at or after the run's start.
WRITE_TIME_COLUMNS: dict[str, str] = {
    TRADES_RAW: "processed_time",
    TRADES_ANALYTICS: "updated_time",
    PRICE_ALERTS: "detected_time",
    TRADES_QUARANTINE: "processed_time",
}

# What each column means (the same name means the same in every table), shown in the UI.
COLUMN_DESCRIPTIONS: dict[str, str] = {
    **landing_record.DESCRIPTIONS,
    "source_file": "landing file the row came from",
    "processed_time": "when the analytics batch processed the row",
    "ingest_lag_ms": "ingestion_time - trade_time",
    "trade_date": "UTC date of trade_time (partition)",
    "window_start": "start of the tumbling window (UTC)",
    "window_end": "end of the tumbling window (UTC, exclusive)",
    "trade_count": "trades in the window",
    "volume": "sum of quantity",
    "quote_volume": "sum of price x quantity",
    "vwap": "quote_volume / volume",
    "open": "price of the first trade by (trade_time, trade_id)",
    "close": "price of the last trade by (trade_time, trade_id)",
    "high": "highest price",
    "low": "lowest price",
    "avg_price": "mean trade price",
    "price_range_pct": "(high - low) / avg_price x 100",
    "price_change_pct": "(close - open) / open x 100",
    "buy_volume": "quantity where the taker bought (is_buyer_maker false)",
    "sell_volume": "quantity where the taker sold (is_buyer_maker true)",
    "buy_sell_ratio": "buy_volume / sell_volume (null when sell_volume is 0)",
    "updated_time": "when the window was last recomputed",
    "alert_type": "PRICE_MOVE or VOLUME_SPIKE",
    "metric_value": "signed change % (PRICE_MOVE) or trade_count (VOLUME_SPIKE)",
    "threshold": "the threshold % or max(min trades, factor x baseline)",
    "message": "the alert in words",
    "detected_time": "when the alert was computed",
    "raw_line": "the rejected landing line as read (non-UTF-8 bytes as \\xNN)",
    "reason": "why the line was rejected",
}
