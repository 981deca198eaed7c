"""The recording's trades as DESIGN.md landing records, derived with plain gzip and json.

This is the tests' independent reference for what the producer must land: it shares no code
with `crypto_assets.binance.parsing`.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

# The landing record's fields in DESIGN.md's order.
LANDING_FIELDS = (
    "event_type",
    "event_time",
    "symbol",
    "trade_id",
    "price",
    "quantity",
    "trade_value_usdt",
    "trade_time",
    "is_buyer_maker",
    "ingestion_time",
)


def landing_row(frame: str, received_ms: int) -> dict:
    """The landing record that one recorded combined-stream trade frame must become."""
    data = json.loads(frame)["data"]
    price, quantity = float(data["p"]), float(data["q"])
    return {
        "event_type": data["e"],
        "event_time": data["E"],
        "symbol": data["s"],
        "trade_id": data["t"],
        "price": price,
        "quantity": quantity,
        "trade_value_usdt": price * quantity,
        "trade_time": data["T"],
        "is_buyer_maker": data["m"],
        "ingestion_time": received_ms,
    }


def recorded_landing_rows(recording: Path) -> Iterator[dict]:
    """Every trade of `recording`, in order, as a landing record (ingestion = receive time)."""
    with gzip.open(recording, "rt", encoding="utf-8") as lines:
        for line in lines:
            received_ns, frame = line.split(" ", 1)
            if '"e":"trade"' in frame:
                yield landing_row(frame, int(received_ns) // 1_000_000)
