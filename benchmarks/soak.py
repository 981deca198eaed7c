"""Soak: the whole local pipeline under a real Dagster for a given time, with faults; a verdict.

Runs `PipelineHarness` (crypto_assets_tests/faults/harness.py): a replay of the bundled recording
at --speed (default 10x, times on the wall clock, looping) in this process, a Dagster webserver and
daemon on loopback, `binance_producer_sensor` and `continuous_analytics_sensor` on. Every
--fault-every-minutes one fault is injected, round-robin over FAULTS. Every --sample-seconds it
samples the resident memory of every process (webserver, daemon, code servers, the producer and
analytics run workers, the analytics JVM, this process with the replay server), the bytes and files
of landing, each Delta table, the checkpoints and DAGSTER_HOME, and the lag: trade -> trades_raw
measured here from the table itself (processed_time - trade_time of every new row, per batch) and
the pipeline's own per-batch figures (trade -> raw, -> window, -> alert) read back from the
price_alerts commits. With --notify (the default) the alerts go, through ALERT_WEBHOOK_URL, to a
real HTTP receiver on loopback, which the `receiver_down` fault closes for a minute. At the end:
the producer is stopped, the analytics drains, and every trade the market published is looked for
exactly once in trades_raw, the windows and alerts against the plain-Python reference, and every
alert of price_alerts among what the receiver accepted (how many times, and detected -> delivered).
Prints a short summary, writes a PNG (--plot) and a JSON (--json).

Only loopback traffic; every process it started is ended, also on Ctrl-C.

Usage: .venv/bin/python benchmarks/soak.py [--minutes 120] [--fault-every-minutes 5] [--speed 10]
       [--trigger-seconds 1] [--batch-interval-seconds 1] [--no-notify] [--plot benchmarks/soak.png]
       [--json benchmarks/soak.json] [--keep DIR]
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import logging
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import DeltaTable

# Run as a script, its own folder is on sys.path, not the repository's root with the test helpers.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crypto_assets.analytics.lag import BatchLag, merge_batch_lags, read_recent_batch_lags
from crypto_assets.notifications.message import Notification
from crypto_assets_tests.faults.harness import (
    ANALYTICS_JOB,
    PRODUCER_JOB,
    HarnessOptions,
    PipelineHarness,
    Verdict,
)
from crypto_assets_tests.notifications.receiver import Receiver

logger = logging.getLogger("soak")

TABLES = ("trades_raw", "trades_analytics", "price_alerts", "trades_quarantine")
LAG_KINDS = ("raw", "window", "alert")


def _fault_drop(h: PipelineHarness) -> str:
    return f"websocket dropped ({h.replay.drop_connections()} connections)"


def _fault_shutdown(h: PipelineHarness) -> str:
    return f"serverShutdown ({h.replay.send_server_shutdown()} connections)"


def _fault_malformed(h: PipelineHarness) -> str:
    h.replay.corrupt_next(20)
    return "20 malformed trades"


def _fault_fillable_gap(h: PipelineHarness) -> str:
    h.replay.withhold_next(200)
    return "200 trades withheld from the streams (REST has them)"


def _fault_unfillable_gap(h: PipelineHarness) -> str:
    h.replay.withhold_next(10, from_rest=True)
    return "10 trades withheld from streams and REST"


def _fault_kill_producer(h: PipelineHarness) -> str:
    return f"producer SIGKILLed (pids {h.kill_producer()})"


def _fault_kill_analytics(h: PipelineHarness) -> str:
    return f"analytics SIGKILLed (pids {h.kill_analytics()})"


def _fault_restart_daemon(h: PipelineHarness) -> str:
    h.restart_daemon()
    return "daemon restarted"


def _fault_truncate(h: PipelineHarness) -> str:
    return f"landing file truncated: {h.damage_next_landing_file('truncate').name}"


FAULTS: tuple[tuple[str, Callable[[PipelineHarness], str] | None], ...] = (
    ("drop", _fault_drop),
    ("kill_producer", _fault_kill_producer),
    ("malformed", _fault_malformed),
    ("kill_analytics", _fault_kill_analytics),
    ("fillable_gap", _fault_fillable_gap),
    ("restart_daemon", _fault_restart_daemon),
    ("shutdown", _fault_shutdown),
    ("unfillable_gap", _fault_unfillable_gap),
    ("truncate_landing", _fault_truncate),
    # Not a harness fault: the soak's receiver closes for RECEIVER_DOWN_SECONDS (`Soak`).
    ("receiver_down", None),
)
RECEIVER_DOWN_SECONDS = 60.0
# Steady state leaves out the first minutes after the pipeline is up, and the recovery after each
# fault (a killed analytics run restarts its JVM: about a minute).
WARM_UP_S = 300.0
STEADY_AFTER_FAULT_S = 120.0
# price_alerts commits read at each sample (every 10 s: about 20 commits at 1 s batches).
LAG_READ_DEPTH = 300


def lag_figures(lags: list) -> dict[str, dict]:
    """Per kind: count, p50, p95 and max (s) over every batch's histogram (not a mean of p95s)."""
    return {
        kind: {"count": stats.count, "p50": stats.p50_s, "p95": stats.p95_s, "max": stats.max_s}
        for kind, stats in merge_batch_lags(lags).items()
    }


@dataclass
class Sample:
    """One look at the running pipeline."""

    t: float  # seconds since the soak started
    rss: dict[str, int]  # bytes per process role
    disk: dict[str, tuple[int, int]]  # (bytes, files) per folder
    raw_lag: dict[str, float] | None  # this sample's new trades_raw rows: p50/p95/max seconds
    raw_rows: int


@dataclass
class Soak:
    """The samples, faults and lag measurements of one soak."""

    harness: PipelineHarness
    receiver: Receiver | None = None  # the webhook's, with --notify
    started: float = field(default_factory=time.time)
    samples: list[Sample] = field(default_factory=list)
    faults: list[tuple[float, str, str]] = field(default_factory=list)
    raw_lags_s: list[float] = field(default_factory=list)  # every trade's, measured here
    batch_lags: list[dict] = field(default_factory=list)  # per batch: the pipeline's own
    run_lags: dict[str, dict] = field(default_factory=dict)  # the whole run, from histograms
    steady_lags: dict[str, dict] = field(default_factory=dict)  # the same, in steady state
    up_at: float | None = None  # seconds: the first trades are in trades_raw
    drain_started: float | None = None  # seconds: the producer stops, the analytics drains
    _seen_files: set[str] = field(default_factory=set)
    _last_processed_us: int = 0
    # Every batch's lags seen so far, by (app id, batch id): read as the batches commit, since the
    # tables keep a quarter hour of Delta log only.
    _seen_lags: dict[tuple[str, int], BatchLag] = field(default_factory=dict)

    def receiver_down(self) -> str:
        """Close the webhook receiver (connections refused) for `RECEIVER_DOWN_SECONDS`."""
        receiver = self.receiver
        if receiver is None:
            return "no receiver (--no-notify)"
        receiver.stop()
        threading.Timer(RECEIVER_DOWN_SECONDS, receiver.start).start()
        return f"webhook receiver down for {RECEIVER_DOWN_SECONDS:.0f} s"

    def inject(self, name: str) -> str:
        """Inject the fault `name`; what was done."""
        fault = dict(FAULTS)[name]
        return self.receiver_down() if fault is None else fault(self.harness)

    def sample_until(self, stop: threading.Event, every_seconds: float) -> None:
        """Sample every `every_seconds` until `stop` is set (in a thread of its own)."""
        while not stop.is_set():
            try:
                sample = self.sample()
                self.collect_batch_lags()
            except Exception:  # a service restarting mid-sample: the next one will do
                logger.exception("a sample failed")
            else:
                logger.info(
                    "%.1f min: %s rows, lag p95 %s s, rss %s MiB",
                    sample.t / 60,
                    sample.raw_rows,
                    None if sample.raw_lag is None else round(sample.raw_lag["p95"], 1),
                    round(sum(sample.rss.values()) / 2**20),
                )
            stop.wait(every_seconds)

    def sample(self) -> Sample:
        """Memory, disk and lag now."""
        h = self.harness
        data = h.data_dir
        disk = {
            "landing": folder_size(data / "landing"),
            "checkpoints": folder_size(data / "checkpoints"),
            "dagster_home": folder_size(h.root / "dagster_home"),
        }
        for table in TABLES:
            disk[f"delta/{table}"] = folder_size(data / "delta" / table)
        new_lags = self.new_raw_lags()
        self.raw_lags_s += new_lags
        sample = Sample(
            t=time.time() - self.started,
            rss=self.rss_by_role(),
            disk=disk,
            raw_lag=percentiles(new_lags) if new_lags else None,
            raw_rows=h.raw_count(),
        )
        self.samples.append(sample)
        return sample

    def rss_by_role(self) -> dict[str, int]:
        """Resident bytes of every process of the pipeline, summed per role."""
        h = self.harness
        roles: dict[str, int] = {"harness+replay": psutil.Process().memory_info().rss}
        runs = {}
        for job, role in ((PRODUCER_JOB, "producer run"), (ANALYTICS_JOB, "analytics run")):
            run = h.active_run(job)
            if run is not None:
                for pid in h.run_pids(run["runId"]):
                    runs[pid] = role
        groups = {p.pid for p in h.services.processes.values()}
        groups |= set(h.services.orphan_groups)
        for process in psutil.process_iter(["pid", "cmdline", "memory_info"]):
            try:
                if os.getpgid(process.pid) not in groups:
                    continue
            except ProcessLookupError:
                continue
            role = runs.get(process.pid) or _role(process.info["cmdline"] or [])
            if role is None:
                continue
            if role == "analytics run" and "java" in " ".join(process.info["cmdline"] or [])[:80]:
                role = "analytics JVM"
            memory = process.info["memory_info"]
            roles[role] = roles.get(role, 0) + (memory.rss if memory else 0)
        return roles

    def new_raw_lags(self) -> list[float]:
        """processed_time - trade_time (s) of the trades_raw rows processed since the last look."""
        path = self.harness.data_dir / "delta" / "trades_raw"
        if not (path / "_delta_log").is_dir():
            return []
        table = DeltaTable(str(path))
        files = [f for f in table.file_uris() if f not in self._seen_files]
        lags: list[float] = []
        newest = self._last_processed_us
        for uri in files:
            self._seen_files.add(uri)
            try:
                rows = pq.read_table(
                    uri.removeprefix("file://"), columns=["trade_time", "processed_time"]
                )
            except OSError:  # compacted and vacuumed meanwhile
                continue
            processed = pc.cast(rows["processed_time"], "int64")  # µs since the epoch
            fresh = pc.greater(processed, self._last_processed_us)
            rows = rows.filter(fresh)
            if not rows.num_rows:
                continue
            processed = pc.cast(rows["processed_time"], "int64")
            traded = pc.cast(rows["trade_time"], "int64")
            lags += pc.subtract(pc.divide(processed, 1e6), pc.divide(traded, 1e3)).to_pylist()
            newest = max(newest, pc.max(processed).as_py())
        self._last_processed_us = newest
        return lags

    def collect_batch_lags(self) -> None:
        """Keep the lags of the batches committed since the last call (price_alerts' newest
        commits, far more than a sampling interval makes)."""
        path = self.harness.data_dir / "delta" / "price_alerts"
        for lag in read_recent_batch_lags(path, limit=100_000, depth=LAG_READ_DEPTH):
            self._seen_lags[(lag.app_id, lag.batch_id)] = lag

    def read_batch_lags(self) -> None:
        """The pipeline's own per-batch lag figures, from the price_alerts commits."""
        self.collect_batch_lags()
        lags = sorted(self._seen_lags.values(), key=lambda lag: -lag.finished_ms)
        # The whole run's percentiles, from every batch's histogram (not a mean of batch p95s).
        self.run_lags = lag_figures(lags)
        # Steady state: the batches that finished after the warm-up and outside the recovery
        # from every fault (the fault's time and the STEADY_AFTER_FAULT_S after it).
        faults = [self.started + t for t, _, _ in self.faults]
        steady_from = self.started + (self.up_at or 0.0) + WARM_UP_S
        self.steady_lags = lag_figures(
            [
                lag
                for lag in lags
                if lag.finished_ms / 1000 >= steady_from
                and not any(0 <= lag.finished_ms / 1000 - f <= STEADY_AFTER_FAULT_S for f in faults)
            ]
        )
        self.batch_lags = [
            {
                "app_id": lag.app_id,
                "batch_id": lag.batch_id,
                "t": lag.finished_ms / 1000 - self.started,
                **{
                    f"{kind}_{stat}": getattr(getattr(lag, kind), stat)
                    for kind in LAG_KINDS
                    for stat in ("count", "p50_s", "p95_s", "max_s")
                },
            }
            for lag in reversed(lags)
        ]


def _role(cmdline: list[str]) -> str | None:
    text = " ".join(cmdline)
    if "dagster-webserver" in text:
        return "webserver"
    if "dagster-daemon" in text:
        return "daemon"
    if "api grpc" in text:
        return "code servers"
    if "spawn_main" in text or "resource_tracker" in text:
        return "other dagster children"
    if text:
        return "other"
    return None


def folder_size(path: Path) -> tuple[int, int]:
    """(bytes, files) under `path` (0, 0 when missing)."""
    total = files = 0
    for root, _, names in os.walk(path):
        for name in names:
            try:
                total += (Path(root) / name).stat().st_size
                files += 1
            except FileNotFoundError:  # removed while walking (a vacuum, a rename)
                continue
    return total, files


def percentiles(values: list[float]) -> dict[str, float]:
    """p50, p95 and max of `values` (seconds)."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return {"p50": ordered[0], "p95": ordered[0], "max": ordered[0]}
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"p50": cuts[49], "p95": cuts[94], "max": ordered[-1]}


def pipeline_lag_summary(batch_lags: list[dict]) -> dict[str, dict[str, float | None]]:
    """Per kind: the median and worst of the batches' p95, and the worst max, in seconds."""
    out: dict[str, dict[str, float | None]] = {}
    for kind in LAG_KINDS:
        p50s = [b[f"{kind}_p50_s"] for b in batch_lags if b[f"{kind}_p50_s"] is not None]
        p95s = [b[f"{kind}_p95_s"] for b in batch_lags if b[f"{kind}_p95_s"] is not None]
        maxes = [b[f"{kind}_max_s"] for b in batch_lags if b[f"{kind}_max_s"] is not None]
        out[kind] = {
            "batches": len(p95s),
            "median_batch_p50": statistics.median(p50s) if p50s else None,
            "median_batch_p95": statistics.median(p95s) if p95s else None,
            "p95_of_batch_p95": percentiles(p95s)["p95"] if p95s else None,
            "max": max(maxes) if maxes else None,
        }
    return out


def plot(soak: Soak, path: Path) -> None:
    """Lag, memory and disk over the soak, faults marked, into a PNG."""
    import matplotlib  # noqa: PLC0415 (only the end of a soak needs it)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    figure, (lag_ax, rss_ax, disk_ax) = plt.subplots(3, 1, figsize=(12, 12), sharex=True)
    minutes = [s.t / 60 for s in soak.samples]
    lagged = [s for s in soak.samples if s.raw_lag]
    lag_ax.plot([s.t / 60 for s in lagged], [s.raw_lag["p95"] for s in lagged], ".-",
                label="trade→raw p95 (measured here, per sample)")  # fmt: skip
    for kind in LAG_KINDS:
        points = [(b["t"] / 60, b[f"{kind}_p95_s"]) for b in soak.batch_lags
                  if b[f"{kind}_p95_s"] is not None]  # fmt: skip
        if points:
            lag_ax.plot(*zip(*points, strict=True), ".", markersize=3,
                        label=f"trade→{kind} p95 (pipeline, per batch)")  # fmt: skip
    lag_ax.set_ylabel("lag (s)")
    lag_ax.set_yscale("symlog", linthresh=10)
    roles = sorted({role for s in soak.samples for role in s.rss})
    for role in roles:
        rss_ax.plot(minutes, [s.rss.get(role, 0) / 2**20 for s in soak.samples], label=role)
    rss_ax.set_ylabel("resident memory (MiB)")
    for name in soak.samples[0].disk if soak.samples else ():
        disk_ax.plot(minutes, [s.disk[name][0] / 2**20 for s in soak.samples], label=name)
    disk_ax.set_ylabel("bytes on disk (MiB)")
    disk_ax.set_xlabel("minutes")
    for ax in (lag_ax, rss_ax, disk_ax):
        for when, _, _ in soak.faults:
            ax.axvline(when / 60, color="grey", alpha=0.4, linewidth=0.8)
        if soak.drain_started is not None:
            ax.axvspan(soak.drain_started / 60, minutes[-1], color="grey", alpha=0.1)
        ax.legend(fontsize=7, loc="upper left")
        ax.grid(alpha=0.3)
    faults = ", ".join(dict.fromkeys(name for _, name, _ in soak.faults)) or "none"
    lag_ax.set_title(
        f"soak: faults (grey lines) {faults}; shaded: producer stopped, analytics draining",
        fontsize=9,
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)


def run_soak(args: argparse.Namespace, root: Path) -> dict:
    """Run the soak under `root`; all figures as a JSON-ready dict."""
    receiver = Receiver().start() if args.notify else None
    options = HarnessOptions(
        speed=args.speed,
        trigger_seconds=args.trigger_seconds,
        batch_interval_seconds=args.batch_interval_seconds,
        max_connection_age=args.max_connection_age,
        price_change_threshold_pct=args.price_change_threshold_pct,
        landing_retention_hours=args.landing_retention_hours,
        alert_webhook_url=receiver.url if receiver is not None else None,
    )
    harness = PipelineHarness(root, options)
    soak = Soak(harness, receiver)
    sampling = threading.Event()
    sampler = threading.Thread(
        target=soak.sample_until, args=(sampling, args.sample_seconds), name="soak-sampler"
    )
    chosen = args.faults.split(",") if args.faults else [name for name, _ in FAULTS]
    fault_index = 0
    deliveries: dict | None = None
    try:
        harness.start()
        soak.started = time.time()
        deadline = soak.started + args.minutes * 60
        next_fault = soak.started + args.fault_every_minutes * 60
        harness.start_pipeline()
        sampler.start()
        harness.wait_for_raw_trades(1, timeout=300)
        soak.up_at = time.time() - soak.started
        logger.info("pipeline up after %.0f s", soak.up_at)
        while time.time() < deadline:
            if args.fault_every_minutes > 0 and time.time() >= next_fault:
                name = chosen[fault_index % len(chosen)]
                fault_index += 1
                try:
                    what = soak.inject(name)
                except (RuntimeError, TimeoutError) as exc:  # e.g. the run is restarting
                    what = f"not injected: {exc}"
                soak.faults.append((time.time() - soak.started, name, what))
                logger.info("fault %s: %s", name, what)
                next_fault = time.time() + args.fault_every_minutes * 60
            time.sleep(max(0.0, min(1.0, deadline - time.time())))
        soak.drain_started = time.time() - soak.started
        # A last restart may still be on its way: give the analytics a run to drain into.
        harness.wait_for_run_started(ANALYTICS_JOB, timeout=300)
        verdict = harness.finish(timeout=600)
        if receiver is not None:
            deliveries = delivery_verdict(harness, receiver, timeout=3 * RECEIVER_DOWN_SECONDS)
    finally:
        sampling.set()
        if sampler.is_alive():
            sampler.join(timeout=120)
        try:
            soak.sample()
            soak.read_batch_lags()
        finally:
            harness.stop()
            if receiver is not None:
                receiver.stop()
    return figures(soak, verdict, deliveries, args)


def delivery_verdict(harness: PipelineHarness, receiver: Receiver, timeout: float) -> dict:
    """Every alert of price_alerts against the market alerts the receiver accepted.

    Waits up to `timeout` for the last ones (a receiver that was down is retried with backoff).
    `lost`: alerts in the table never accepted; `repeated`: accepted more than once (a send a
    kill interrupted before its outcome was recorded); `retracted`: accepted, then no longer in
    the table (an alert of an open window that later trades undid).
    """
    rows = DeltaTable(str(harness.data_dir / "delta" / "price_alerts")).to_pyarrow_table()
    wanted = {n.key for n in Notification.market_alerts(rows)}
    deadline = time.monotonic() + timeout
    while True:
        market = [
            item
            for item in receiver.accepted()
            if isinstance(item.body, dict) and item.body.get("kind") == "market"
        ]
        counts = collections.Counter(str(item.body["key"]) for item in market)  # type: ignore
        lost = wanted - set(counts)
        if not lost or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    first_at: dict[str, float] = {}
    lags = []
    for item in market:
        body = item.body
        assert isinstance(body, dict)
        key = str(body["key"])
        if key in first_at:
            continue
        first_at[key] = item.at
        detected = body.get("detected_time")
        if detected:
            moment = dt.datetime.fromisoformat(str(detected).replace("Z", "+00:00"))
            lags.append(item.at - moment.timestamp())
    return {
        "ok": not lost,
        "alerts": len(wanted),
        "accepted_posts": len(market),
        "lost": sorted(lost)[:50],
        "lost_count": len(lost),
        "repeated": sum(count - 1 for count in counts.values()),
        "retracted": len(set(counts) - wanted),
        "error_answers": sum(1 for item in receiver.received if not item.accepted),
        "operational_posts": sum(
            1
            for item in receiver.accepted()
            if isinstance(item.body, dict) and item.body.get("kind") != "market"
        ),
        "detected_to_delivered_s": percentiles(lags) if lags else None,
    }


def figures(
    soak: Soak, verdict: Verdict, deliveries: dict | None, args: argparse.Namespace
) -> dict:
    """Everything the soak measured."""
    # The start is the first sample with the pipeline up (both runs started, trades landing).
    up = [s for s in soak.samples if soak.up_at is not None and s.t >= soak.up_at]
    first, last = (up or soak.samples)[0], soak.samples[-1]
    # Memory at the end of the soak proper: after it the producer is stopped on purpose.
    running = [s for s in soak.samples if soak.drain_started is None or s.t < soak.drain_started]
    end_rss = (running or soak.samples)[-1].rss
    return {
        "machine": {"cores": os.cpu_count()},
        "settings": {
            "minutes": args.minutes,
            "speed": args.speed,
            "trigger_seconds": args.trigger_seconds,
            "batch_interval_seconds": soak.harness.options.batch_interval_seconds,
            "fault_every_minutes": args.fault_every_minutes,
            "faults": args.faults or "all",
            "max_connection_age": args.max_connection_age,
            "price_change_threshold_pct": args.price_change_threshold_pct,
            "notify": args.notify,
        },
        "verdict": {
            "ok": verdict.ok,
            "expected": verdict.expected,
            "raw_rows": verdict.raw_rows,
            "lost": len(verdict.missing),
            "duplicated": len(verdict.duplicated),
            "unexpected": len(verdict.unexpected),
            "wrong_values": len(verdict.wrong_values),
            "unfillable": len(verdict.unfillable),
            "unfillable_unreported": len(verdict.unreported),
            "damaged_by_hand": len(verdict.damaged),
            "windows": verdict.windows,
            "window_mismatches": verdict.window_mismatches[:50],
            "alerts": verdict.alerts,
            "alert_mismatches": verdict.alert_mismatches[:50],
            "summary": verdict.summary(),
        },
        "deliveries": deliveries,
        "lag_trade_to_raw_measured_here_s": percentiles(soak.raw_lags_s)
        if soak.raw_lags_s
        else None,
        "lag_pipeline_per_batch_s": pipeline_lag_summary(soak.batch_lags),
        "lag_pipeline_run_s": soak.run_lags,
        "lag_pipeline_steady_s": soak.steady_lags,
        "rss_bytes": {"start": first.rss, "end": end_rss},
        "up_at_s": soak.up_at,
        "drain_started_s": soak.drain_started,
        "disk": {
            "start": {k: {"bytes": b, "files": f} for k, (b, f) in first.disk.items()},
            "end": {k: {"bytes": b, "files": f} for k, (b, f) in last.disk.items()},
        },
        "faults": [{"t_s": round(t, 1), "fault": n, "what": w} for t, n, w in soak.faults],
        "samples": [
            {
                "t_s": round(s.t, 1),
                "rss": s.rss,
                "disk": s.disk,
                "raw_lag": s.raw_lag,
                "raw_rows": s.raw_rows,
            }
            for s in soak.samples
        ],
        "batch_lags": soak.batch_lags,
        "_soak": soak,
    }


def summary_lines(result: dict) -> list[str]:
    """The short printed summary."""
    v, s = result["verdict"], result["settings"]
    mib = 2**20
    lines = [
        f"soak {s['minutes']} min at {s['speed']}x, trigger {s['trigger_seconds']} s, batch "
        f"{s['batch_interval_seconds']} s, a fault every {s['fault_every_minutes']} min "
        f"({len(result['faults'])} injected), {result['machine']['cores']} cores",
        f"verdict: {'OK' if v['ok'] else 'FAILED'}: {v['expected']} trades expected, lost "
        f"{v['lost']}, duplicated {v['duplicated']}, unexpected {v['unexpected']}; unfillable "
        f"{v['unfillable']} (unreported {v['unfillable_unreported']}), damaged by hand "
        f"{v['damaged_by_hand']}; windows {v['windows']} ({len(v['window_mismatches'])} differ), "
        f"alerts {v['alerts']} ({len(v['alert_mismatches'])} differ)",
    ]
    d = result["deliveries"]
    if d is not None:
        lag = d["detected_to_delivered_s"] or {}
        lines.append(
            f"deliveries: {'OK' if d['ok'] else 'FAILED'}: {d['alerts']} alerts in price_alerts, "
            f"lost {d['lost_count']}, repeated {d['repeated']}, retracted after delivery "
            f"{d['retracted']}; {d['error_answers']} POSTs answered with an error; "
            f"{d['operational_posts']} operational; detected -> delivered p50 "
            f"{lag.get('p50', float('nan')):.2f} s, p95 {lag.get('p95', float('nan')):.2f} s"
        )
    own = result["lag_trade_to_raw_measured_here_s"]
    if own:
        lines.append(
            f"lag trade->raw (measured here, every trade): p50 {own['p50']:.1f} s, "
            f"p95 {own['p95']:.1f} s, max {own['max']:.1f} s"
        )
    steady = (
        f"steady state: after {WARM_UP_S:.0f} s up, not within {STEADY_AFTER_FAULT_S:.0f} s of a "
        "fault"
    )
    for part, key in (("the whole run", "lag_pipeline_run_s"), (steady, "lag_pipeline_steady_s")):
        for kind, stats in result[key].items():
            if stats["count"]:
                lines.append(
                    f"lag trade->{kind} (pipeline, {part}, {stats['count']} samples): p50 "
                    f"{stats['p50']:.2f} s, p95 {stats['p95']:.2f} s, max {stats['max']:.1f} s"
                )
    for kind, stats in result["lag_pipeline_per_batch_s"].items():
        if stats["batches"]:
            lines.append(
                f"lag trade->{kind} (pipeline, {stats['batches']} batches): median batch p50 "
                f"{stats['median_batch_p50']:.1f} s, median batch p95 "
                f"{stats['median_batch_p95']:.1f} s, p95 of batch p95 "
                f"{stats['p95_of_batch_p95']:.1f} s, max {stats['max']:.1f} s"
            )
    start, end = result["rss_bytes"]["start"], result["rss_bytes"]["end"]
    for role in sorted(set(start) | set(end)):
        lines.append(
            f"rss {role}: {start.get(role, 0) / mib:.0f} -> {end.get(role, 0) / mib:.0f} MiB "
            "(pipeline up -> end of the soak, before the drain)"
        )
    for name, value in result["disk"]["end"].items():
        before = result["disk"]["start"][name]
        lines.append(
            f"disk {name}: {before['bytes'] / mib:.1f} -> {value['bytes'] / mib:.1f} MiB, "
            f"{before['files']} -> {value['files']} files"
        )
    return lines


def main() -> int:
    """Run the soak, print the summary, write the plot and the JSON; exit 1 if the verdict fails."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = ",".join(name for name, _ in FAULTS)
    parser.add_argument("--minutes", type=float, default=120.0)
    parser.add_argument("--fault-every-minutes", type=float, default=5.0, help="0: no faults")
    parser.add_argument("--speed", type=float, default=10.0)
    parser.add_argument("--trigger-seconds", type=float, default=1.0)
    parser.add_argument("--batch-interval-seconds", type=float, default=1.0)
    parser.add_argument(
        "--notify",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="alerts to a webhook receiver on loopback (default on)",
    )
    parser.add_argument("--sample-seconds", type=float, default=10.0)
    parser.add_argument(
        "--max-connection-age",
        type=float,
        default=600.0,
        help="the replay closes each connection after S s (Binance: 24 h; 0: never)",
    )
    parser.add_argument(
        "--price-change-threshold-pct",
        type=float,
        default=0.05,
        help="PRICE_MOVE threshold (default 0.05, not 0.5: the replay's calm hours raise alerts, "
        "so the trade -> alert lag is measured)",
    )
    parser.add_argument(
        "--landing-retention-hours",
        type=float,
        default=0.25,
        help="LANDING_RETENTION_HOURS (default 0.25, not 24: retention kicks in within the soak)",
    )
    parser.add_argument(
        "--faults",
        help=f"comma-separated, injected round-robin in this order (default: all, {names})",
    )
    parser.add_argument("--plot", type=Path, default=Path("benchmarks/soak.png"))
    parser.add_argument("--json", type=Path, default=Path("benchmarks/soak.json"))
    parser.add_argument("--keep", type=Path, help="keep the instance, data and logs under DIR")
    args = parser.parse_args()
    unknown = set((args.faults or "").split(",")) - set(names.split(",")) - {""}
    if unknown:
        parser.error(f"unknown faults {sorted(unknown)}; known: {names}")
    args.max_connection_age = args.max_connection_age or None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("crypto_assets.replay").setLevel(logging.WARNING)
    # SIGTERM ends the soak like Ctrl-C: the harness's finally stops every process.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    root = args.keep or Path(tempfile.mkdtemp(prefix="soak_"))
    try:
        result = run_soak(args, root)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    soak = result.pop("_soak")
    plot(soak, args.plot)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1, default=str))
    print("\n".join([*summary_lines(result), f"plot: {args.plot}", f"figures: {args.json}"]))
    delivered = result["deliveries"] is None or result["deliveries"]["ok"]
    return 0 if result["verdict"]["ok"] and delivered else 1


if __name__ == "__main__":
    sys.exit(main())
