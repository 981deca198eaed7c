"""A terminal view of the Delta tables: latest window per symbol, the most recent alerts, and
the freshness of the latest batches (their lags, from price_alerts' commit metadata).

Reads the tables through a `Lakehouse`: locally delta-rs only, so it needs no Spark and no Java.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from crypto_assets.analytics.lag import LAGS, BatchLag, LagStats
from crypto_assets.analytics.lakehouse import Lakehouse
from crypto_assets.analytics.schema import PRICE_ALERTS, TRADES_ANALYTICS
from crypto_assets.errors import CryptoAssetsError


class NoTablesError(CryptoAssetsError):
    """The lakehouse holds no analytics tables yet."""


def read_table(
    lakehouse: Lakehouse, name: str, missing: str = "run the analytics first"
) -> pa.Table:
    """Table `name` of `lakehouse` as Arrow; `NoTablesError` saying `missing` if there is none."""
    table = lakehouse.read_table(name)
    if table is None:
        raise NoTablesError(f"no Delta table {lakehouse.table_location(name)}: {missing}")
    return table


def latest_windows(analytics: pa.Table) -> pa.Table:
    """The newest trades_analytics row of each symbol, ordered by symbol."""
    if analytics.num_rows == 0:
        return analytics
    newest = analytics.group_by("symbol").aggregate([("window_start", "max")])
    keys = newest.rename_columns(["symbol", "window_start"])
    return analytics.join(keys, ["symbol", "window_start"], join_type="inner").sort_by("symbol")


def recent_alerts(alerts: pa.Table, limit: int) -> list[dict]:
    """The `limit` alerts with the latest windows, newest first."""
    ordered = alerts.sort_by([("window_start", "descending"), ("symbol", "ascending")])
    return ordered.slice(0, limit).to_pylist()


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned text columns with a header rule."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join("{:<" + str(w) + "}" for w in widths)
    out = [line.format(*headers), line.format(*("-" * w for w in widths))]
    out.extend(line.format(*row) for row in rows)
    return "\n".join(text.rstrip() for text in out)


def _when(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M")


def _number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _lag_cell(stats: LagStats) -> str:
    if stats.count == 0:
        return "-"
    return f"{stats.p50_s:.2f} / {stats.p95_s:.2f} / {stats.max_s:.2f}"


def freshness_lines(batches: Sequence[BatchLag]) -> list[str]:
    """The freshness section: each recent batch's lags (p50 / p95 / max s), newest first."""
    title = f"Freshness (lag p50 / p95 / max in seconds, latest {len(batches)} batches)"
    if not batches:
        return [
            "Freshness",
            "(no batch lags recorded yet: they are written by analytics batches that insert "
            "trades into open windows)",
        ]
    rows = [
        [
            str(batch.batch_id),
            dt.datetime.fromtimestamp(batch.finished_ms / 1000, dt.UTC).strftime("%H:%M:%S"),
            str(batch.raw.count),
            *(_lag_cell(batch.stats[name]) for name in LAGS),
        ]
        for batch in batches
    ]
    headers = ["batch", "at (UTC)", "trades", "trade->raw", "trade->window", "trade->alert"]
    newest = dt.datetime.fromtimestamp(batches[0].finished_ms / 1000, dt.UTC)
    return [
        title,
        format_table(headers, rows),
        f"newest batch {batches[0].batch_id} at {newest:%Y-%m-%d %H:%M:%S} UTC",
    ]


def render(
    lakehouse: Lakehouse,
    alert_limit: int = 10,
    lag_batches: int = 10,
    missing: str = "run the analytics first",
) -> str:
    """The text `crypto-assets show` prints for the tables of `lakehouse`.

    `missing` is what to do when the tables do not exist yet (`NoTablesError`).
    """
    analytics = read_table(lakehouse, TRADES_ANALYTICS, missing)
    alerts = read_table(lakehouse, PRICE_ALERTS, missing)
    windows = [
        [
            row["symbol"],
            _when(row["window_start"]),
            str(row["trade_count"]),
            _number(row["vwap"], 2),
            _number(row["volume"], 4),
            _number(row["price_change_pct"], 3),
            _number(row["buy_sell_ratio"], 2),
        ]
        for row in latest_windows(analytics).to_pylist()
    ]
    headers = ["symbol", "window (UTC)", "trades", "VWAP", "volume", "change %", "buy/sell"]
    parts = [f"Latest window per symbol ({analytics.num_rows} windows in {TRADES_ANALYTICS})"]
    parts.append(format_table(headers, windows) if windows else "(no windows yet)")
    shown = recent_alerts(alerts, alert_limit)
    parts.append("")
    parts.append(f"Recent alerts ({len(shown)} of {alerts.num_rows})")
    alert_rows = [
        [_when(row["window_start"]), row["symbol"], row["alert_type"], row["message"]]
        for row in shown
    ]
    parts.append(
        format_table(["window (UTC)", "symbol", "alert", "message"], alert_rows)
        if alert_rows
        else "(no alerts)"
    )
    if analytics.num_rows:
        newest = pc.max(analytics["updated_time"]).as_py()
        parts.append("")
        parts.append(f"tables updated {newest.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC")
    parts.append("")
    parts.extend(freshness_lines(lakehouse.recent_batch_lags(lag_batches)))
    return "\n".join(parts)
