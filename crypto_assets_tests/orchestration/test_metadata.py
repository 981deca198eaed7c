"""Metadata builders: the producer's report, the tables' views, the chart, the column schema."""

from __future__ import annotations

import base64
import datetime as dt
import re
import xml.etree.ElementTree as ET

import pyarrow as pa
import pyarrow.compute as pc

from crypto_assets.analytics.batch import StreamProgress
from crypto_assets.analytics.lag import BatchLag, RunLag
from crypto_assets.analytics.lakehouse import CheckpointSize, FolderSize, LandingTotals
from crypto_assets.analytics.schema import TABLE_SCHEMAS, TRADES_ANALYTICS_SCHEMA
from crypto_assets.analytics.show import latest_windows
from crypto_assets.orchestration.metadata import (
    LANDING_SCHEMA,
    alerts_metadata,
    analytics_metadata,
    column_schema,
    decimals_of,
    lag_metadata,
    newest_alerts_markdown,
    price_decimals,
    producer_metadata,
    progress_metadata,
    short_quantity,
    size_metadata,
    window_clock,
    written_windows_markdown,
)
from crypto_assets.producer.producer import ProducerStats

T0 = dt.datetime(2024, 8, 9, 0, 0, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)


def _stats(trades: dict[str, int], files: int, seconds: float) -> ProducerStats:
    return ProducerStats(
        trades=sum(trades.values()),
        files=files,
        quarantined=1,
        duplicates_dropped=0,
        gaps_filled=2,
        gaps_unfilled=0,
        reconnects=1,
        seconds=seconds,
        per_symbol=trades,
    )


def test_producer_report_counts_what_landed_since_the_previous_one():
    first = _stats({"BTCUSDT": 100, "ETHUSDT": 50}, files=3, seconds=10.0)
    second = _stats({"BTCUSDT": 160, "ETHUSDT": 90}, files=5, seconds=30.0)
    meta = producer_metadata(second, first, "replay", "ws://127.0.0.1:9999")
    assert meta["trades"] == 100
    assert meta["files"] == 2
    assert meta["trades_per_second"] == 100 / 20
    assert meta["trades_btcusdt"] == 60
    assert meta["trades_ethusdt"] == 40
    assert meta["run_trades"] == 250
    assert (meta["source"], meta["reconnects"], meta["gaps_filled"]) == ("replay", 1, 2)
    whole = producer_metadata(first, None, "live", "wss://stream.binance.com:9443")
    assert (whole["trades"], whole["files"], whole["trades_per_second"]) == (150, 3, 15.0)
    assert "dagster/row_count" not in whole  # the folder was not counted
    # The whole folder (earlier runs' files too), as the landing counter found it.
    held = LandingTotals(files=9, rows=700, archived_files=6)
    folder = producer_metadata(second, first, "replay", "ws://x", held)
    assert (folder["dagster/row_count"], folder["landing_files"]) == (700, 9)
    assert folder["archived_files"] == 6


def _analytics() -> pa.Table:
    return pa.table(
        {
            "symbol": ["ETHUSDT", "BTCUSDT", "BTCUSDT", "ETHUSDT"],
            "window_start": [T0, T0, T0 + MINUTE, T0 + MINUTE],
            "window_end": [T0 + MINUTE, T0 + MINUTE, T0 + 2 * MINUTE, T0 + 2 * MINUTE],
            "trade_count": [5, 7, 9, 4],
            "volume": [1.0, 2.0, 3.0, 4.0],
            "vwap": [2500.5, 60000.25, 60100.7512345, 2501.004999],
            # BTCUSDT's prices carry 2 decimals somewhere, ETHUSDT's only 1.
            "open": [2500.5, 60000.0, 60100.0, 2501.0],
            "high": [2501.0, 60000.5, 60101.25, 2501.5],
            "low": [2500.0, 60000.0, 60100.0, 2500.5],
            "close": [2501.0, 60000.5, 60101.0, 2501.0],
            "price_change_pct": [0.1, -0.2, 0.31234, None],
            "buy_sell_ratio": [1.0, 2.0, 0.5, None],
            "updated_time": [T0 + 2 * MINUTE, T0 + 2 * MINUTE, T0 + 3 * MINUTE, T0 + 3 * MINUTE],
        }
    )


def test_decimals_are_those_of_the_shortest_written_form():
    assert [decimals_of(v) for v in (60000.01, 2500.5, 2500.0, 3e-05)] == [2, 1, 0, 5]
    assert decimals_of(0.1 + 0.2) == 1  # 0.30000000000000004 is 0.3 written as a double
    assert decimals_of(1.123456789) == 8  # capped at Binance's 8
    assert price_decimals(_analytics()) == {"BTCUSDT": 2, "ETHUSDT": 1}


def test_latest_window_per_symbol_and_vwap_rounded_to_the_price_precision():
    latest = latest_windows(_analytics())
    assert latest["symbol"].to_pylist() == ["BTCUSDT", "ETHUSDT"]
    assert latest["window_start"].to_pylist() == [T0 + MINUTE, T0 + MINUTE]
    meta = analytics_metadata(_analytics())
    assert meta["vwap_btcusdt"] == 60100.75
    assert meta["vwap_ethusdt"] == 2501.0
    table = meta["latest_windows"].value
    # Both newest windows start at 00:01: said once above the table, not in a column.
    assert table.startswith("Window 00:01 UTC, 2024-08-09\n")
    assert "| symbol | VWAP | chg % | buy/sell |" in table
    assert "| BTCUSDT | 60,100.75 | 0.31 | 0.50 |" in table
    assert "| ETHUSDT | 2,501.0 | n/a | n/a |" in table
    assert "2500.5" not in table
    assert _fits(table)


def _fits(markdown: str) -> bool:
    """Whether `markdown` fits the UI's metadata panel, as measured there at 1440 px of window.

    The value column is about 335 px wide; a table costs about 7.5 px a character of its widest
    cells plus 15 px a column, a line of text 8.4 px a character (it does not wrap). The tables
    that were cut off came to 495 px (latest_windows) and 502 px (windows_written).
    """
    text = [line for line in markdown.splitlines() if line and not line.startswith("|")]
    columns = len(next(line for line in markdown.splitlines() if line.startswith("|")).split("|"))
    table_px = 7.5 * _widest_row(markdown) + 15 * (columns - 2)
    return table_px <= 335 and all(8.4 * len(line) <= 335 for line in text)


def _widest_row(markdown: str) -> int:
    """Characters of the widest table row as the UI lays it out: widest cell per column, summed."""
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in markdown.splitlines()
        if line.startswith("|") and not line.startswith("|---")
    ]
    return sum(max(len(row[i]) for row in rows if i < len(row)) for i in range(len(rows[0])))


def test_newest_windows_that_start_apart_get_a_start_column():
    table = _analytics().take([1, 3])  # BTCUSDT's newest at 00:00, ETHUSDT's at 00:01
    markdown = analytics_metadata(table)["latest_windows"].value
    assert markdown.startswith("Starts in UTC, 2024-08-09\n")
    assert "| BTCUSDT | 00:00 | 60,000.2 |" in markdown  # its prices have one decimal
    assert "| ETHUSDT | 00:01 | 2,501.0 |" in markdown
    assert _fits(markdown)


def test_window_starts_print_as_short_as_they_can():
    day = [T0, T0 + MINUTE]
    assert window_clock(day) == ("%H:%M", "UTC, 2024-08-09")
    assert window_clock([T0 - MINUTE, T0]) == ("%m-%d %H:%M", "UTC, 2024-08-08 to 2024-08-09")
    assert window_clock([T0, T0 + dt.timedelta(seconds=30)])[0] == "%H:%M:%S"


def _svg_charts(markdown: str) -> dict[str, ET.Element]:
    """The SVG images embedded in `markdown`, by their alt text's first word (the symbol)."""
    found = re.findall(
        r"!\[(\w+)[^\]]*\]\(data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\)", markdown
    )
    return {symbol: ET.fromstring(base64.b64decode(data)) for symbol, data in found}


def _hours_of_windows(hours: float) -> pa.Table:
    """Windows of two symbols, one a minute for `hours`, BTCUSDT's VWAP rising a cent a minute."""
    count = round(hours * 60)
    starts = [T0 + i * MINUTE for i in range(count)]
    columns: dict[str, list] = {name: [] for name in _analytics().column_names}
    for symbol, base in (("BTCUSDT", 60000.0), ("ETHUSDT", 2500.0)):
        for i, start in enumerate(starts):
            row = {
                "symbol": symbol,
                "window_start": start,
                "window_end": start + MINUTE,
                "trade_count": 10,
                "volume": 1.0 + i,
                "vwap": base + i / 100 + 0.001,
                "open": base + 0.01,
                "high": base + i / 100 + 0.02,
                "low": base,
                "close": base,
                "price_change_pct": 0.0,
                "buy_sell_ratio": 1.0,
                "updated_time": start + 2 * MINUTE,
            }
            for name, value in row.items():
                columns[name].append(value)
    return pa.table(columns)


def test_the_chart_shows_every_window_of_each_symbols_last_hour():
    windows = _hours_of_windows(1.5)  # 90 windows a symbol: the chart takes the newest 60
    charts = _svg_charts(analytics_metadata(windows)["vwap_volume_last_hour"].value)
    assert set(charts) == {"BTCUSDT", "ETHUSDT"}
    svg = "{http://www.w3.org/2000/svg}"
    btc = charts["BTCUSDT"]
    points = btc.find(f"{svg}polyline").get("points").split()
    bars = [r for r in btc.iter(f"{svg}rect") if r.get("fill") != "white"]
    assert len(points) == len(bars) == 60
    labels = [t.text for t in btc.iter(f"{svg}text")]
    # VWAPs of minutes 30..89: 60000.301 .. 60000.891, printed with BTCUSDT's 2 decimals.
    assert "60,000.89" in labels
    assert "60,000.30" in labels
    assert "2024-08-09 00:30 UTC" in labels
    assert "01:29 UTC" in labels
    # Higher VWAP is drawn higher (smaller y), and the first bar is the shortest.
    ys = [float(p.split(",")[1]) for p in points]
    assert ys[0] > ys[-1]
    heights = [float(r.get("height")) for r in bars]
    assert heights[0] == min(heights)


def test_the_windows_a_run_wrote_are_listed():
    half_hour = _hours_of_windows(0.5)
    # The run wrote windows 18..29 of each symbol.
    windows = half_hour.filter(pc.greater_equal(half_hour["window_start"], T0 + 18 * MINUTE))
    meta = analytics_metadata(windows)
    markdown = meta["windows_written"].value
    # One narrow table per symbol, under its name; the date said once above them.
    assert markdown.startswith("Starts in UTC, 2024-08-09\n\n**BTCUSDT**\n")
    assert "\n**ETHUSDT**\n" in markdown
    rows = [line for line in markdown.splitlines() if line.startswith("| 00:")]
    assert len(rows) == 2 * 12
    # Volume 1 + 18 = 19.0 is printed without trailing zeros.
    assert rows[0] == "| 00:18 | 10 | 60,000.18 | 19 | 0.00 |"
    assert _fits(markdown)
    # The newest window per symbol and the chart are those of the windows the run wrote.
    assert meta["latest_windows"].value.startswith("Window 00:29 UTC")
    assert meta["vwap_volume_last_hour"].value.count("data:image/svg+xml;base64,") == 2
    many = analytics_metadata(_hours_of_windows(1.5))["windows_written"].value
    assert many.endswith("\n\n… and 60 more")  # 180 written, 120 listed
    assert written_windows_markdown(windows.slice(0, 0), {}) == "(no windows written)"


def test_volumes_print_to_four_significant_digits():
    quantities = [2.86512, 96.5781, 19.0, 12345.6, 0.000123456, 0.0]
    assert [short_quantity(q) for q in quantities] == [
        "2.865",
        "96.58",
        "19",
        "12,346",
        "0.0001235",
        "0",
    ]


def test_column_schema_holds_every_arrow_field():
    schema = column_schema(TRADES_ANALYTICS_SCHEMA)
    assert [(c.name, c.type) for c in schema.columns] == [
        (field.name, str(field.type)) for field in TRADES_ANALYTICS_SCHEMA
    ]
    assert all(c.constraints.nullable for c in schema.columns)
    vwap = next(c for c in schema.columns if c.name == "vwap")
    assert vwap.description == "quote_volume / volume"
    required = column_schema(pa.schema([pa.field("id", pa.int64(), nullable=False)]))
    assert required.columns[0].type == "int64"
    assert not required.columns[0].constraints.nullable


def test_every_column_of_every_table_says_what_it_means():
    for schema in [*TABLE_SCHEMAS.values(), LANDING_SCHEMA]:
        for column in column_schema(schema).columns:
            assert column.description, column.name


def test_a_run_that_wrote_nothing_says_so():
    for nothing in (None, _analytics().slice(0, 0)):
        meta = analytics_metadata(nothing)
        assert "no windows written" in meta["latest_windows"].value
        assert meta["vwap_volume_last_hour"].value == "(no windows written)"
        assert meta["windows_written"].value == "(no windows written)"
    alerts = alerts_metadata(None)
    assert "no alerts written" in alerts["newest_alerts"].value
    assert (alerts["alerts_price_move"], alerts["alerts_volume_spike"]) == (0, 0)


def test_newest_alerts_first_and_limited():
    alerts = pa.table(
        {
            "alert_type": ["PRICE_MOVE", "VOLUME_SPIKE", "PRICE_MOVE"],
            "symbol": ["BTCUSDT", "ETHUSDT", "ETHUSDT"],
            "window_start": [T0, T0 + 2 * MINUTE, T0 + MINUTE],
            "detected_time": [T0 + 3 * MINUTE] * 3,
            "message": ["BTCUSDT moved | 0.6%", "ETHUSDT 400 trades", "ETHUSDT moved 0.7%"],
        }
    )
    markdown = newest_alerts_markdown(alerts, limit=2)
    rows = [line for line in markdown.splitlines() if line.startswith("| 2024")]
    assert [r.split(" | ")[2] for r in rows] == ["VOLUME_SPIKE", "PRICE_MOVE"]
    assert "BTCUSDT" not in markdown  # the oldest alert is beyond the limit
    counts = alerts_metadata(alerts)
    assert (counts["alerts_price_move"], counts["alerts_volume_spike"]) == (2, 1)


def test_lag_keys_of_the_run_so_far_and_of_the_latest_batch():
    run = RunLag()
    run.add(BatchLag.of("q", 7, 1, {"raw": [1.0, 2.0, 3.0], "window": [4.0]}))
    run.add(BatchLag.of("q", 8, 2, {"raw": [5.0]}))
    raw = lag_metadata(run, "raw")
    # The run: samples 1, 2, 3, 5 s; the latest batch (8): 5 s alone.
    assert raw["lag_trade_to_raw_max_s"] == 5.0
    assert abs(raw["lag_trade_to_raw_p50_s"] - 2.0) <= 0.02  # "lower" median, 1 % histogram
    assert raw["batch_lag_trade_to_raw_p50_s"] == raw["batch_lag_trade_to_raw_max_s"] == 5.0
    assert raw["lag_batch_id"] == 8
    window = lag_metadata(run, "window")
    assert window["lag_trade_to_window_max_s"] == 4.0
    assert "batch_lag_trade_to_window_p95_s" not in window  # batch 8 had no window sample
    assert set(lag_metadata(run, "alert")) == {"lag_batch_id"}
    assert lag_metadata(RunLag(), "raw") == {}


def test_progress_and_size_keys():
    progress = StreamProgress.of(
        {
            "batchId": 12,
            "numInputRows": 3,
            "inputRowsPerSecond": 0.6,
            "processedRowsPerSecond": 1.5,
            "durationMs": {"triggerExecution": 2000, "addBatch": 1800},
        }
    )
    assert progress_metadata(progress) == {"batch_id": 12, "batch_duration_s": 2.0}
    assert progress_metadata(None) == {}
    assert size_metadata(FolderSize(100, 2), CheckpointSize(50, 9, 3)) == {
        "table_bytes": 100,
        "table_files": 2,
        "checkpoint_bytes": 50,
        "checkpoint_files": 9,
    }
    assert size_metadata(None) == {}
