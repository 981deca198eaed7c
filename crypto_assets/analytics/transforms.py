"""The analytics' transforms, written once as SQL text that Spark and DuckDB both run.

Each deployment computes a batch's windows and alerts where its tables are: Spark SQL on
Databricks, DuckDB beside delta-rs in the local deployment (`crypto_assets.local.sql_engine`),
where planning a Spark query per batch cost more than the work itself. So the text keeps to what
both engines parse alike, in Spark's function names; DuckDB is given the two Spark names it
lacks as macros (`DUCKDB_MACROS`). The SQL reads its inputs through ``{placeholders}``, which
the engine binds to its own frames, and every number it needs is a literal of the arguments.

Sums add a window's trades in trade order on both engines (`window_metrics_sql`), so a window's
numbers are bit-identical however its trades were split into batches or files, and on either
engine.

The text reads no clock: the batch that commits the rows stamps `updated_time` and
`detected_time`. (On Spark a timestamp in the plan is a literal in the code it generates, so
each batch would compile and warm up new code.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from crypto_assets.analytics.schema import (
    PRICE_ALERTS_SCHEMA,
    PRICE_MOVE,
    TRADES_ANALYTICS_SCHEMA,
    VOLUME_SPIKE,
)

# The functions of Spark SQL the text uses that DuckDB lacks, as DuckDB macros of the same
# meaning. `timestamp_millis` gives DuckDB's TIMESTAMP, which its engine holds as UTC.
DUCKDB_MACROS = (
    "CREATE MACRO timestamp_millis(ms) AS epoch_ms(ms)",
    "CREATE MACRO unix_millis(ts) AS epoch_ms(ts)",
)

# What a window row holds before its batch stamps `updated_time`.
WINDOW_COLUMNS = tuple(name for name in TRADES_ANALYTICS_SCHEMA.names if name != "updated_time")
# What a window's alerts need of it (the scoring input of `window_alerts_sql`).
ALERT_INPUTS = ("symbol", "window_start", "window_end", "trade_count", "price_change_pct")
ALERT_TYPES = (PRICE_MOVE, VOLUME_SPIKE)
# The alert fields that differ between a window's alerts: one column of each per alert type.
_ALERT_FIELDS = ("metric_value", "threshold", "message")


@dataclass(frozen=True)
class AlertRules:
    """The alert thresholds of DESIGN.md, as plain numbers (`window_alerts_sql` explains each)."""

    price_change_threshold_pct: float
    volume_spike_min_trades: int
    volume_spike_factor: float
    volume_spike_lookback: int
    volume_spike_min_history: int = 5


def sql_double(value: float) -> str:
    """`value` as a DOUBLE literal in both engines (a bare ``0.5`` is a DECIMAL)."""
    return f"CAST('{float(value)!r}' AS DOUBLE)"


def alert_column(alert_type: str, field: str) -> str:
    """The scored windows' column of one alert field of one type: ``_price_move_threshold``."""
    return f"_{alert_type.lower()}_{field}"


def window_metrics_sql(window_ms: int, source: str = "{trades}") -> str:
    """One trades_analytics row per (symbol, tumbling window) of the trades in `source`.

    `source` is a FROM item of trades (`TRADE_INPUT_FIELDS`). The rows have `WINDOW_COLUMNS`.
    The window opens at the trade first by (trade_time, trade_id) and closes at the last; the
    taker bought when the buyer is not the maker.
    """
    # Each sum adds its window's trades one by one in (trade_time, trade_id) order: a window
    # function over the whole window, which both engines compute in its frame's order (an
    # aggregate adds rows in the order they reach it, which depends on files and threads). So the
    # sums come out bit-identical however the trades were split into batches or files, and on
    # either engine. Every row of a window holds the same window values; the GROUP BY keeps one.
    # COALESCE(1), a hint to Spark (a comment to DuckDB): in one partition the plan needs no
    # shuffle, and a batch's windows are one stage of one task (a shuffle's second stage cost
    # more than the work at these sizes).
    ordered = f"""
        SELECT symbol, _start_ms, price,
               sum(quantity) OVER trade_order AS _volume,
               sum(price * quantity) OVER trade_order AS _quote_volume,
               sum(price) OVER trade_order AS _price_sum,
               sum(CASE WHEN NOT is_buyer_maker THEN quantity ELSE 0 END) OVER trade_order
                   AS _buy_volume,
               sum(CASE WHEN is_buyer_maker THEN quantity ELSE 0 END) OVER trade_order
                   AS _sell_volume,
               first_value(price) OVER trade_order AS _open,
               last_value(price) OVER trade_order AS _close
        FROM (
            SELECT /*+ COALESCE(1) */ *,
                   trade_time - ((trade_time % {window_ms}) + {window_ms}) % {window_ms}
                       AS _start_ms
            FROM {source}
        ) AS trades
        WINDOW trade_order AS (
            PARTITION BY symbol, _start_ms ORDER BY trade_time, trade_id
            ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING
        )
    """
    return f"""
        SELECT symbol,
               timestamp_millis(_start_ms) AS window_start,
               timestamp_millis(_start_ms + {window_ms}) AS window_end,
               trade_count, volume, quote_volume,
               quote_volume / volume AS vwap,
               open, close, high, low, avg_price,
               (high - low) / avg_price * 100 AS price_range_pct,
               (close - open) / open * 100 AS price_change_pct,
               buy_volume, sell_volume,
               CASE WHEN sell_volume > 0 THEN buy_volume / sell_volume END AS buy_sell_ratio
        FROM (
            SELECT symbol, _start_ms,
                   count(1) AS trade_count,
                   max(_volume) AS volume,
                   max(_quote_volume) AS quote_volume,
                   max(_open) AS open,
                   max(_close) AS close,
                   max(price) AS high,
                   min(price) AS low,
                   max(_price_sum) / count(1) AS avg_price,
                   max(_buy_volume) AS buy_volume,
                   max(_sell_volume) AS sell_volume
            FROM ({ordered}) AS ordered
            GROUP BY symbol, _start_ms
        ) AS windows
    """


def _alert(alert_type: str, fires: str, metric_value: str, threshold: str, message: str) -> str:
    """The select list of one alert type's columns of a scored window (NULL where it does not
    fire)."""
    values = {"metric_value": metric_value, "threshold": threshold, "message": message}
    return ",\n".join(
        f"CASE WHEN {fires} THEN {values[field]} END AS {alert_column(alert_type, field)}"
        for field in _ALERT_FIELDS
    )


def window_alerts_sql(
    window_ms: int, rules: AlertRules, source: str = "{analytics}", keep: Sequence[str] = ()
) -> str:
    """The windows of `source` scored: `keep`'s columns, `ALERT_INPUTS` and each alert type's
    `metric_value`, `threshold` and `message` (`alert_column`; NULL where it does not fire).

    A window has a PRICE_MOVE when its price moved at least the threshold, and a VOLUME_SPIKE
    when it had at least `volume_spike_factor` times its baseline trades (and at least
    `volume_spike_min_trades`), all of `rules`. A window's history slots are those of its
    previous `volume_spike_lookback` slots in which the symbol has a row and which are not an
    edge: a window whose previous slot has no row of the symbol (its first window, and the first
    after any gap; both are usually partial minutes, the producer having started mid-minute). A slot
    without a row is unknown, never 0 trades: the pairs are liquid, so a minute without one trade
    means the producer was not receiving (stopped, disconnected, back-filling), not a quiet
    market. The baseline is the mean trade_count of the history slots, so it is never 0.0; a
    window with fewer than `volume_spike_min_history` of them (or none) never spikes. A symbol's
    alerts depend only on its own windows, so the table does not depend on how the data was split
    into batches or runs (a rule across symbols would let a late window of one change another's).

    `source` must hold the `volume_spike_lookback` + 1 slots before every window whose alerts
    are wanted; a row whose previous slot lies outside it is taken as an edge. `alert_rows` turns
    the scored windows into price_alerts rows.
    """
    threshold_pct = sql_double(rules.price_change_threshold_pct)
    when = "CAST(window_start AS STRING) || ' UTC'"  # 2024-08-08 23:55:00 UTC
    move = _alert(
        PRICE_MOVE,
        f"abs(price_change_pct) >= {threshold_pct}",
        "price_change_pct",
        threshold_pct,
        "printf('%s price moved %+.3f%% in the window starting %s (alert at ±%.3f%%)', "
        f"symbol, price_change_pct, {when}, {threshold_pct})",
    )
    spike = _alert(
        VOLUME_SPIKE,
        f"_history_slots >= {rules.volume_spike_min_history} AND _history_slots > 0 "
        "AND CAST(trade_count AS DOUBLE) >= _spike_at",
        "CAST(trade_count AS DOUBLE)",
        "_spike_at",
        "printf('%s had %d trades in the window starting %s; baseline %.1f trades a "
        "window over %d history slots (alert at %.1f)', "
        f"symbol, trade_count, {when}, _baseline, _history_slots, _spike_at)",
    )
    columns = ", ".join(dict.fromkeys([*keep, *ALERT_INPUTS]))
    # One partition: the window functions need no exchange (see `window_metrics_sql`). A row is
    # an edge when the row before it (if any) is not in the slot right before it; an edge adds
    # nothing to the sums over the lookback slots before a window.
    return f"""
        SELECT {columns},
               {move},
               {spike}
        FROM (
            SELECT *,
                   greatest({sql_double(rules.volume_spike_min_trades)},
                            {sql_double(rules.volume_spike_factor)} * _baseline) AS _spike_at
            FROM (
                SELECT *,
                       CASE WHEN _history_slots > 0 THEN _history_trades / _history_slots END
                           AS _baseline
                FROM (
                    SELECT *,
                           count(_history_count) OVER lookback AS _history_slots,
                           sum(_history_count) OVER lookback AS _history_trades
                    FROM (
                        SELECT *,
                               CASE WHEN coalesce(lag(_start_ms) OVER by_time
                                                  = _start_ms - {window_ms}, false)
                                    THEN trade_count END AS _history_count
                        FROM (
                            SELECT /*+ COALESCE(1) */ *, unix_millis(window_start) AS _start_ms
                            FROM {source}
                        ) AS windows
                        WINDOW by_time AS (PARTITION BY symbol ORDER BY _start_ms)
                    ) AS edges
                    WINDOW lookback AS (
                        PARTITION BY symbol ORDER BY _start_ms
                        RANGE BETWEEN {rules.volume_spike_lookback * window_ms} PRECEDING
                              AND 1 PRECEDING
                    )
                ) AS history
            ) AS baselines
        ) AS thresholds
    """


def scoring_sql(window_ms: int, rules: AlertRules) -> str:
    """A piece of a batch in one query: the windows of the trades in ``{trades}``, and scored
    with them the stored windows in ``{stored}`` (rows with `WINDOW_COLUMNS`, none of the
    trades' windows), which must hold the lookback before each (`window_alerts_sql`).

    The rows have `WINDOW_COLUMNS`, the alert columns, and `_fresh`: true for the trades' windows.
    """
    columns = ", ".join(WINDOW_COLUMNS)
    windows = f"""(
        SELECT {columns}, true AS _fresh FROM ({window_metrics_sql(window_ms)}) AS fresh
        UNION ALL
        SELECT {columns}, false AS _fresh FROM {{stored}}
    ) AS inputs"""
    return window_alerts_sql(window_ms, rules, windows, keep=[*WINDOW_COLUMNS, "_fresh"])


def alert_rows(scored: pa.Table) -> pa.Table:
    """The price_alerts rows (but `detected_time`) of scored windows: one per alert that fires."""
    pieces = []
    for alert_type in ALERT_TYPES:
        fired = scored.filter(pc.is_valid(scored[alert_column(alert_type, "message")]))
        columns = {
            "alert_type": pa.array([alert_type] * fired.num_rows, pa.string()),
            **{name: fired[name] for name in ("symbol", "window_start", "window_end")},
            **{field: fired[alert_column(alert_type, field)] for field in _ALERT_FIELDS},
        }
        pieces.append(pa.table(columns))
    schema = pa.schema(PRICE_ALERTS_SCHEMA.field(name) for name in pieces[0].column_names)
    return pa.concat_tables(piece.cast(schema) for piece in pieces)
