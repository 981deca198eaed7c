"""Test-side readers of the Delta tables (deltalake -> plain Python), volatile columns dropped."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable

# Wall-clock columns and file names legitimately differ between equivalent runs.
VOLATILE = {"processed_time", "updated_time", "detected_time", "source_file"}
KEYS = {
    "trades_raw": ("symbol", "trade_id"),
    "trades_analytics": ("symbol", "window_start"),
    "price_alerts": ("symbol", "window_start", "alert_type"),
    "trades_quarantine": ("source_file", "raw_line"),
}


def rows(data_dir: Path, table: str) -> list[dict]:
    """Every row of `table` as a dict."""
    return pa.table(DeltaTable(str(data_dir / "delta" / table)).to_pyarrow_table()).to_pylist()


def snapshot(data_dir: Path) -> dict[str, list[tuple]]:
    """The stable content of the three analytics tables, sorted by key, for equality checks."""
    out = {}
    for table in ("trades_raw", "trades_analytics", "price_alerts"):
        content = rows(data_dir, table)
        columns = sorted(c for c in (content[0] if content else {}) if c not in VOLATILE)
        out[table] = sorted(
            (tuple(row[c] for c in KEYS[table]), tuple(row[c] for c in columns)) for row in content
        )
    return out


def epoch_ms(value: object) -> int:
    """Epoch milliseconds of a timezone-aware datetime."""
    return round(value.timestamp() * 1000)  # type: ignore[attr-defined]
