"""Producer throughput against a bare websocket-client receive loop, on the same replay server.

A replay server subprocess (``--speed max --loop``) serves the bundled recording. In this process
we measure, in turn: a bare receive loop that does nothing with the frames (the reference), the
full producer (parse, sequence, land NDJSON files) for ``--trades`` trades, and the reference
again, all against the same server. Prints per-frame costs, the ratios producer/reference (target
≥ 0.7) and RSS (VmRSS sampled every 0.1 s: baseline, peak, and its range over the second half of
the run: target ≤ 150 MB, flat).

The headline is the CPU-time ratio: frames per CPU second of this process (every thread: reader,
consumer, writer), producer over reference. It measures what the producer adds to receiving, and
it does not move with the server or other load. The wall-clock ratio is the end-to-end figure,
but on a small machine the server (one Python process, one core at most) is sometimes the
bottleneck of the reference loop: then both loops wait for it and the wall-clock ratio says more
about the server than the producer. "server busy" (the server's CPU seconds per wall second in
each phase) shows when that happens: near 100 %, the wall-clock figure is server-bound. With
both client and server well under 100 % busy, other load on the machine set the wall-clock pace.

    .venv/bin/python benchmarks/producer_throughput.py --trades 1000000
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import websocket

from crypto_assets.binance.stream_client import combined_stream_url
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (every thread), from /proc."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Phase:
    """Frames handled in one measured phase, its wall and CPU seconds, and the server's CPU."""

    frames: int
    wall: float
    cpu: float
    server_cpu: float

    @property
    def rate(self) -> float:
        """Frames per wall-clock second."""
        return self.frames / self.wall

    @property
    def cpu_rate(self) -> float:
        """Frames per CPU second of this process."""
        return self.frames / self.cpu

    @property
    def server_busy(self) -> float:
        """The server's CPU seconds per wall second: near 1.0 it is the bottleneck."""
        return self.server_cpu / self.wall


class PhaseClock:
    """Wall, process CPU and server CPU readings, to turn two readings into a `Phase`."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid

    def read(self) -> tuple[float, float, float]:
        """(wall, this process's CPU, the server's CPU) now."""
        # process_time() counts every thread of this process: reader, consumer and writer.
        return time.perf_counter(), time.process_time(), cpu_seconds(self.server_pid)

    @staticmethod
    def phase(frames: int, start: tuple[float, float, float], end: tuple[float, ...]) -> Phase:
        """The phase between readings `start` and `end` in which `frames` were handled."""
        return Phase(frames, end[0] - start[0], end[1] - start[1], end[2] - start[2])


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


def bare_receive(url: str, frames: int, clock: PhaseClock) -> Phase:
    """A loop that receives `frames` frames and drops them: the reference.

    Plain websocket-client, as a user would write it, with the one option that makes it usable
    at this rate (no pure-Python UTF-8 check: ~70% of its receive time; the producer's JSON
    decoder checks UTF-8 anyway). The producer's own buffered connection is part of what is
    measured, not of the reference.
    """
    ws = websocket.create_connection(
        combined_stream_url(url, PAIRS), timeout=30, skip_utf8_validation=True
    )
    recv_data = ws.recv_data
    try:
        recv_data()
        start = clock.read()
        for _ in range(frames):
            recv_data()
        return clock.phase(frames, start, clock.read())
    finally:
        ws.close()


def produce(url: str, trades: int, landing: Path, clock: PhaseClock) -> tuple[Phase, int, int]:
    """The full producer until `trades` trades: (its phase, trades landed, files written)."""
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
    marks: list[tuple[tuple[float, float, float], int]] = []

    def on_progress(stats: ProducerStats) -> None:
        marks.append((clock.read(), stats.trades))
        if stats.trades >= trades:
            producer.stop()

    producer = Producer(config, on_progress=on_progress)
    summary = producer.run()
    # The phase between the first and last progress marks excludes connecting and the final flush.
    (start, first), (end, last) = marks[0], marks[-1]
    return clock.phase(last - first, start, end), summary.trades, summary.files


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
    clock = PhaseClock(server.pid)
    landing_root = Path(tempfile.mkdtemp(prefix="producer_bench_"))
    try:
        # The first lap is served as recorded bytes; later laps are re-serialised (shifted ids
        # and times), which is slower. Skip past lap one so that every measurement sees the same.
        bare_receive(url, 40_000, clock)
        before = bare_receive(url, reference_frames, clock)
        baseline = rss_mb()
        with RssSampler() as sampler:
            producer, produced, files = produce(url, args.trades, landing_root / "trades", clock)
        after = bare_receive(url, reference_frames, clock)
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(landing_root, ignore_errors=True)
    references = (before, after)
    reference_rate = sum(p.rate for p in references) / 2
    reference_cpu_rate = sum(p.cpu_rate for p in references) / 2
    rss = [mb for _, mb in sampler.samples]
    half = rss[len(rss) // 2 :] or rss
    print(describe("bare receive, before", before))
    print(describe("producer", producer))
    print(describe("bare receive, after", after))
    print(f"producer: {produced:,} trades landed in {files} files")
    print(
        f"ratio producer / bare receive: {producer.cpu_rate / reference_cpu_rate:.2f} CPU time "
        f"(headline), {producer.rate / reference_rate:.2f} wall clock (target >= 0.7)"
    )
    receive_us, producer_us = 1e6 / reference_cpu_rate, 1e6 / producer.cpu_rate
    print(
        f"CPU per frame: bare receive {receive_us:.2f} us, producer {producer_us:.2f} us "
        f"(it adds {producer_us - receive_us:.2f} us)"
    )
    print(
        f"RSS MB: baseline {baseline:.0f}, peak {max(rss):.0f}, second half "
        f"{min(half):.0f}..{max(half):.0f} (target <= 150, flat)"
    )


def describe(name: str, phase: Phase) -> str:
    """One line: rates per wall and CPU second, and how busy the server was."""
    return (
        f"{name}: {phase.frames:,} frames, {phase.rate:,.0f}/s wall clock, "
        f"{phase.cpu_rate:,.0f}/s CPU ({1e6 / phase.cpu_rate:.2f} us CPU/frame), "
        f"busy: client {phase.cpu / phase.wall:.0%}, server {phase.server_busy:.0%}"
    )


if __name__ == "__main__":
    main()
