"""Per-batch cost of the analytics, step by step, against DuckDB on the same batch.

The bundled recording (looped with shifted ids and times when more is needed) is cut into
landing files of `--trades` trades each; one availableNow run over them with one file per
trigger makes each file one micro-batch, on the local deployment (local Spark, delta-rs tables,
DuckDB), as a continuous run at a 1 s trigger would see them. Each batch's step times come from the
batch's own log line (read, trades_raw, trades_analytics, price_alerts). The first `--warm-up`
batches are left out (JIT, code generation, the tables' first commits).

Beside each step's wall time it counts CPU seconds per batch, read from the kernel between the
end of the last warm-up batch and the end of the last batch: this process (Python and delta-rs's
threads) and Spark's JVM, the JVM split into its JIT compiler threads and the rest. CPU time does
not grow when another program shares the cores, so it compares runs that wall time cannot; and a
JVM that is still compiling Spark's own code (its first minutes) shows as JIT time.

The reference: DuckDB computes, for each batch, the same window metrics from the batch's file
and the two before it (the trades of the windows such a batch touches), in the same run. The
ratio DuckDB / pipeline says how far a batch is from one engine in one process on the same data.

Usage: .venv/bin/python benchmarks/batch_cost.py [--trades N] [--batches N] [--warm-up N]
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import psutil

# Run as a script: its own folder (analytics_throughput) is on sys.path, the repository's is not.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analytics_throughput import DUCKDB_WINDOWS, write_landing

from crypto_assets.analytics.pipeline import run_analytics
from crypto_assets.analytics.schema import PRICE_ALERTS
from crypto_assets.analytics.spark_session import get_spark_session
from crypto_assets.local.deployment import LocalDeployment
from crypto_assets.settings import Settings

STEPS = ("read", "trades_raw", "trades_analytics", "price_alerts")
_TOTAL = re.compile(r"(\d+\.\d+) s \(")
_STEP = re.compile(r"(\w+) (\d+\.\d+)[,)]")


class BatchLines(logging.Handler):
    """Keeps the batches' log lines: ``batch 3: ... 0.85 s (read 0.03, trades_raw 0.15, ...)``."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("batch ") and " s (" in message:
            self.lines.append(message)


def step_times(lines: list[str]) -> dict[str, list[float]]:
    """Seconds per step (and `total`) of each batch line."""
    times: dict[str, list[float]] = {name: [] for name in ("total", *STEPS)}
    for line in lines:
        total = _TOTAL.search(line)
        if total is None:
            continue
        times["total"].append(float(total.group(1)))
        laps = dict(_STEP.findall(line.split(" s (", 1)[1]))
        for name in STEPS:
            times[name].append(float(laps.get(name, 0.0)))
    return times


class CpuClock:
    """CPU seconds of this process and of the JVM, the JVM's JIT compiler threads apart."""

    def __init__(self) -> None:
        me = psutil.Process()
        self.python = me
        self.jvm = next(c for c in me.children(recursive=True) if c.name() == "java")

    @staticmethod
    def _seconds(process: psutil.Process) -> float:
        times = process.cpu_times()
        return times.user + times.system

    def _jit_seconds(self) -> float:
        """Of the JVM's live threads named ``C1/C2 CompilerThread`` (Linux /proc): at least
        the JIT's time, as the JVM ends compiler threads it no longer needs."""
        tick = os.sysconf("SC_CLK_TCK")
        seconds = 0.0
        for task in Path(f"/proc/{self.jvm.pid}/task").iterdir():
            try:
                if "CompilerThre" not in (task / "comm").read_text():
                    continue
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            except FileNotFoundError:  # ended since listed
                continue
            seconds += (int(fields[11]) + int(fields[12])) / tick
        return seconds

    def read(self) -> tuple[float, float, float]:
        """(this process, the JVM, its JIT compilers) in CPU seconds so far."""
        return self._seconds(self.python), self._seconds(self.jvm), self._jit_seconds()


def p95(values: list[float]) -> float:
    """The 95th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


def duckdb_seconds(files: list[Path], window_ms: int) -> list[float]:
    """Seconds DuckDB takes per batch: the window metrics of the batch's file and the two before
    it (about the trades of the windows a batch of this recording touches)."""
    connection = duckdb.connect()
    template = DUCKDB_WINDOWS.replace("'{files}'", "{files}")
    seconds = []
    for index in range(len(files)):
        names = ", ".join(f"'{path}'" for path in files[max(0, index - 2) : index + 1])
        query = template.format(files=f"[{names}]", window_ms=window_ms)
        started = time.perf_counter()
        connection.sql(query).to_arrow_table()
        seconds.append(time.perf_counter() - started)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, default=1000, help="trades per batch [1000]")
    parser.add_argument("--batches", type=int, default=30, help="batches measured [30]")
    parser.add_argument("--warm-up", type=int, default=5, help="first batches left out [5]")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    handler = BatchLines()
    batch_logger = logging.getLogger("crypto_assets.analytics.batch")
    batch_logger.addHandler(handler)
    batch_logger.setLevel(logging.INFO)
    batch_logger.propagate = False  # kept for the figures, not printed

    data_dir = Path(tempfile.mkdtemp(prefix="batch_cost_"))
    try:
        landing = data_dir / "landing" / "trades"
        count = args.batches + args.warm_up
        write_landing(landing, args.trades * count, args.trades)
        files = sorted(landing.glob("trades_*.json"))
        settings = Settings(data_dir=data_dir, landing_retention_hours="none")
        window_ms = round(settings.window_seconds * 1000)
        reference = duckdb_seconds(files, window_ms)[args.warm_up :]

        spark = get_spark_session()
        clock = CpuClock()
        cpu: dict[int, tuple[float, float, float]] = {}

        def on_step(step: str, batch_id: int) -> None:
            if step == PRICE_ALERTS and batch_id in (args.warm_up - 1, count - 1):
                cpu[batch_id] = clock.read()

        target = LocalDeployment(settings).analytics_target(spark, max_files_per_trigger=1)
        run_analytics(spark, settings, target, mode="once", on_step=on_step)
        times = step_times(handler.lines[args.warm_up :])
        start, end = cpu[args.warm_up - 1], cpu[count - 1]
        python, jvm, jit = ((b - a) / args.batches for a, b in zip(start, end, strict=True))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)

    print(f"{len(times['total'])} batches of {args.trades} trades (after {args.warm_up} warm-up)")
    for name in ("total", *STEPS):
        values = times[name]
        print(f"  {name:17s} p50 {statistics.median(values):.3f} s, p95 {p95(values):.3f} s")
    print(
        f"  CPU a batch       {python + jvm:.3f} s: Python {python:.3f} s, "
        f"JVM {jvm:.3f} s (of which JIT compilers at least {jit:.3f} s)"
    )
    duck = statistics.median(reference)
    total = statistics.median(times["total"])
    print(f"  DuckDB windows over the same files: p50 {duck:.3f} s a batch")
    print(f"ratio DuckDB / pipeline per batch: {duck / total:.3f} (target: pipeline <= 0.3 s)")


if __name__ == "__main__":
    main()
