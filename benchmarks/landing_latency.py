"""Files-landed -> trades_raw latency of the UI demo, per analytics mode, on a real Dagster.

Starts `dagster-webserver` and `dagster-daemon` on loopback with a temporary DAGSTER_HOME (the
dagster.yaml `make ui` writes) and CRYPTO_DATA_DIR, a replay server at real-time speed, and launches
`binance_producer_job` through GraphQL. Two modes, each on a fresh instance:

- `follow`: the demo's default, nothing launched but the producer. `landing_files_sensor` (every
  5 s) sees the producer run and starts one continuous `streaming_analytics_job` run that follows
  it (`follow_producer`, the trigger ANALYTICS_TRIGGER_SECONDS, 1 s); that run ends by itself once
  the producer run has ended and the landing folder is drained, which the benchmark waits for.
- `continuous`: the sensor is off and one `streaming_analytics_job` run is launched with
  `mode: continuous` (the Launchpad's trigger, the same default) before the producer starts; it is
  terminated at the end.

A file's landing time is its mtime (the producer writes, fsyncs, then renames it into place). Its
trades are visible when the trades_raw commit that first holds rows with its `source_file` is
written (the commit's timestamp in the Delta log). Prints p50, p95 and max per mode, and the
analytics runs: how many, the files each processed, how each ended.

Usage: .venv/bin/python benchmarks/landing_latency.py [--mode follow|continuous|both]
       [--produce-seconds S] [--keep DIR]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from deltalake import DeltaTable

# Run as a script, its own folder is on sys.path, not the repository's root with the test helpers.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crypto_assets.recording import bundled_recording
from crypto_assets.replay.server import ReplayOptions, ReplayServer
from crypto_assets_tests.dagster_services import FINISHED, DagsterServices

logger = logging.getLogger("landing_latency")

STARTUP_SECONDS = 180
# After the producer stops, how long the last files may take to reach the table.
DRAIN_SECONDS = 180
POLL_SECONDS = 0.25


class LatencyWatcher:
    """Polls the landing folder and trades_raw's commits; per file, landed and visible times."""

    def __init__(self, data_dir: Path) -> None:
        self.landing_dir = data_dir / "landing" / "trades"
        self.table_dir = data_dir / "delta" / "trades_raw"
        self.landed: dict[str, float] = {}  # file name -> mtime (epoch s)
        self.visible: dict[str, float] = {}  # file name -> commit timestamp (epoch s)
        self._version = -1
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="latency-watcher", daemon=True)

    def start(self) -> None:
        """Start polling in a thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop polling (after one last look)."""
        self._stop.set()
        self._thread.join(timeout=30)
        self.poll()

    def pending(self) -> int:
        """Landed files whose trades are not in trades_raw yet."""
        return len(set(self.landed) - set(self.visible))

    def _run(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            self.poll()

    def poll(self) -> None:
        """Record new landing files and the files each new trades_raw commit made visible."""
        if self.landing_dir.is_dir():
            for path in self.landing_dir.glob("trades_*.json"):
                if path.name not in self.landed:
                    self.landed[path.name] = path.stat().st_mtime
        if not (self.table_dir / "_delta_log").is_dir():
            return
        table = DeltaTable(str(self.table_dir))
        latest = table.version()
        if latest == self._version:
            return
        history = table.history(latest - self._version)
        stamps = {commit["version"]: commit["timestamp"] / 1000 for commit in history}
        for version in range(self._version + 1, latest + 1):
            files = DeltaTable(str(self.table_dir), version=version).to_pyarrow_table(
                columns=["source_file"]
            )
            for source in set(files.column("source_file").to_pylist()):
                name = Path(source).name
                self.visible.setdefault(name, stamps[version])
        self._version = latest

    def latencies(self, landed_after: float = 0.0) -> list[float]:
        """Seconds from landing to visibility, for files landed after `landed_after`."""
        return sorted(
            self.visible[name] - landed
            for name, landed in self.landed.items()
            if name in self.visible and landed >= landed_after
        )


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of sorted `values`, by linear interpolation."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def summarize(label: str, values: list[float]) -> str:
    """One line: count, p50, p95 and max in seconds."""
    if not values:
        return f"{label}: no file reached trades_raw"
    return (
        f"{label}: {len(values)} files, p50 {percentile(values, 0.5):.1f} s, "
        f"p95 {percentile(values, 0.95):.1f} s, max {values[-1]:.1f} s"
    )


def analytics_runs_lines(mode: str, dagster: DagsterServices) -> list[str]:
    """One line per analytics run: how it was started, how it ended, the files it processed."""
    reports = dagster.asset_reports("trades_raw")
    lines = []
    for run in reversed(dagster.runs("streaming_analytics_job")):
        files = max(
            (r.get("files_processed", 0) for r in reports if r["run_id"] == run["runId"]),
            default=0,
        )
        tags = dagster.run_tags(run["runId"])
        started_by = tags.get("crypto_assets/trigger", "a launch")
        seconds = (run["endTime"] or time.time()) - (run["startTime"] or time.time())
        lines.append(
            f"{mode}: analytics run {run['runId'][:8]} ({started_by}): {run['status']}, "
            f"{seconds:.0f} s, {files} files processed"
        )
    return lines


def run_mode(mode: str, root: Path, produce_seconds: float) -> list[str]:
    """Measure one mode on a fresh instance; the report lines."""
    dagster = DagsterServices(root, startup_seconds=STARTUP_SECONDS)
    replay = ReplayServer(
        ReplayOptions(recordings=(bundled_recording(),), speed=1.0, rebase_time=True)
    )
    watcher = LatencyWatcher(dagster.data_dir)
    lines = []
    analytics_run = None
    try:
        dagster.start()
        replay.start()
        watcher.start()
        if mode == "continuous":
            dagster.stop_sensor("landing_files_sensor")
            config = {"mode": "continuous"}
            analytics_run = dagster.launch(
                "streaming_analytics_job", {"ops": {"streaming_analytics": {"config": config}}}
            )
            started = dagster.wait_for(analytics_run, {"STARTED"} | FINISHED, 120)
            logger.info("continuous analytics run %s is %s", analytics_run, started)
        producer_config = {
            "ws_url": replay.url,
            "source": "replay",
            "duration_seconds": produce_seconds,
            "batch_interval_seconds": 5.0,
        }
        producer_run = dagster.launch(
            "binance_producer_job", {"ops": {"produce_trades": {"config": producer_config}}}
        )
        launched = time.time()
        status = dagster.wait_for(producer_run, FINISHED, produce_seconds + 180)
        logger.info("producer run %s: %s", producer_run, status)
        deadline = time.monotonic() + DRAIN_SECONDS
        while watcher.pending() and time.monotonic() < deadline:
            time.sleep(1)
        if mode == "follow":
            # The run that followed the producer ends by itself: wait for it.
            for run in dagster.runs("streaming_analytics_job"):
                ended = dagster.wait_for(run["runId"], FINISHED, DRAIN_SECONDS)
                logger.info("analytics run %s: %s", run["runId"], ended)
            (producer,) = dagster.runs("binance_producer_job")
            ends = [r["endTime"] for r in dagster.runs("streaming_analytics_job") if r["endTime"]]
            if ends and producer["endTime"]:
                after = max(ends) - producer["endTime"]
                lines.append(f"{mode}: the analytics ended {after:.1f} s after the producer run")
        watcher.stop()
        all_files = watcher.latencies()
        lines.append(summarize(f"{mode}: all files", all_files))
        lines.append(f"{mode}: {watcher.pending()} landed file(s) never reached trades_raw")
        # The first minute includes the first JVM start; the rest is what a user sees after.
        lines.append(summarize(f"{mode}: files landed after the first minute",
                               watcher.latencies(landed_after=launched + 60)))  # fmt: skip
        lines += analytics_runs_lines(mode, dagster)
    finally:
        if analytics_run is not None:
            dagster.terminate(analytics_run)
            dagster.wait_for(analytics_run, FINISHED, 120)
        replay.stop()
        dagster.stop()
    return lines


def main() -> None:
    """Run the chosen modes and print one summary line per measure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("follow", "continuous", "both"), default="follow")
    parser.add_argument("--produce-seconds", type=float, default=150.0)
    parser.add_argument("--keep", type=Path, help="keep instances, data and logs under DIR")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    modes = ("follow", "continuous") if args.mode == "both" else (args.mode,)
    base = args.keep or Path(tempfile.mkdtemp(prefix="landing_latency_"))
    report = [f"machine: {os.cpu_count()} cores; producer {args.produce_seconds:.0f} s at 1x"]
    try:
        for mode in modes:
            report += run_mode(mode, base / mode, args.produce_seconds)
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    print("\n".join(report))


if __name__ == "__main__":
    main()
