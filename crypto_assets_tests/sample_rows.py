"""One real landing row (BTCUSDT trade 3735683259 of the recording) for tests of single rows."""

from __future__ import annotations

# 2024-08-09T00:00:00Z: a processing time just after the trade.
NOW_MS = 1_723_161_600_000
GOOD_ROW = {
    "event_type": "trade",
    "event_time": 1_723_161_255_343,
    "symbol": "BTCUSDT",
    "trade_id": 3_735_683_259,
    "price": 61837.63,
    "quantity": 0.02,
    "trade_value_usdt": 1236.7526,
    "trade_time": 1_723_161_255_342,
    "is_buyer_maker": True,
    "ingestion_time": 1_723_161_255_400,
}
