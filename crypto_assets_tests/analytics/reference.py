"""Plain-Python reference of the analytics (no Spark): windows and alerts from landing records.

Written from DESIGN.md's definitions, independently of crypto_assets.analytics, so the tests can
compare the pipeline's tables against numbers derived another way.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

WindowKey = tuple[str, int]  # (symbol, window start epoch ms)


@dataclass(frozen=True)
class Rules:
    """Alert thresholds used by a test."""

    price_change_threshold_pct: float
    volume_spike_min_trades: int
    volume_spike_factor: float
    volume_spike_lookback: int
    volume_spike_min_history: int


def unique_trades(records: Iterable[dict]) -> dict[tuple[str, int], dict]:
    """One record per (symbol, trade_id), the first seen."""
    trades: dict[tuple[str, int], dict] = {}
    for record in records:
        trades.setdefault((record["symbol"], record["trade_id"]), record)
    return trades


def windows(records: Iterable[dict], window_ms: int) -> dict[WindowKey, dict]:
    """trades_analytics rows keyed by (symbol, window_start_ms), values per DESIGN.md."""
    grouped: dict[WindowKey, list[dict]] = defaultdict(list)
    for trade in unique_trades(records).values():
        start = trade["trade_time"] // window_ms * window_ms
        grouped[(trade["symbol"], start)].append(trade)
    rows = {}
    for (symbol, start), trades in grouped.items():
        ordered = sorted(trades, key=lambda t: (t["trade_time"], t["trade_id"]))
        prices = [t["price"] for t in trades]
        volume = math.fsum(t["quantity"] for t in trades)
        quote_volume = math.fsum(t["price"] * t["quantity"] for t in trades)
        buy = math.fsum(t["quantity"] for t in trades if not t["is_buyer_maker"])
        sell = math.fsum(t["quantity"] for t in trades if t["is_buyer_maker"])
        high, low, avg = max(prices), min(prices), math.fsum(prices) / len(prices)
        first, last = ordered[0]["price"], ordered[-1]["price"]
        rows[(symbol, start)] = {
            "window_end_ms": start + window_ms,
            "trade_count": len(trades),
            "volume": volume,
            "quote_volume": quote_volume,
            "vwap": quote_volume / volume,
            "open": first,
            "close": last,
            "high": high,
            "low": low,
            "avg_price": avg,
            "price_range_pct": (high - low) / avg * 100,
            "price_change_pct": (last - first) / first * 100,
            "buy_volume": buy,
            "sell_volume": sell,
            "buy_sell_ratio": buy / sell if sell > 0 else None,
        }
    return rows


def alerts(
    window_rows: dict[WindowKey, dict], rules: Rules, window_ms: int
) -> dict[tuple[str, str, int], dict]:
    """price_alerts rows keyed by (alert_type, symbol, window_start_ms).

    A slot where the symbol has no window is unknown (missing data), never 0 trades. A window
    is an edge when the symbol has no window in the slot right before it. A window's history
    slots are the previous `lookback` slots where the symbol has a window that is not an edge.
    """

    def has_window(symbol: str, slot: int) -> bool:
        return (symbol, slot) in window_rows

    out = {}
    for (symbol, start), row in window_rows.items():
        if abs(row["price_change_pct"]) >= rules.price_change_threshold_pct:
            out[("PRICE_MOVE", symbol, start)] = {
                "metric_value": row["price_change_pct"],
                "threshold": rules.price_change_threshold_pct,
            }
        counts = []
        for back in range(1, rules.volume_spike_lookback + 1):
            slot = start - back * window_ms
            is_edge = not has_window(symbol, slot - window_ms)
            if has_window(symbol, slot) and not is_edge:
                counts.append(window_rows[(symbol, slot)]["trade_count"])
        if not counts or len(counts) < rules.volume_spike_min_history:
            continue
        baseline = sum(counts) / len(counts)
        threshold = max(float(rules.volume_spike_min_trades), rules.volume_spike_factor * baseline)
        if row["trade_count"] >= threshold:
            out[("VOLUME_SPIKE", symbol, start)] = {
                "metric_value": float(row["trade_count"]),
                "threshold": threshold,
            }
    return out
