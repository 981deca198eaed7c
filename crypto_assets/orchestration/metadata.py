"""Materialization metadata: what the UI shows for each asset, built from plain values.

Numbers stay numeric (never formatted into strings) so Dagster plots them over time, e.g.
`vwap_btcusdt` for the price of BTCUSDT or `trades_per_second` for the producer's throughput.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import dagster as dg
import pyarrow as pa

from crypto_assets.analytics.show import latest_windows

if TYPE_CHECKING:
    from crypto_assets.analytics.pipeline import AnalyticsSummary
    from crypto_assets.producer.producer import ProducerStats

ALERTS_SHOWN = 10


def producer_metadata(
    stats: ProducerStats, previous: ProducerStats | None, source: str, ws_url: str
) -> dict[str, Any]:
    """One landing_trades report: what was landed since `previous` (the whole run if None)."""
    before_symbols: Mapping[str, int] = previous.per_symbol if previous else {}
    trades = stats.trades - (previous.trades if previous else 0)
    seconds = max(stats.seconds - (previous.seconds if previous else 0.0), 1e-9)
    return {
        "trades": trades,
        "files": stats.files - (previous.files if previous else 0),
        "trades_per_second": round(trades / seconds, 2),
        **{
            f"trades_{symbol.lower()}": count - before_symbols.get(symbol, 0)
            for symbol, count in sorted(stats.per_symbol.items())
        },
        "quarantined": stats.quarantined,
        "duplicates_dropped": stats.duplicates_dropped,
        "gaps_filled": stats.gaps_filled,
        "gaps_unfilled": stats.gaps_unfilled,
        "reconnects": stats.reconnects,
        "run_trades": stats.trades,
        "run_files": stats.files,
        "run_seconds": round(stats.seconds, 1),
        "source": source,
        "ws_url": ws_url,
    }


def _number(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def latest_windows_markdown(latest: pa.Table | None) -> str:
    """A Markdown table: per symbol, its newest window's VWAP, change %, buy/sell ratio."""
    lines = [
        "| symbol | window (UTC) | trades | VWAP | change % | buy/sell |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in [] if latest is None else latest.to_pylist():
        lines.append(
            f"| {row['symbol']} | {row['window_start']:%Y-%m-%d %H:%M} | {row['trade_count']} "
            f"| {_number(row['vwap'], 4)} | {_number(row['price_change_pct'], 3)} "
            f"| {_number(row['buy_sell_ratio'], 3)} |"
        )
    if len(lines) == 2:
        lines.append("| (no windows yet) | | | | | |")
    return "\n".join(lines)


def vwap_by_symbol(latest: pa.Table | None) -> dict[str, float]:
    """Numeric `vwap_<symbol>` entries from the newest windows, for Dagster's plots."""
    if latest is None:
        return {}
    return {
        f"vwap_{row['symbol'].lower()}": float(row["vwap"])
        for row in latest.select(["symbol", "vwap"]).to_pylist()
        if row["vwap"] is not None
    }


def newest_alerts_markdown(alerts: pa.Table | None, limit: int = ALERTS_SHOWN) -> str:
    """A Markdown table of the `limit` newest alerts (by window, then detection time)."""
    lines = ["| window start (UTC) | symbol | alert | message |", "|---|---|---|---|"]
    if alerts is not None and alerts.num_rows:
        order = [("window_start", "descending"), ("detected_time", "descending")]
        for row in alerts.sort_by(order).slice(0, limit).to_pylist():
            message = str(row["message"]).replace("|", "/")
            lines.append(
                f"| {row['window_start']:%Y-%m-%d %H:%M} | {row['symbol']} "
                f"| {row['alert_type']} | {message} |"
            )
    else:
        lines.append("| (no alerts yet) | | | |")
    return "\n".join(lines)


def run_metadata(summary: AnalyticsSummary) -> dict[str, Any]:
    """What one analytics run did, shared by the three tables' materializations."""
    return {
        "files_processed": summary.files_processed,
        "batches": summary.batches,
        "late_rows": summary.late_rows,
        "bad_rows": summary.bad_rows,
        "duplicates_skipped": summary.duplicates_skipped,
        "processing_seconds": round(summary.seconds, 2),
    }


def table_metadata(rows_total: int, rows_written: int | None, location: str) -> dict[str, Any]:
    """Row counts and location of one Delta table (`rows_written` None when unknown)."""
    metadata: dict[str, Any] = {"dagster/row_count": rows_total, "table_location": location}
    if rows_written is not None:
        metadata["rows_written"] = rows_written
    return metadata


def analytics_metadata(analytics: pa.Table | None) -> dict[str, Any]:
    """trades_analytics for the UI: the newest windows as Markdown and VWAP per symbol."""
    latest = None if analytics is None else latest_windows(analytics)
    return {
        "latest_windows": dg.MetadataValue.md(latest_windows_markdown(latest)),
        **vwap_by_symbol(latest),
    }


def alerts_metadata(alerts: pa.Table | None) -> dict[str, Any]:
    """price_alerts for the UI: the newest alerts as Markdown."""
    return {"newest_alerts": dg.MetadataValue.md(newest_alerts_markdown(alerts))}
