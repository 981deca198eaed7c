"""Pure Spark transforms of the analytics: DataFrame in, DataFrame out, no I/O, no settings.

They run unchanged on a local session and on Databricks; every number they need is an argument.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F  # noqa: N812 - the PySpark convention

from crypto_assets.analytics.schema import PRICE_MOVE, VOLUME_SPIKE


def window_start_ms(trade_time: Column, window_ms: int) -> Column:
    """Start (epoch ms) of the tumbling window holding `trade_time` (epoch ms)."""
    return trade_time - F.pmod(trade_time, F.lit(window_ms))


def window_metrics(trades: DataFrame, window_seconds: float) -> DataFrame:
    """One trades_analytics row per (symbol, tumbling window) from trades (price, quantity, ...)."""
    window_ms = round(window_seconds * 1000)
    order = F.struct("trade_time", "trade_id")
    buyer_is_taker = ~F.col("is_buyer_maker")
    # Each window's rows are summed in one partition in (trade_time, trade_id) order, so the float
    # sums come out bit-identical however the trades were split into batches or files.
    ordered = (
        trades.withColumn("_start_ms", window_start_ms(F.col("trade_time"), window_ms))
        .repartition("symbol", "_start_ms")
        .sortWithinPartitions("symbol", "_start_ms", "trade_time", "trade_id")
    )
    sums = ordered.groupBy("symbol", "_start_ms").agg(
        F.count(F.lit(1)).alias("trade_count"),
        F.sum("quantity").alias("volume"),
        F.sum(F.col("price") * F.col("quantity")).alias("quote_volume"),
        F.min_by("price", order).alias("open"),
        F.max_by("price", order).alias("close"),
        F.max("price").alias("high"),
        F.min("price").alias("low"),
        F.avg("price").alias("avg_price"),
        F.sum(F.when(buyer_is_taker, F.col("quantity")).otherwise(F.lit(0.0))).alias("buy_volume"),
        F.sum(F.when(~buyer_is_taker, F.col("quantity")).otherwise(F.lit(0.0))).alias(
            "sell_volume"
        ),
    )
    return sums.select(
        "symbol",
        F.timestamp_millis("_start_ms").alias("window_start"),
        F.timestamp_millis(F.col("_start_ms") + F.lit(window_ms)).alias("window_end"),
        "trade_count",
        "volume",
        "quote_volume",
        (F.col("quote_volume") / F.col("volume")).alias("vwap"),
        "open",
        "close",
        "high",
        "low",
        "avg_price",
        ((F.col("high") - F.col("low")) / F.col("avg_price") * 100).alias("price_range_pct"),
        ((F.col("close") - F.col("open")) / F.col("open") * 100).alias("price_change_pct"),
        "buy_volume",
        "sell_volume",
        F.when(F.col("sell_volume") > 0, F.col("buy_volume") / F.col("sell_volume")).alias(
            "buy_sell_ratio"
        ),
        F.current_timestamp().alias("updated_time"),
    )


def price_alerts(
    analytics: DataFrame,
    *,
    window_seconds: float,
    price_change_threshold_pct: float,
    volume_spike_min_trades: int,
    volume_spike_factor: float,
    volume_spike_lookback: int,
    volume_spike_min_history: int = 5,
) -> DataFrame:
    """PRICE_MOVE and VOLUME_SPIKE rows (price_alerts columns) for every window of `analytics`.

    A window's history slots are those of its previous `volume_spike_lookback` slots in which
    the symbol has a row and which are not an edge: a window whose previous slot has no row of
    the symbol (its first window, and the first after any gap; both are usually partial minutes,
    the producer having started mid-minute). A slot without a row is unknown, never 0 trades:
    the pairs are liquid, so a minute without one trade means the producer was not receiving
    (stopped, disconnected, back-filling), not a quiet market. The baseline is the mean
    trade_count of the history slots, so it is never 0.0; a window with fewer than
    `volume_spike_min_history` of them (or none) never spikes. A symbol's alerts depend only on
    its own windows, so the table does not depend on how the data was split into batches or
    runs (a rule across symbols would let a late window of one change another's alerts).

    The input must hold the `volume_spike_lookback` + 1 slots before every window whose alerts
    are wanted; a row whose previous slot lies outside the input is taken as an edge.
    """
    window_ms = round(window_seconds * 1000)
    by_time = Window.partitionBy("symbol").orderBy("_start_ms")
    lookback = by_time.rangeBetween(-volume_spike_lookback * window_ms, -1)
    start_ms = F.col("_start_ms")
    # A row is an edge when the row before it (if any) is not in the slot right before it.
    previous_ms = F.lag("_start_ms").over(by_time)
    not_edge = F.coalesce(previous_ms == start_ms - F.lit(window_ms), F.lit(False))
    scored = (
        analytics.withColumn("_start_ms", F.unix_millis("window_start"))
        .withColumn("_not_edge", not_edge)
        # Sums over the rows in the lookback slots before this one; an edge adds nothing.
        .withColumn("_history_count", F.when(F.col("_not_edge"), F.col("trade_count")))
        .withColumn("_history_slots", F.count("_history_count").over(lookback))
        .withColumn("_history_trades", F.sum("_history_count").over(lookback))
        .withColumn(
            "_baseline",
            F.when(F.col("_history_slots") > 0, F.col("_history_trades") / F.col("_history_slots")),
        )
        .withColumn(
            "_spike_at",
            F.greatest(
                F.lit(float(volume_spike_min_trades)),
                F.lit(float(volume_spike_factor)) * F.col("_baseline"),
            ),
        )
    )
    when = F.date_format("window_start", "yyyy-MM-dd HH:mm:ss 'UTC'")
    moves = scored.where(F.abs("price_change_pct") >= price_change_threshold_pct).select(
        F.lit(PRICE_MOVE).alias("alert_type"),
        "symbol",
        "window_start",
        "window_end",
        F.col("price_change_pct").alias("metric_value"),
        F.lit(float(price_change_threshold_pct)).alias("threshold"),
        F.format_string(
            "%s price moved %+.3f%% in the window starting %s (alert at ±%.3f%%)",
            "symbol",
            "price_change_pct",
            when,
            F.lit(float(price_change_threshold_pct)),
        ).alias("message"),
    )
    enough_history = (F.col("_history_slots") >= volume_spike_min_history) & (
        F.col("_history_slots") > 0
    )
    spikes = scored.where(
        enough_history & (F.col("trade_count").cast("double") >= F.col("_spike_at"))
    ).select(
        F.lit(VOLUME_SPIKE).alias("alert_type"),
        "symbol",
        "window_start",
        "window_end",
        F.col("trade_count").cast("double").alias("metric_value"),
        F.col("_spike_at").alias("threshold"),
        F.format_string(
            "%s had %d trades in the window starting %s; baseline %.1f trades a window over "
            "%d history slots (alert at %.1f)",
            "symbol",
            "trade_count",
            when,
            "_baseline",
            "_history_slots",
            "_spike_at",
        ).alias("message"),
    )
    return moves.unionByName(spikes).withColumn("detected_time", F.current_timestamp())
