"""Asset metadata: what the UI shows for each asset, built from plain values.

Each asset gets its own numbers. Numbers stay numeric so Dagster plots them over materializations
(`trades_per_second` for the producer's throughput, `dagster/row_count` per table); prices are
rounded to the symbol's precision. VWAP and volume over time are a chart drawn from the windows
themselves (`price_chart.py`), since a plot of per-run values misses the windows between runs.
The windows and alerts shown are those a run wrote, never a table read whole, so a report costs
what the run wrote however large the tables grow.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from crypto_assets import landing_record
from crypto_assets.analytics.schema import (
    COLUMN_DESCRIPTIONS,
    PRICE_MOVE,
    TRADES_RAW,
    VOLUME_SPIKE,
)
from crypto_assets.analytics.show import latest_windows
from crypto_assets.orchestration.price_chart import svg_image_markdown, vwap_volume_svg

if TYPE_CHECKING:
    from crypto_assets.analytics.batch import StreamProgress
    from crypto_assets.analytics.lag import LagStats, RunLag
    from crypto_assets.analytics.lakehouse import CheckpointSize, FolderSize, LandingTotals
    from crypto_assets.analytics.pipeline import AnalyticsSummary
    from crypto_assets.producer.producer import ProducerStats

ALERTS_SHOWN = 10
_ONE_US = dt.timedelta(microseconds=1)


def producer_metadata(
    stats: ProducerStats,
    previous: ProducerStats | None,
    source: str,
    ws_url: str,
    landing: LandingTotals | None = None,
) -> dict[str, Any]:
    """One landing_trades report: what was landed since `previous` (the whole run if None).

    With `landing`, also what the landing folder holds, any run's: the trades (`Row count`) and
    files waiting in it or archived beside it by the analytics, until the retention deletes them.
    """
    before_symbols: Mapping[str, int] = previous.per_symbol if previous else {}
    trades = stats.trades - (previous.trades if previous else 0)
    seconds = max(stats.seconds - (previous.seconds if previous else 0.0), 1e-9)
    folder = (
        {}
        if landing is None
        else {
            "dagster/row_count": landing.rows,
            "landing_files": landing.files,
            "archived_files": landing.archived_files,
        }
    )
    return {
        **folder,
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


# Binance quotes prices with at most 8 decimals (tick sizes down to 1e-8).
MAX_PRICE_DECIMALS = 8
# Significant digits of a window's volume in the narrow tables: enough to compare windows.
QUANTITY_DIGITS = 4
# A double holds about 16 significant digits; differences below this share of a value are noise.
_FLOAT_NOISE = 1e-12
# What the chart covers, and how many written windows are listed at most.
CHART_SPAN = dt.timedelta(hours=1)
WINDOWS_LISTED = 120
_PRICE_COLUMNS = ("open", "high", "low", "close")
# The landing record's fields (DESIGN.md "Landing records"), the columns of landing_trades.
LANDING_SCHEMA = landing_record.arrow_schema()


def column_schema(schema: pa.Schema) -> dg.TableSchema:
    """Dagster's column schema of an Arrow schema: each field's name, type, nullability, meaning."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=field.name,
                type=str(field.type),
                description=COLUMN_DESCRIPTIONS.get(field.name),
                constraints=dg.TableColumnConstraints(nullable=field.nullable),
            )
            for field in schema
        ]
    )


def decimals_of(value: float) -> int:
    """Decimal places of `value`, float noise ignored (60000.01 -> 2, 2500.0 -> 0, 0.1+0.2 -> 1)."""
    for places in range(MAX_PRICE_DECIMALS):
        if abs(round(value, places) - value) <= abs(value) * _FLOAT_NOISE:
            return places
    return MAX_PRICE_DECIMALS


def price_decimals(windows: pa.Table) -> dict[str, int]:
    """Per symbol, the most decimal places among its windows' trade prices (open/high/low/close).

    Trade prices are multiples of the symbol's tick size, so over enough windows this is the
    tick's precision (2 for BTCUSDT and ETHUSDT).
    """
    found: dict[str, int] = {}
    columns = [c for c in _PRICE_COLUMNS if c in windows.column_names]
    for row in windows.select(["symbol", *columns]).to_pylist():
        prices = [row[c] for c in columns if row[c] is not None and math.isfinite(row[c])]
        places = max((decimals_of(p) for p in prices), default=0)
        found[row["symbol"]] = max(found.get(row["symbol"], 0), places)
    return found


def _number(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def short_quantity(value: float | None) -> str:
    """A window's volume to 4 significant digits, whole units kept (2.865, 96.58, 12,345)."""
    if value is None:
        return "n/a"
    magnitude = math.floor(math.log10(abs(value))) + 1 if value else 1
    places = min(max(QUANTITY_DIGITS - magnitude, 0), MAX_PRICE_DECIMALS)
    text = f"{value:,.{places}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def window_clock(starts: Sequence[dt.datetime]) -> tuple[str, str]:
    """A compact strftime format for window starts, and the caption naming what it leaves out.

    The time of day alone when the starts share a date (the caption names the date), month and
    day too when they do not; seconds only when a start has some (windows under a minute).
    """
    time_format = "%H:%M:%S" if any(start.second for start in starts) else "%H:%M"
    dates = sorted({start.date() for start in starts})
    if len(dates) > 1:
        return f"%m-%d {time_format}", f"UTC, {dates[0]:%Y-%m-%d} to {dates[-1]:%Y-%m-%d}"
    return time_format, f"UTC, {dates[0]:%Y-%m-%d}" if dates else "UTC"


def latest_windows_markdown(latest: pa.Table | None, decimals: Mapping[str, int]) -> str:
    """A Markdown table: per symbol, its newest window's VWAP, change % and buy/sell ratio.

    `latest` are the newest of the windows a run wrote, one per symbol it wrote windows of.

    Narrow enough for the UI's metadata panel: the start is said once above the table when every
    symbol's newest window starts at the same time (the usual case), else it is a column.
    """
    rows = [] if latest is None else latest.to_pylist()
    if not rows:
        return (
            "| symbol | VWAP | chg % | buy/sell |\n|---|---:|---:|---:|\n"
            "| (no windows written) | | | |"
        )
    starts = sorted({row["window_start"] for row in rows})
    clock, caption = window_clock(starts)
    if len(starts) == 1:
        lines = [f"Window {starts[0]:{clock}} {caption}", ""]
        lines += ["| symbol | VWAP | chg % | buy/sell |", "|---|---:|---:|---:|"]
    else:
        lines = [f"Starts in {caption}", ""]
        lines += ["| symbol | start | VWAP | chg % | buy/sell |", "|---|---|---:|---:|---:|"]
    for row in rows:
        places = decimals.get(row["symbol"], MAX_PRICE_DECIMALS)
        start = "" if len(starts) == 1 else f" {row['window_start']:{clock}} |"
        lines.append(
            f"| {row['symbol']} |{start} {_number(row['vwap'], places)} "
            f"| {_number(row['price_change_pct'], 2)} | {_number(row['buy_sell_ratio'], 2)} |"
        )
    return "\n".join(lines)


def vwap_by_symbol(latest: pa.Table | None, decimals: Mapping[str, int]) -> dict[str, float]:
    """Numeric `vwap_<symbol>` of each symbol's newest window, rounded to its price precision."""
    if latest is None:
        return {}
    return {
        f"vwap_{row['symbol'].lower()}": round(
            float(row["vwap"]), decimals.get(row["symbol"], MAX_PRICE_DECIMALS)
        )
        for row in latest.select(["symbol", "vwap"]).to_pylist()
        if row["vwap"] is not None
    }


def last_hour(analytics: pa.Table) -> pa.Table:
    """Each symbol's windows of `analytics` that start within `CHART_SPAN` of its newest one
    there, oldest first."""
    newest = analytics.group_by("symbol").aggregate([("window_start", "max")])
    joined = analytics.join(newest, "symbol")
    cutoff = pc.subtract(joined["window_start_max"], pa.scalar(CHART_SPAN - _ONE_US))
    recent = joined.filter(pc.greater_equal(joined["window_start"], cutoff))
    return recent.drop_columns(["window_start_max"]).sort_by(
        [("symbol", "ascending"), ("window_start", "ascending")]
    )


def vwap_volume_chart_markdown(recent: pa.Table, decimals: Mapping[str, int]) -> str:
    """One SVG chart per symbol of VWAP and volume over its last hour of windows."""
    if recent.num_rows == 0:
        return "(no windows written)"
    parts = []
    for symbol in sorted(set(recent["symbol"].to_pylist())):
        rows = recent.filter(pc.equal(recent["symbol"], symbol)).to_pylist()
        window = rows[0]["window_end"] - rows[0]["window_start"]
        places = decimals.get(symbol, MAX_PRICE_DECIMALS)
        svg = vwap_volume_svg(symbol, rows, places, window)
        parts.append(svg_image_markdown(f"{symbol} VWAP and volume, last hour", svg))
    return "\n\n".join(parts)


def written_windows_markdown(
    written: pa.Table, decimals: Mapping[str, int], limit: int = WINDOWS_LISTED
) -> str:
    """The windows a run wrote, at most `limit`: a narrow Markdown table per symbol, by time."""
    if written.num_rows == 0:
        return "(no windows written)"
    ordered = written.sort_by([("symbol", "ascending"), ("window_start", "ascending")])
    rows = ordered.slice(0, limit).to_pylist()
    clock, caption = window_clock([row["window_start"] for row in rows])
    lines = [f"Starts in {caption}"]
    symbol = None
    for row in rows:
        if row["symbol"] != symbol:
            symbol = row["symbol"]
            lines += ["", f"**{symbol}**", ""]
            lines += ["| start | trades | VWAP | volume | chg % |", "|---|---:|---:|---:|---:|"]
        places = decimals.get(symbol, MAX_PRICE_DECIMALS)
        lines.append(
            f"| {row['window_start']:{clock}} | {row['trade_count']} "
            f"| {_number(row['vwap'], places)} | {short_quantity(row['volume'])} "
            f"| {_number(row['price_change_pct'], 2)} |"
        )
    if written.num_rows > limit:
        lines += ["", f"… and {written.num_rows - limit} more"]
    return "\n".join(lines)


def newest_alerts_markdown(alerts: pa.Table | None, limit: int = ALERTS_SHOWN) -> str:
    """A Markdown table of the `limit` newest of `alerts` (by window, then detection time)."""
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
        lines.append("| (no alerts written) | | | |")
    return "\n".join(lines)


def trades_raw_metadata(summary: AnalyticsSummary) -> dict[str, Any]:
    """What a run did to trades_raw: the files it read, and the rows it kept out or dropped."""
    return {
        "rows_written": summary.rows_written.get(TRADES_RAW, 0),
        "files_processed": summary.files_processed,
        "batches": summary.batches,
        "duplicates_skipped": summary.duplicates_skipped,
        "bad_rows_quarantined": summary.bad_rows,
        "processing_seconds": round(summary.seconds, 2),
    }


def _lag_keys(prefix: str, lags: Mapping[str, LagStats]) -> dict[str, float]:
    """``<prefix>_trade_to_<lag>_{p50,p95,max}_s`` of the lags that have samples."""
    metadata: dict[str, float] = {}
    for name, stats in lags.items():
        if stats.count == 0:  # no sample: left out, so the plot shows a gap, not a fake 0
            continue
        for part, value in (("p50", stats.p50_s), ("p95", stats.p95_s), ("max", stats.max_s)):
            metadata[f"{prefix}_trade_to_{name}_{part}_s"] = round(float(value), 3)
    return metadata


def lag_metadata(lag: RunLag, name: str) -> dict[str, Any]:
    """Lag `name` (raw, window, alert): the run's so far (``lag_trade_to_<name>_*``) and the
    latest batch's (``batch_lag_trade_to_<name>_*``, batch ``lag_batch_id``)."""
    metadata = _lag_keys("lag", {name: lag.stats()[name]})
    if lag.latest is not None:
        metadata.update(_lag_keys("batch_lag", {name: lag.latest.stats[name]}))
        metadata["lag_batch_id"] = lag.latest.batch_id
    return metadata


def progress_metadata(progress: StreamProgress | None) -> dict[str, Any]:
    """Spark's progress of the latest completed batch."""
    if progress is None:
        return {}
    return {
        "batch_id": progress.batch_id,
        "batch_duration_s": round(progress.batch_duration_s, 3),
    }


def size_metadata(
    table: FolderSize | None, checkpoint: CheckpointSize | None = None
) -> dict[str, Any]:
    """A table's bytes and files, and (for trades_raw) the checkpoint's."""
    metadata: dict[str, Any] = {}
    if table is not None:
        metadata |= {"table_bytes": table.bytes, "table_files": table.files}
    if checkpoint is not None:
        metadata |= {"checkpoint_bytes": checkpoint.bytes, "checkpoint_files": checkpoint.files}
    return metadata


def table_metadata(
    rows_total: int, rows_written: int | None = None, rows_revised: int | None = None
) -> dict[str, Any]:
    """Row count of one Delta table, and (when known) the rows a run added and revised.

    `rows_written` are new rows; `rows_revised` rewrites of rows already there (a window that
    later trades updated counts once per rewrite).
    """
    metadata: dict[str, Any] = {"dagster/row_count": rows_total}
    if rows_written is not None:
        metadata["rows_written"] = rows_written
    if rows_revised is not None:
        metadata["rows_revised"] = rows_revised
    return metadata


def analytics_metadata(written: pa.Table | None) -> dict[str, Any]:
    """trades_analytics for the UI, from the windows a run wrote (new or revised, every window
    that closed since the previous run included): the newest per symbol, the last hour of
    them as a chart, and the list."""
    if written is None or written.num_rows == 0:
        return {
            "latest_windows": dg.MetadataValue.md(latest_windows_markdown(None, {})),
            "vwap_volume_last_hour": dg.MetadataValue.md("(no windows written)"),
            "windows_written": dg.MetadataValue.md("(no windows written)"),
        }
    decimals = price_decimals(written)
    latest = latest_windows(written)
    recent = last_hour(written)
    return {
        "latest_windows": dg.MetadataValue.md(latest_windows_markdown(latest, decimals)),
        "vwap_volume_last_hour": dg.MetadataValue.md(vwap_volume_chart_markdown(recent, decimals)),
        **vwap_by_symbol(latest, decimals),
        "windows_written": dg.MetadataValue.md(written_windows_markdown(written, decimals)),
    }


def alerts_metadata(alerts: pa.Table | None) -> dict[str, Any]:
    """price_alerts for the UI, from the alerts a run wrote (new or recomputed): the newest as
    Markdown, and the count of each type among them."""
    counts = {PRICE_MOVE: 0, VOLUME_SPIKE: 0}
    if alerts is not None and alerts.num_rows:
        for entry in pc.value_counts(alerts["alert_type"]).to_pylist():
            counts[entry["values"]] = entry["counts"]
    return {
        "newest_alerts": dg.MetadataValue.md(newest_alerts_markdown(alerts)),
        **{f"alerts_{kind.lower()}": count for kind, count in counts.items()},
    }
