"""Pure Spark transforms of the analytics: DataFrame in, DataFrame out, no I/O, no settings.

They run unchanged on a local session and on Databricks; every number they need is an argument.
Each is one Spark SQL query: every batch builds its plan anew, and a query given as text is one
call into the JVM and one analysis, where the same plan built step by step with `Column` objects
is a call per function, operator and literal and an analysis per step (building the plans took
a fifth of a small batch's time).

They read no clock either: the batch that commits their rows stamps `updated_time` and
`detected_time`. A timestamp in the plan is a literal in the code Spark generates, so each batch
would compile and warm up new code (the same plan every batch reuses the code of the first).
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame

from crypto_assets.analytics.schema import PRICE_MOVE, VOLUME_SPIKE

# A window's start in messages, e.g. 2024-08-08 23:55:00 UTC.
_WHEN = """date_format(window_start, "yyyy-MM-dd HH:mm:ss 'UTC'")"""


@dataclass(frozen=True)
class AlertRules:
    """The alert thresholds of DESIGN.md, as plain numbers (`window_alerts` explains each)."""

    price_change_threshold_pct: float
    volume_spike_min_trades: int
    volume_spike_factor: float
    volume_spike_lookback: int
    volume_spike_min_history: int = 5


def sql_double(value: float) -> str:
    """`value` as a Spark SQL DOUBLE literal (a bare ``0.5`` is a DECIMAL)."""
    return f"CAST('{float(value)!r}' AS DOUBLE)"


def sql_string(value: str) -> str:
    """`value` as a Spark SQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def window_metrics(trades: DataFrame, window_seconds: float) -> DataFrame:
    """One trades_analytics row per (symbol, tumbling window) from trades (price, quantity, ...).

    Every column but `updated_time`, which the batch that commits the rows stamps.
    """
    window_ms = round(window_seconds * 1000)
    # The rows are summed in one partition in (trade_time, trade_id) order, so the float sums come
    # out bit-identical however the trades were split into batches or files. One partition also
    # spares the plan its shuffle: the aggregation needs no exchange, and a batch's windows are
    # one stage of one task (a shuffle's second stage cost more than the work at these sizes).
    # The taker bought when the buyer is not the maker.
    query = f"""
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
                   sum(quantity) AS volume,
                   sum(price * quantity) AS quote_volume,
                   min_by(price, struct(trade_time, trade_id)) AS open,
                   max_by(price, struct(trade_time, trade_id)) AS close,
                   max(price) AS high,
                   min(price) AS low,
                   avg(price) AS avg_price,
                   sum(CASE WHEN NOT is_buyer_maker THEN quantity ELSE 0.0D END) AS buy_volume,
                   sum(CASE WHEN is_buyer_maker THEN quantity ELSE 0.0D END) AS sell_volume
            FROM (
                SELECT /*+ COALESCE(1) */ *, trade_time - pmod(trade_time, {window_ms}) AS _start_ms
                FROM {{trades}}
                SORT BY symbol, _start_ms, trade_time, trade_id
            )
            GROUP BY symbol, _start_ms
        )
    """
    return trades.sparkSession.sql(query, trades=trades)


# The columns `window_alerts` adds to its input while scoring, dropped from its output.
_SCORING = (
    "_start_ms",
    "_history_count",
    "_history_slots",
    "_history_trades",
    "_baseline",
    "_spike_at",
)


def _alert(alert_type: str, metric_value: str, threshold: str, message: str) -> str:
    """A price_alerts row (but `detected_time`) as a Spark SQL struct of a scored window."""
    return (
        f"named_struct('alert_type', {sql_string(alert_type)}, 'symbol', symbol, "
        "'window_start', window_start, 'window_end', window_end, "
        f"'metric_value', {metric_value}, 'threshold', {threshold}, 'message', {message})"
    )


def window_alerts(analytics: DataFrame, *, window_seconds: float, rules: AlertRules) -> DataFrame:
    """`analytics` with `alerts`: the price_alerts rows of each window, as an array of structs.

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

    The input must hold the `volume_spike_lookback` + 1 slots before every window whose alerts
    are wanted; a row whose previous slot lies outside the input is taken as an edge. Every
    input column is kept, so one plan can return a batch's windows and their alerts together.
    The alerts carry every price_alerts column but `detected_time`.
    """
    window_ms = round(window_seconds * 1000)
    threshold_pct = sql_double(rules.price_change_threshold_pct)
    move = _alert(
        PRICE_MOVE,
        "price_change_pct",
        threshold_pct,
        "format_string('%s price moved %+.3f%% in the window starting %s (alert at ±%.3f%%)', "
        f"symbol, price_change_pct, {_WHEN}, {threshold_pct})",
    )
    spike = _alert(
        VOLUME_SPIKE,
        "CAST(trade_count AS DOUBLE)",
        "_spike_at",
        "format_string('%s had %d trades in the window starting %s; baseline %.1f trades a "
        "window over %d history slots (alert at %.1f)', "
        f"symbol, trade_count, {_WHEN}, _baseline, _history_slots, _spike_at)",
    )
    spikes = (
        f"_history_slots >= {rules.volume_spike_min_history} AND _history_slots > 0 "
        "AND CAST(trade_count AS DOUBLE) >= _spike_at"
    )
    # One partition: the window functions need no exchange (see `window_metrics`). A row is an
    # edge when the row before it (if any) is not in the slot right before it; an edge adds
    # nothing to the sums over the lookback slots before a window.
    query = f"""
        SELECT *,
               array_compact(array(IF(abs(price_change_pct) >= {threshold_pct}, {move}, NULL),
                                   IF({spikes}, {spike}, NULL))) AS alerts
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
                            SELECT *, unix_millis(window_start) AS _start_ms
                            FROM (SELECT /*+ COALESCE(1) */ * FROM {{analytics}})
                        )
                        WINDOW by_time AS (PARTITION BY symbol ORDER BY _start_ms)
                    )
                    WINDOW lookback AS (
                        PARTITION BY symbol ORDER BY _start_ms
                        RANGE BETWEEN {rules.volume_spike_lookback * window_ms} PRECEDING
                              AND 1 PRECEDING
                    )
                )
            )
        )
    """
    return analytics.sparkSession.sql(query, analytics=analytics).drop(*_SCORING)


def price_alerts(analytics: DataFrame, *, window_seconds: float, rules: AlertRules) -> DataFrame:
    """The price_alerts rows (but `detected_time`) of every window of `analytics`, one per alert."""
    return window_alerts(analytics, window_seconds=window_seconds, rules=rules).selectExpr(
        "inline(alerts)"
    )
