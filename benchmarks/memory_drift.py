"""Memory of a long continuous analytics run: where the driver's Python heap grows (tracemalloc).

A writer thread lands one file every --batch-seconds (default 1) of --trades trades, looping the
bundled recording with fresh trade ids and trade times on the wall clock, while this process runs
the continuous analytics on the local deployment (trigger --trigger-seconds, default 1) for
--minutes. tracemalloc traces every Python allocation; snapshots are taken after
--warm-up-minutes and at the end, and the largest growths between the two are printed by the
line that allocated them, with the resident memory of this process and of its JVM over the run.

Only local files; the run stops by itself.

Usage: .venv/bin/python benchmarks/memory_drift.py [--minutes 20] [--warm-up-minutes 5]
       [--trades 50] [--batch-seconds 1] [--trigger-seconds 1] [--top 15]
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import shutil
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import psutil

# Run as a script: its own folder (analytics_throughput) is on sys.path, the repository's is not.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analytics_throughput import _flush, recording_records

from crypto_assets.analytics.pipeline import run_analytics
from crypto_assets.analytics.spark_session import get_spark_session
from crypto_assets.local.deployment import LocalDeployment
from crypto_assets.settings import Settings

MIB = 2**20


def land(landing: Path, per_file: int, every_s: float, stop: threading.Event) -> None:
    """Land a file of `per_file` trades every `every_s` until `stop`: fresh ids, times now."""
    records = itertools.cycle(recording_records())
    next_id: dict[str, int] = {}
    for sequence in itertools.count(1):
        if stop.wait(every_s):
            return
        now_ms = time.time_ns() // 1_000_000
        lines = []
        for offset in range(per_file):
            record = next(records)
            symbol = record["symbol"]
            trade_id = next_id.setdefault(symbol, record["trade_id"])
            next_id[symbol] = trade_id + 1
            when = now_ms - round(every_s * 1000) + offset * round(every_s * 1000) // per_file
            record = record | {
                "trade_id": trade_id,
                "trade_time": when,
                "event_time": when,
                "ingestion_time": now_ms,
            }
            lines.append(json.dumps(record))
        _flush(landing, lines, sequence)


def resident(process: psutil.Process) -> tuple[int, int]:
    """Resident bytes of this process and of its Java children (the JVM)."""
    java = 0
    for child in process.children(recursive=True):
        try:
            if "java" in child.name():
                java += child.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return process.memory_info().rss, java


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--warm-up-minutes", type=float, default=5.0)
    parser.add_argument("--trades", type=int, default=50, help="trades per landing file [50]")
    parser.add_argument("--batch-seconds", type=float, default=1.0)
    parser.add_argument("--trigger-seconds", type=float, default=1.0)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--frames", type=int, default=1, help="traceback depth of tracemalloc")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    data_dir = Path(tempfile.mkdtemp(prefix="memory_drift_"))
    landing = data_dir / "landing" / "trades"
    landing.mkdir(parents=True)
    settings = Settings(data_dir=data_dir, landing_retention_hours=0.1)
    spark = get_spark_session()
    target = LocalDeployment(settings).analytics_target(spark)
    stop = threading.Event()
    this = psutil.Process()
    samples: list[tuple[float, int, int, int]] = []
    snapshots: list[tracemalloc.Snapshot] = []

    def watch() -> None:
        started = time.monotonic()
        warm_up_at = started + args.warm_up_minutes * 60
        end_at = started + args.minutes * 60
        while not stop.is_set():
            now = time.monotonic()
            python, java = resident(this)
            samples.append((now - started, python, java, tracemalloc.get_traced_memory()[0]))
            if not snapshots and now >= warm_up_at:
                snapshots.append(tracemalloc.take_snapshot())
            if now >= end_at:
                snapshots.append(tracemalloc.take_snapshot())
                stop.set()
                return
            stop.wait(30)

    tracemalloc.start(args.frames)
    writer = threading.Thread(
        target=land, args=(landing, args.trades, args.batch_seconds, stop), daemon=True
    )
    watcher = threading.Thread(target=watch, daemon=True)
    try:
        writer.start()
        watcher.start()
        run_analytics(
            spark,
            settings,
            target,
            mode="continuous",
            trigger_seconds=args.trigger_seconds,
            stop_event=stop,
        )
    finally:
        stop.set()
        writer.join(10)
        watcher.join(10)
        shutil.rmtree(data_dir, ignore_errors=True)

    print(f"{args.minutes:g} min, a file of {args.trades} trades every {args.batch_seconds:g} s, "
          f"trigger {args.trigger_seconds:g} s")  # fmt: skip
    print("minute  python RSS  JVM RSS  traced Python heap (MiB)")
    for seconds, python, java, traced in samples[:: max(1, len(samples) // 20)] + samples[-1:]:
        print(f"{seconds / 60:6.1f}  {python / MIB:10.0f}  {java / MIB:7.0f}  {traced / MIB:8.1f}")
    if len(snapshots) == 2:
        warm, end = snapshots
        growth = end.compare_to(warm, "lineno")
        total = sum(stat.size_diff for stat in growth)
        print(f"traced heap growth after the warm-up: {total / MIB:+.1f} MiB; largest by line:")
        for stat in growth[: args.top]:
            print(f"  {stat.size_diff / 1024:+9.0f} KiB {stat.count_diff:+7d} blocks  "
                  f"{stat.traceback[0]}")  # fmt: skip


if __name__ == "__main__":
    main()
