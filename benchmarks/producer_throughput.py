"""Producer throughput against a bare websocket-client receive loop, on the same replay server.

A replay server subprocess (``--speed max --loop``) serves the bundled recording. In this process
we measure, in turn: a bare receive loop that does nothing with the frames (the reference), the
full producer (parse, sequence, land NDJSON files) for ``--trades`` trades, and the reference
again. Prints trades/s, the ratio producer/reference (target ≥ 0.7) and RSS (VmRSS sampled every
0.1 s: baseline, peak, and its range over the second half of the run: target ≤ 150 MB, flat).
Rates are given per wall-clock second and per CPU second of this process: on a shared machine
the wall-clock figures move with other load, the CPU-time ratio much less.

    .venv/bin/python benchmarks/producer_throughput.py --trades 1000000
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from crypto_assets.binance.stream_client import combined_stream_url, connect
from crypto_assets.producer.producer import Producer, ProducerConfig, ProducerStats
from crypto_assets.recording import bundled_recording

PAIRS = ("btcusdt", "ethusdt")


def rss_mb() -> float:
    """Resident set size of this process in MB, from /proc/self/status."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class RssSampler:
    """Samples VmRSS every `interval` seconds in a background thread."""

    def __init__(self, interval: float = 0.1) -> None:
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.samples.append((time.monotonic(), rss_mb()))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def start_server() -> tuple[subprocess.Popen, str]:
    """A replay server subprocess at max speed, looping; returns it and its ws URL."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "crypto_assets.cli",
            "replay-server",
            "--recording",
            str(bundled_recording()),
            "--speed",
            "max",
            "--loop",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line = process.stdout.readline().strip()  # type: ignore[union-attr]
    if not line.startswith("listening on "):
        process.kill()
        raise SystemExit(f"replay server did not start: {line!r}")
    return process, line.removeprefix("listening on ")


def bare_receive(url: str, frames: int) -> tuple[float, float]:
    """(frames per wall second, per CPU second) of a loop that receives `frames` and drops them.

    It connects with the producer's own options (`connect`), so the ratio measures what the
    producer does with frames, not a difference in client settings.
    """
    ws = connect(combined_stream_url(url, PAIRS), timeout=30)
    recv_data = ws.recv_data
    try:
        recv_data()
        started, cpu_started = time.perf_counter(), time.process_time()
        for _ in range(frames):
            recv_data()
        cpu = time.process_time() - cpu_started
        return frames / (time.perf_counter() - started), frames / cpu
    finally:
        ws.close()


def produce(url: str, trades: int, landing: Path) -> tuple[float, float, int, int]:
    """The full producer until `trades` trades: (per wall second, per CPU second, trades, files)."""
    config = ProducerConfig(
        ws_url=url,
        rest_url=url.replace("ws://", "http://"),
        pairs=PAIRS,
        landing_dir=landing,
        batch_interval_seconds=5.0,
        max_trades_per_batch=10_000,
        progress_interval_seconds=0.05,
        fill_tail_on_stop=False,
    )
    marks: list[tuple[float, float, int]] = []

    def on_progress(stats: ProducerStats) -> None:
        # process_time() counts every thread of this process: reader and consumer.
        marks.append((time.perf_counter(), time.process_time(), stats.trades))
        if stats.trades >= trades:
            producer.stop()

    producer = Producer(config, on_progress=on_progress)
    summary = producer.run()
    # The rate between the first and last progress marks excludes connecting and the final flush.
    (t0, c0, n0), (t1, c1, n1) = marks[0], marks[-1]
    return (n1 - n0) / (t1 - t0), (n1 - n0) / (c1 - c0), summary.trades, summary.files


def main() -> None:
    """Run the benchmark and print one line per figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, default=1_000_000, help="trades to produce [1000000]")
    parser.add_argument(
        "--reference-frames", type=int, help="frames for each bare loop [min(trades, 300000)]"
    )
    args = parser.parse_args()
    reference_frames = args.reference_frames or min(args.trades, 300_000)
    server, url = start_server()
    landing_root = Path(tempfile.mkdtemp(prefix="producer_bench_"))
    try:
        # The first lap is served as recorded bytes; later laps are re-serialised (shifted ids
        # and times), which is slower. Skip past lap one so that every measurement sees the same.
        bare_receive(url, 40_000)
        before, before_cpu = bare_receive(url, reference_frames)
        baseline = rss_mb()
        with RssSampler() as sampler:
            rate, rate_cpu, produced, files = produce(url, args.trades, landing_root / "trades")
        after, after_cpu = bare_receive(url, reference_frames)
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(landing_root, ignore_errors=True)
    reference, reference_cpu = (before + after) / 2, (before_cpu + after_cpu) / 2
    rss = [mb for _, mb in sampler.samples]
    half = rss[len(rss) // 2 :] or rss
    print(
        f"bare websocket-client receive: {before:,.0f} / {after:,.0f} frames/s before/after "
        f"({before_cpu:,.0f} / {after_cpu:,.0f} per CPU second)"
    )
    print(
        f"producer: {produced:,} trades in {files} files, {rate:,.0f} trades/s "
        f"({rate_cpu:,.0f} per CPU second)"
    )
    print(
        f"ratio producer / bare receive: {rate / reference:.2f} wall clock, "
        f"{rate_cpu / reference_cpu:.2f} CPU time (target >= 0.7)"
    )
    print(
        f"RSS MB: baseline {baseline:.0f}, peak {max(rss):.0f}, second half "
        f"{min(half):.0f}..{max(half):.0f} (target <= 150, flat)"
    )


if __name__ == "__main__":
    main()
