"""Throughput of the analytics pipeline on >= 1M trades, against DuckDB on the same files.

The real recording (34,419 trades) is looped with shifted trade ids and times into landing files
of 1,000 trades (the producer's default batch), processed once with availableNow, then DuckDB
computes the same window metrics from the same files. Prints trades/s with and without Spark's
start-up and the ratio to DuckDB.

Then the backlog case: 1,000,000 trades in 100 files of 10,000, processed by one
`crypto-assets analytics --once` process, as a user would run it after a long outage. Prints its
whole-process trades/s (JVM start-up included), the batches it took, the peak resident memory
of the Python process and of its Java child (sampled every 0.1 s from /proc), and the ratio of
DuckDB's time for the same windows from the same files to the whole process's.

Usage: .venv/bin/python benchmarks/analytics_throughput.py [--skip-steady] [--skip-backlog]
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pyarrow as pa
from deltalake import DeltaTable

from crypto_assets.analytics.pipeline import run_analytics
from crypto_assets.analytics.spark_session import get_spark_session
from crypto_assets.local.deployment import LocalDeployment
from crypto_assets.recording import bundled_recording
from crypto_assets.settings import Settings

LOOP_SHIFT_MS = 12 * 60_000  # the recording spans 11 minutes; whole minutes keep windows aligned


def recording_records() -> list[dict]:
    """Landing records of the bundled recording, in receive order."""
    out = []
    with gzip.open(bundled_recording(), "rt") as lines:
        for line in lines:
            received_ns, frame = line.split(" ", 1)
            d = json.loads(frame)["data"]
            p, q = float(d["p"]), float(d["q"])
            out.append(
                {
                    "event_type": d["e"],
                    "event_time": d["E"],
                    "symbol": d["s"],
                    "trade_id": d["t"],
                    "price": p,
                    "quantity": q,
                    "trade_value_usdt": p * q,
                    "trade_time": d["T"],
                    "is_buyer_maker": d["m"],
                    "ingestion_time": int(received_ns) // 1_000_000,
                }
            )
    return out


def write_landing(landing: Path, trades: int, per_file: int) -> int:
    """Loop the recording into landing files until `trades` trades; returns the trades written."""
    base = recording_records()
    id_span = {
        s: max(r["trade_id"] for r in base if r["symbol"] == s)
        - min(r["trade_id"] for r in base if r["symbol"] == s)
        + 1
        for s in {r["symbol"] for r in base}
    }
    landing.mkdir(parents=True, exist_ok=True)
    loops = math.ceil(trades / len(base))
    buffer: list[str] = []
    written = files = 0
    for loop in range(loops):
        shift = loop * LOOP_SHIFT_MS
        for r in base[: trades - written]:
            shifted = {
                **r,
                "trade_id": r["trade_id"] + loop * id_span[r["symbol"]],
                "trade_time": r["trade_time"] + shift,
                "event_time": r["event_time"] + shift,
                "ingestion_time": r["ingestion_time"] + shift,
            }
            buffer.append(json.dumps(shifted))
            written += 1
            if len(buffer) == per_file:
                files += 1
                _flush(landing, buffer, files)
                buffer = []
    if buffer:
        _flush(landing, buffer, files + 1)
    return written


def _flush(landing: Path, lines: list[str], sequence: int) -> None:
    name = f"trades_20240809_000000_{sequence:06x}.json"
    temp = landing / f".{name}.tmp"
    temp.write_text("\n".join(lines) + "\n")
    os.replace(temp, landing / name)


DUCKDB_WINDOWS = """
WITH trades AS (
  SELECT DISTINCT ON (symbol, trade_id) *
  FROM read_json('{files}', format = 'newline_delimited', columns = {{
    event_type: 'VARCHAR', event_time: 'BIGINT', symbol: 'VARCHAR', trade_id: 'BIGINT',
    price: 'DOUBLE', quantity: 'DOUBLE', trade_value_usdt: 'DOUBLE', trade_time: 'BIGINT',
    is_buyer_maker: 'BOOLEAN', ingestion_time: 'BIGINT'}})
  WHERE symbol IS NOT NULL AND price > 0 AND quantity > 0
), sums AS (
  SELECT symbol, trade_time - trade_time % {window_ms} AS start_ms, count(*) AS trade_count,
    sum(quantity) AS volume, sum(price * quantity) AS quote_volume,
    arg_min(price, (trade_time, trade_id)) AS open, arg_max(price, (trade_time, trade_id)) AS close,
    max(price) AS high, min(price) AS low, avg(price) AS avg_price,
    sum(quantity) FILTER (WHERE NOT is_buyer_maker) AS buy_volume,
    sum(quantity) FILTER (WHERE is_buyer_maker) AS sell_volume
  FROM trades GROUP BY ALL
)
SELECT *, quote_volume / volume AS vwap, (high - low) / avg_price * 100 AS price_range_pct,
  (close - open) / open * 100 AS price_change_pct,
  CASE WHEN sell_volume > 0 THEN buy_volume / sell_volume END AS buy_sell_ratio
FROM sums
"""


def run_pipeline(spark: object, data_dir: Path, landing: Path) -> float:
    """Seconds for one availableNow run over a fresh copy of `landing` with empty tables."""
    (data_dir / "landing").mkdir(parents=True)
    shutil.copytree(landing, data_dir / "landing" / "trades")
    settings = Settings(data_dir=data_dir)
    started = time.perf_counter()
    target = LocalDeployment(settings).analytics_target(spark)  # type: ignore[arg-type]
    summary = run_analytics(spark, settings, target, mode="once")  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    print(summary.summary_line())
    return seconds


def _rss_kib(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) if match else 0


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _is_java(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "java"
    except OSError:
        return False


def run_backlog(data_dir: Path, trades: int, per_file: int) -> None:
    """One `crypto-assets analytics --once` process over a backlog; prints rate, batches, RSS."""
    landing = data_dir / "landing" / "trades"
    written = write_landing(landing, trades, per_file)
    files = len(list(landing.glob("trades_*.json")))
    # The reference first (the run may archive the files): DuckDB, one process, the same windows.
    duck_started = time.perf_counter()
    query = DUCKDB_WINDOWS.format(files=landing / "trades_*.json", window_ms=60_000)
    duckdb.connect().sql(query).to_arrow_table()
    duck_seconds = time.perf_counter() - duck_started
    command = [sys.executable, "-m", "crypto_assets.cli", "analytics", "--once"]
    started = time.perf_counter()
    process = subprocess.Popen(
        [*command, "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak_python = peak_java = 0
    while process.poll() is None:
        peak_python = max(peak_python, _rss_kib(process.pid))
        java = sum(_rss_kib(p) for p in _descendants(process.pid) if _is_java(p))
        peak_java = max(peak_java, java)
        time.sleep(0.1)
    seconds = time.perf_counter() - started
    out, err = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"backlog run failed ({process.returncode}): {err[-2000:]}")
    summary = out.strip().splitlines()[-1]
    batches = re.search(r"in (\d+) batches", summary)
    print(f"backlog: {written:,} trades in {files} files of {per_file:,}, one --once process")
    print(f"  {summary}")
    print(
        f"  whole process: {seconds:.1f} s, {written / seconds:,.0f} trades/s, "
        f"{batches.group(1) if batches else '?'} batches"
    )
    print(f"  peak RSS: python {peak_python / 1024:,.0f} MiB, java {peak_java / 1024:,.0f} MiB")
    print(
        f"  DuckDB, the same windows from the same files: {duck_seconds:.2f} s; "
        f"ratio DuckDB / whole process {duck_seconds / seconds:.3f} (target >= 0.1)"
    )


def main() -> None:
    """Generate, run Spark + delta-rs, run DuckDB, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, default=1_000_000)
    parser.add_argument("--trades-per-file", type=int, default=1000)
    parser.add_argument("--backlog-trades", type=int, default=1_000_000)
    parser.add_argument("--backlog-trades-per-file", type=int, default=10_000)
    parser.add_argument("--skip-steady", action="store_true", help="only the backlog case")
    parser.add_argument("--skip-backlog", action="store_true", help="only the steady case")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    if not args.skip_steady:
        steady_case(args.trades, args.trades_per_file)
    if not args.skip_backlog:
        with tempfile.TemporaryDirectory(prefix="analytics_backlog_") as tmp:
            run_backlog(Path(tmp), args.backlog_trades, args.backlog_trades_per_file)


def steady_case(trades_wanted: int, per_file: int) -> None:
    """Cold and warm in-process runs over `trades_wanted` trades, then DuckDB on the same files."""
    with tempfile.TemporaryDirectory(prefix="analytics_bench_") as tmp:
        data_dir = Path(tmp)
        landing = data_dir / "generated"
        started = time.perf_counter()
        trades = write_landing(landing, trades_wanted, per_file)
        files = len(list(landing.glob("trades_*.json")))
        print(
            f"landing: {trades:,} trades in {files:,} files ({time.perf_counter() - started:.1f} s)"
        )

        t0 = time.perf_counter()
        spark = get_spark_session("analytics_benchmark")
        startup = time.perf_counter() - t0
        cold = run_pipeline(spark, data_dir / "cold", landing)
        steady = run_pipeline(spark, data_dir / "steady", landing)
        print(f"spark start-up: {startup:.1f} s")
        print(f"first run, including start-up: {trades / (startup + cold):,.0f} trades/s")
        print(f"first run, without start-up: {trades / cold:,.0f} trades/s ({cold:.1f} s)")
        spark_steady = trades / steady
        print(f"second run (warm JVM, steady): {spark_steady:,.0f} trades/s ({steady:.1f} s)")

        t3 = time.perf_counter()
        con = duckdb.connect()
        query = DUCKDB_WINDOWS.format(files=landing / "trades_*.json", window_ms=60_000)
        windows = con.sql(query).to_arrow_table()
        t4 = time.perf_counter()
        duck_rate = trades / (t4 - t3)
        print(f"duckdb window metrics, same files: {duck_rate:,.0f} trades/s ({t4 - t3:.1f} s)")
        print(f"ratio spark steady / duckdb: {spark_steady / duck_rate:.2f}")

        delta_path = data_dir / "steady" / "delta" / "trades_analytics"
        delta = pa.table(DeltaTable(str(delta_path)).to_pyarrow_table())
        duck_table = pa.table(windows)
        same_counts = sorted(duck_table["trade_count"].to_pylist()) == sorted(
            delta["trade_count"].to_pylist()
        )
        print(
            f"check: {delta.num_rows} windows in Delta, {duck_table.num_rows} in DuckDB, "
            f"trade counts equal: {same_counts}"
        )


if __name__ == "__main__":
    main()
