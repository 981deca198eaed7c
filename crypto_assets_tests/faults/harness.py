"""The whole local pipeline under a real Dagster, with faults injected at run time.

A replay server of the bundled recording (looped, times on the wall clock, at `speed`) runs in
this process, so faults can be asked of it at any moment; a Dagster webserver and daemon on
loopback (`DagsterServices`) load the code location with the environment pointing the producer at
it. `binance_producer_sensor` keeps the producer alive, `continuous_analytics_sensor` one continuous
analytics run. Process faults SIGKILL a run's process tree, found from the pid Dagster logs when
it starts the run. `finish` stops the producer, waits for the analytics to take every landing file,
and returns a `Verdict`: the published trades (from the recording and the market's own ledger,
independently of the pipeline) against trades_raw, and the plain-Python reference against
trades_analytics and price_alerts.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

import psutil
from deltalake import DeltaTable

from crypto_assets.recording import bundled_recording
from crypto_assets.replay.recording_feed import Recording, load_recordings
from crypto_assets.replay.server import ReplayOptions, ReplayServer
from crypto_assets_tests.analytics import reference
from crypto_assets_tests.analytics.expectations import FLOAT_COLUMNS, close
from crypto_assets_tests.analytics.tables import epoch_ms
from crypto_assets_tests.dagster_services import FINISHED, DagsterServices

logger = logging.getLogger(__name__)

PRODUCER_JOB = "binance_producer_job"
ANALYTICS_JOB = "streaming_analytics_job"
PRODUCER_SENSOR = "binance_producer_sensor"
ANALYTICS_SENSOR = "continuous_analytics_sensor"
LANDING_SENSOR = "landing_files_sensor"
ACTIVE = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")
_PID = re.compile(r"\bpid:? (\d+)")
# The producer's report of what REST could not fill (producer/gap_filler.py).
_UNFILLED = re.compile(r"(\w+): (\d+) trades with ids in (\d+)\.\.(\d+) could not be filled")
_POLL_SECONDS = 1.0


@dataclass(frozen=True)
class HarnessOptions:
    """How the harness runs the pipeline; the defaults are the fault suite's."""

    speed: float = 10.0
    pairs: tuple[str, ...] = ("btcusdt", "ethusdt")
    batch_interval_seconds: float = 5.0
    trigger_seconds: float = 5.0
    window: str = "1 minute"
    # Large, so that trades back-filled after a fault are not "late": windows equal the reference.
    watermark_delay: str = "1 hour"
    price_change_threshold_pct: float = 0.5
    volume_spike_min_trades: int = 100
    volume_spike_factor: float = 3.0
    volume_spike_lookback: int = 10
    volume_spike_min_history: int = 5
    max_connection_age: float | None = None  # the 24 h rotation, shortened
    # Processed landing files are archived, then deleted this many hours later (None: kept).
    landing_retention_hours: float | None = 24.0
    shutdown_grace: float = 1.0
    startup_seconds: float = 180.0
    alert_webhook_url: str | None = None  # ALERT_WEBHOOK_URL (None: notifications off)

    def rules(self) -> reference.Rules:
        """The alert rules the reference applies (the same the pipeline is given)."""
        return reference.Rules(
            price_change_threshold_pct=self.price_change_threshold_pct,
            volume_spike_min_trades=self.volume_spike_min_trades,
            volume_spike_factor=self.volume_spike_factor,
            volume_spike_lookback=self.volume_spike_lookback,
            volume_spike_min_history=self.volume_spike_min_history,
        )

    def window_ms(self) -> int:
        """The analytics window in milliseconds."""
        number, unit = self.window.split()
        seconds = {"second": 1, "minute": 60, "hour": 3600}[unit.rstrip("s")]
        return round(float(number) * seconds * 1000)


@dataclass
class Verdict:
    """What the pipeline holds against what the market published."""

    expected: int
    raw_rows: int
    missing: list[tuple[str, int]]
    duplicated: list[tuple[str, int]]
    unexpected: list[tuple[str, int]]
    wrong_values: list[tuple[str, int]]
    unfillable: list[tuple[str, int]]
    unreported: list[tuple[str, int]]
    damaged: list[tuple[str, int]]
    window_mismatches: list[str]
    alert_mismatches: list[str]
    windows: int = 0
    alerts: int = 0
    covered: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Nothing lost, doubled, invented or wrong; every unfillable id reported."""
        return not (
            self.missing
            or self.duplicated
            or self.unexpected
            or self.wrong_values
            or self.unreported
            or self.window_mismatches
            or self.alert_mismatches
        )

    def summary(self) -> str:
        """One paragraph: the counts, then the first few problems of each kind."""
        lines = [
            f"expected {self.expected} trades, trades_raw {self.raw_rows} rows; lost "
            f"{len(self.missing)}, duplicated {len(self.duplicated)}, unexpected "
            f"{len(self.unexpected)}, wrong values {len(self.wrong_values)}; unfillable "
            f"{len(self.unfillable)} ({len(self.unreported)} not reported), damaged by hand "
            f"{len(self.damaged)}; windows {self.windows} ({len(self.window_mismatches)} differ), "
            f"alerts {self.alerts} ({len(self.alert_mismatches)} differ); covered {self.covered}"
        ]
        for name in ("missing", "duplicated", "unexpected", "wrong_values", "unreported"):
            values = getattr(self, name)
            if values:
                lines.append(f"{name}: {values[:10]}")
        lines += self.window_mismatches[:10] + self.alert_mismatches[:10]
        return "\n".join(lines)

    def assert_ok(self) -> None:
        """Fail with the summary unless `ok`."""
        assert self.ok, self.summary()


class PipelineHarness:
    """A replay server, a Dagster webserver and daemon, and the faults and waits of the suite."""

    def __init__(self, root: Path, options: HarnessOptions | None = None) -> None:
        self.root = root
        self.options = options or HarnessOptions()
        self.recording: Recording = load_recordings((bundled_recording(),))
        self.replay = ReplayServer(
            ReplayOptions(
                recordings=(bundled_recording(),),
                speed=self.options.speed,
                loop=True,
                rebase_time=True,
                clock_time=True,
                max_connection_age=self.options.max_connection_age,
                shutdown_grace=self.options.shutdown_grace,
            ),
            self.recording,
        )
        self.dagster: DagsterServices | None = None
        self.last_fault_time = 0.0
        self.analytics_run_id: str | None = None  # launched here when there is no sensor
        self._damaged: list[tuple[str, int]] = []

    @property
    def data_dir(self) -> Path:
        """CRYPTO_DATA_DIR of the pipeline."""
        return self.root / "data"

    @property
    def landing_dir(self) -> Path:
        """Where the producer lands its files."""
        return self.data_dir / "landing" / "trades"

    def env(self) -> dict[str, str]:
        """The environment of the code location: the producer reads the replay as if live."""
        o = self.options
        return {
            "CRYPTO_DEPLOYMENT": "local",
            "CRYPTO_SOURCE": "live",
            "BINANCE_WS_URL": self.replay.url,
            "BINANCE_REST_URL": self.replay.rest_url,
            "TRADING_PAIRS": ",".join(o.pairs),
            "BATCH_INTERVAL_SECONDS": str(o.batch_interval_seconds),
            "RUN_DURATION_MINUTES": "none",
            "ANALYTICS_TRIGGER_SECONDS": str(o.trigger_seconds),
            "ANALYTICS_WINDOW": o.window,
            "WATERMARK_DELAY": o.watermark_delay,
            "PRICE_CHANGE_THRESHOLD_PCT": str(o.price_change_threshold_pct),
            "VOLUME_SPIKE_MIN_TRADES": str(o.volume_spike_min_trades),
            "VOLUME_SPIKE_FACTOR": str(o.volume_spike_factor),
            "VOLUME_SPIKE_LOOKBACK": str(o.volume_spike_lookback),
            "VOLUME_SPIKE_MIN_HISTORY": str(o.volume_spike_min_history),
            "LANDING_RETENTION_HOURS": (
                "none" if o.landing_retention_hours is None else str(o.landing_retention_hours)
            ),
        } | ({"ALERT_WEBHOOK_URL": o.alert_webhook_url} if o.alert_webhook_url else {})

    # Lifecycle

    def start(self) -> None:
        """Start the replay server, then the webserver and daemon pointed at it."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.replay.start()
        self.dagster = DagsterServices(self.root, self.options.startup_seconds, env=self.env())
        self.dagster.start()

    def stop(self) -> None:
        """Sensors off, runs terminated, every process started here ended; idempotent."""
        dagster = self.dagster
        if dagster is not None and dagster.processes:
            try:
                for sensor in (PRODUCER_SENSOR, ANALYTICS_SENSOR):
                    if dagster.has_sensor(sensor):
                        dagster.stop_sensor(sensor)
                for job in (PRODUCER_JOB, ANALYTICS_JOB):
                    for run in self._active_runs(job):
                        dagster.terminate(run["runId"])
                        dagster.wait_for(run["runId"], FINISHED, 90)
            except Exception:  # the services may be half down; the kills below still run
                logger.exception("stopping the runs through GraphQL failed")
            for job in (PRODUCER_JOB, ANALYTICS_JOB):
                self._kill_job_processes(job)
            dagster.stop()
            dagster.processes.clear()
        self.replay.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def services(self) -> DagsterServices:
        """The running Dagster services."""
        if self.dagster is None:
            raise RuntimeError("the harness is not started")
        return self.dagster

    def start_pipeline(self) -> None:
        """Producer sensor on, landing_files_sensor off, continuous analytics on."""
        dagster = self.services
        dagster.stop_sensor(LANDING_SENSOR)
        dagster.start_sensor(PRODUCER_SENSOR)
        self.start_continuous_analytics()

    def start_continuous_analytics(self) -> None:
        """Continuous analytics on: its sensor when the code has it, else one run launched here."""
        dagster = self.services
        if dagster.has_sensor(ANALYTICS_SENSOR):
            dagster.start_sensor(ANALYTICS_SENSOR)
            return
        config = {"mode": "continuous", "trigger_seconds": self.options.trigger_seconds}
        self.analytics_run_id = dagster.launch(
            ANALYTICS_JOB, {"ops": {"streaming_analytics": {"config": config}}}
        )

    def stop_continuous_analytics(self, timeout: float = 120.0) -> None:
        """Continuous analytics off: its sensor off, its run terminated and finished."""
        dagster = self.services
        if dagster.has_sensor(ANALYTICS_SENSOR):
            dagster.stop_sensor(ANALYTICS_SENSOR)
        for run in self._active_runs(ANALYTICS_JOB):
            dagster.terminate(run["runId"])
            status = dagster.wait_for(run["runId"], FINISHED, timeout)
            if status not in FINISHED:
                raise TimeoutError(f"analytics run {run['runId']} is still {status}")

    # Reads

    def active_run(self, job: str) -> dict | None:
        """The newest queued or running run of `job` (runId, status, startTime), or None."""
        runs = self._active_runs(job)
        return runs[0] if runs else None

    def _active_runs(self, job: str) -> list[dict]:
        return [run for run in self.services.runs(job) if run["status"] in ACTIVE]

    def run_pids(self, run_id: str) -> list[int]:
        """The live processes of a run: its worker (the pid Dagster logged) and all descendants."""
        data = self.services.graphql(
            "query($id: ID!) { runOrError(runId: $id) { ... on Run { eventConnection { events { "
            "__typename ... on MessageEvent { message } } } } } }",
            {"id": run_id},
        )
        events = data["runOrError"]["eventConnection"]["events"]
        pids = []
        for event in events:
            message = event.get("message") or ""
            if "process" in message.lower():
                pids += [int(pid) for pid in _PID.findall(message)]
        processes = []
        for pid in dict.fromkeys(pids):
            try:
                worker = psutil.Process(pid)
                processes += [worker, *worker.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
        return [process.pid for process in processes]

    def raw_count(self) -> int:
        """Rows in trades_raw now (from the Delta log's file statistics: no data read)."""
        table = self.data_dir / "delta" / "trades_raw"
        if not (table / "_delta_log").is_dir():
            return 0
        actions = DeltaTable(str(table)).get_add_actions(flatten=True)
        return int(sum(actions.column("num_records").to_pylist() or [0]))

    # Faults (the replay's own are methods of `self.replay`)

    def kill_producer(self) -> list[int]:
        """SIGKILL the running producer run's processes; the pids killed."""
        return self._kill_run(PRODUCER_JOB)

    def kill_analytics(self) -> list[int]:
        """SIGKILL the running analytics run's processes (its worker and its JVM)."""
        return self._kill_run(ANALYTICS_JOB)

    def restart_daemon(self) -> None:
        """SIGKILL the Dagster daemon and start a new one (runs and their code server live on)."""
        self.last_fault_time = time.time()
        self.services.restart_daemon()

    def damage_next_landing_file(self, how: str = "delete", timeout: float = 120.0) -> Path:
        """Delete or truncate a landing file the analytics has not read yet; the file.

        The continuous analytics is stopped first (so the file waits), the first file landed after
        that is damaged, then the analytics is started again. Its lost trades are recorded as
        damaged: the verdict does not count them missing.
        """
        if how not in ("delete", "truncate"):
            raise ValueError(f"how must be delete or truncate, got {how!r}")
        try:  # whatever happens, the analytics is on again after (a soak goes on)
            self.stop_continuous_analytics()
            before = set(self._landing_names())
            deadline = time.monotonic() + timeout
            while not (new := sorted(set(self._landing_names()) - before)):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no landing file within {timeout} s; see {self.root}")
                time.sleep(0.2)
            path = self.landing_dir / new[0]
            content = path.read_bytes()
            self.last_fault_time = time.time()
            if how == "delete":
                path.unlink()
                kept = b""
            else:
                kept = content[: len(content) // 2]
                path.write_bytes(kept)
            whole = kept[: kept.rfind(b"\n") + 1]
            kept_keys = {_key(line) for line in whole.splitlines() if line.strip()}
            lost = [_key(line) for line in content.splitlines() if line.strip()]
            self._damaged += [key for key in lost if key not in kept_keys]
        finally:
            self.start_continuous_analytics()
        return path

    def signal_processes(self, pids: list[int], signum: int) -> None:
        """Send `signum` to each of `pids` that still lives (SIGSTOP, SIGCONT: pause a run)."""
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def kill_processes(self, pids: list[int], what: str) -> None:
        """SIGKILL `pids`, the processes of `what` (a run's, looked up before with `run_pids`)."""
        self.last_fault_time = time.time()
        for pid in pids:
            _kill(pid)
        logger.info("SIGKILLed %s: pids %s", what, pids)

    def _kill_run(self, job: str) -> list[int]:
        run = self.active_run(job)
        if run is None or run["status"] != "STARTED":
            raise RuntimeError(f"no started {job} run to kill: {run}")
        pids = self.run_pids(run["runId"])
        if not pids:
            raise RuntimeError(f"no live process found for run {run['runId']}")
        self.kill_processes(pids, f"run {run['runId']} of {job}")
        return pids

    def _kill_job_processes(self, job: str) -> None:
        try:
            runs = self.services.runs(job)
        except Exception:  # the webserver is already gone: nothing more to find
            return
        for run in runs:
            if run["status"] in ACTIVE:
                for pid in self.run_pids(run["runId"]):
                    _kill(pid)

    # Waits

    def wait_for_raw_trades(self, count: int, timeout: float = 300.0) -> int:
        """Wait until trades_raw holds at least `count` rows; the count."""
        self._wait(lambda: self.raw_count() >= count, timeout, f"{count} trades_raw rows")
        return self.raw_count()

    def wait_for_run_started(
        self, job: str, after: float | None = None, timeout: float = 300.0
    ) -> str:
        """Wait for a STARTED run of `job` (started after `after`, epoch s); its run id."""
        found: list[str] = []

        def started() -> bool:
            for run in self.services.runs(job):
                if run["status"] == "STARTED" and (after is None or run["startTime"] > after):
                    found.append(run["runId"])
                    return True
            return False

        self._wait(started, timeout, f"a started {job} run")
        return found[0]

    def wait_until_landing_processed(self, timeout: float = 300.0) -> None:
        """Wait until every landing file is in trades_raw or trades_quarantine."""
        self._wait(lambda: not self.unprocessed_files(), timeout, "every landing file processed")

    def keep_producer_stopped(self) -> bool:
        """Stop the producer sensor again and end any producer run it started; True while one
        is still active (being stopped or not).

        A sensor tick that was under way when the sensor was stopped can write the sensor's
        state back as running and start a run (seen once in 13 faults: a producer ran on
        through a settle); while the pipeline settles, that is undone as soon as it is seen.
        """
        active = self._active_runs(PRODUCER_JOB)
        started = [run for run in active if run["status"] != "CANCELING"]
        if started:
            self.services.stop_sensor(PRODUCER_SENSOR)
            for run in started:
                self.services.terminate(run["runId"])
            logger.warning("producer run(s) started while settling, stopped again: %s", started)
        return bool(active)

    def wait_until_tables_settle(self, quiet_seconds: float, timeout: float = 300.0) -> None:
        """Wait until no analytics table has had a new commit for `quiet_seconds`.

        trades_raw is written first in a batch, its windows and alerts after: once the last
        landing file is in trades_raw, its batch may still be writing the other tables.
        """
        last: dict[str, int] = {}
        quiet_since = time.monotonic()

        def settled() -> bool:
            nonlocal quiet_since
            if self.keep_producer_stopped():
                quiet_since = time.monotonic()
                return False
            versions = self.table_versions()
            if versions != last:
                last.clear()
                last.update(versions)
                quiet_since = time.monotonic()
            return time.monotonic() - quiet_since >= quiet_seconds

        self._wait(settled, timeout, f"{quiet_seconds:.0f} s without a new table commit")

    def table_versions(self) -> dict[str, int]:
        """The latest Delta version of each analytics table that exists."""
        versions = {}
        for table in ("trades_raw", "trades_analytics", "price_alerts", "trades_quarantine"):
            path = self.data_dir / "delta" / table
            if (path / "_delta_log").is_dir():
                versions[table] = DeltaTable(str(path)).version()
        return versions

    def unprocessed_files(self) -> list[str]:
        """Landing files that neither trades_raw nor trades_quarantine names as a source."""
        landed = set(self._landing_names())
        if not landed:
            return []
        seen: set[str] = set()
        for table in ("trades_raw", "trades_quarantine"):
            path = self.data_dir / "delta" / table
            if (path / "_delta_log").is_dir():
                column = DeltaTable(str(path)).to_pyarrow_table(columns=["source_file"])
                seen.update(Path(name).name for name in set(column.column(0).to_pylist()))
        return sorted(landed - seen)

    def _landing_names(self) -> list[str]:
        if not self.landing_dir.is_dir():
            return []
        return [p.name for p in self.landing_dir.glob("trades_*.json")]

    def _wait(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout:.0f} s for {what}; see {self.root}")
            time.sleep(_POLL_SECONDS)

    # The verdict

    def finish(self, timeout: float = 300.0) -> Verdict:
        """Stop the producer (it lands its batch), let the analytics drain, then judge."""
        dagster = self.services
        dagster.stop_sensor(PRODUCER_SENSOR)
        for run in self._active_runs(PRODUCER_JOB):
            dagster.terminate(run["runId"])
            status = dagster.wait_for(run["runId"], FINISHED, timeout)
            if status not in FINISHED:
                raise TimeoutError(f"producer run {run['runId']} is still {status}")
        self.wait_until_landing_processed(timeout)
        self.wait_until_tables_settle(3 * self.options.trigger_seconds + 10, timeout)
        return self.verdict()

    def verdict(self) -> Verdict:
        """Compare the tables with what the market published (call once everything landed)."""
        raw = DeltaTable(str(self.data_dir / "delta" / "trades_raw")).to_pyarrow_table(
            columns=["symbol", "trade_id", "price", "quantity", "trade_time", "is_buyer_maker"]
        )
        rows = raw.to_pylist()
        counts = Counter((row["symbol"], row["trade_id"]) for row in rows)
        highs: dict[str, int] = {}
        for symbol, trade_id in counts:
            highs[symbol] = max(trade_id, highs.get(symbol, trade_id))
        for symbol, high in self._state_highs().items():
            highs[symbol] = max(high, highs.get(symbol, high))
        published, covered = self._published(highs)
        hidden = self.replay.on_loop(self.replay.market.hidden_ids)
        unfillable = sorted((s, i) for s, ids in hidden.items() for i in ids if (s, i) in published)
        damaged = sorted(set(self._damaged))
        for key in (*unfillable, *damaged):
            published.pop(key, None)
        by_key = {(row["symbol"], row["trade_id"]): row for row in rows}
        wrong = sorted(
            key
            for key, want in published.items()
            if key in by_key
            and (
                not close(by_key[key]["price"], want["price"])
                or not close(by_key[key]["quantity"], want["quantity"])
                or by_key[key]["trade_time"] != want["trade_time"]
                or by_key[key]["is_buyer_maker"] != want["is_buyer_maker"]
            )
        )
        reported = self._reported_unfilled()
        windows, alerts = self._compare_windows(list(published.values()))
        return Verdict(
            expected=len(published),
            raw_rows=len(rows),
            missing=sorted(key for key in published if key not in counts),
            duplicated=sorted(key for key, n in counts.items() if n > 1),
            unexpected=sorted(key for key in counts if key not in published and key not in damaged),
            wrong_values=wrong,
            unfillable=unfillable,
            unreported=[key for key in unfillable if not _in_ranges(key, reported)],
            damaged=damaged,
            window_mismatches=windows[1],
            alert_mismatches=alerts[1],
            windows=windows[0],
            alerts=alerts[0],
            covered=covered,
        )

    def _published(
        self, highs: dict[str, int]
    ) -> tuple[dict[tuple[str, int], dict], dict[str, tuple[int, int]]]:
        """The market's published trades up to `highs`, as landing records; the id range each."""
        extent = self.replay.on_loop(self.replay.market.published_extent)
        market = self.replay.market
        records: dict[tuple[str, int], dict] = {}
        covered = {}
        for symbol, (first, end) in extent.items():
            table = self.recording.symbols[symbol]
            count = len(table.trades)
            high = highs.get(symbol)
            if high is None or end <= first:
                continue
            first_id = None
            for position in range(first, end):
                lap, index = divmod(position, count)
                trade = table.trades[index]
                trade_id = trade.trade_id + lap * table.span
                if trade_id > high:
                    break
                first_id = trade_id if first_id is None else first_id
                records[(symbol, trade_id)] = {
                    "symbol": symbol,
                    "trade_id": trade_id,
                    "price": float(trade.price),
                    "quantity": float(trade.qty),
                    "trade_time": market.published_time(lap, trade.trade_time),
                    "is_buyer_maker": trade.is_buyer_maker,
                }
            if first_id is not None:
                covered[symbol] = (first_id, high)
        return records, covered

    def _state_highs(self) -> dict[str, int]:
        path = self.data_dir / "landing" / "_state" / "producer_state.json"
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            return {}
        return {s: int(entry["landed_high"]) for s, entry in state.get("symbols", {}).items()}

    def _reported_unfilled(self) -> list[tuple[str, int, int]]:
        """Id ranges the producer runs said REST could not fill (from their captured logs)."""
        ranges = []
        storage = self.root / "dagster_home" / "storage"
        for log in storage.rglob("*.err") if storage.is_dir() else ():
            for match in _UNFILLED.finditer(log.read_text(errors="replace")):
                ranges.append((match.group(1), int(match.group(3)), int(match.group(4))))
        return ranges

    def _compare_windows(
        self, records: list[dict]
    ) -> tuple[tuple[int, list[str]], tuple[int, list[str]]]:
        window_ms = self.options.window_ms()
        expected = reference.windows(records, window_ms)
        got = {
            (row["symbol"], epoch_ms(row["window_start"])): row
            for row in _rows(self.data_dir, "trades_analytics")
        }
        window_problems = [f"window {key}: missing" for key in sorted(set(expected) - set(got))]
        window_problems += [f"window {key}: unexpected" for key in sorted(set(got) - set(expected))]
        for key in sorted(set(expected) & set(got)):
            row, want = got[key], expected[key]
            if row["trade_count"] != want["trade_count"]:
                window_problems.append(
                    f"window {key}: trade_count {row['trade_count']} != {want['trade_count']}"
                )
                continue
            for column in FLOAT_COLUMNS:
                if not close(row[column], want[column]):
                    window_problems.append(
                        f"window {key}: {column} {row[column]} != {want[column]}"
                    )
        expected_alerts = reference.alerts(expected, self.options.rules(), window_ms)
        got_alerts = {
            (row["alert_type"], row["symbol"], epoch_ms(row["window_start"])): row
            for row in _rows(self.data_dir, "price_alerts")
        }
        alert_problems = [
            f"alert {key}: missing" for key in sorted(set(expected_alerts) - set(got_alerts))
        ]
        alert_problems += [
            f"alert {key}: unexpected" for key in sorted(set(got_alerts) - set(expected_alerts))
        ]
        for key in sorted(set(expected_alerts) & set(got_alerts)):
            row, want = got_alerts[key], expected_alerts[key]
            for column in ("metric_value", "threshold"):
                if not close(row[column], want[column]):
                    alert_problems.append(f"alert {key}: {column} {row[column]} != {want[column]}")
        return (len(expected), window_problems), (len(expected_alerts), alert_problems)


def _rows(data_dir: Path, table: str) -> list[dict]:
    path = data_dir / "delta" / table
    if not (path / "_delta_log").is_dir():
        return []
    return DeltaTable(str(path)).to_pyarrow_table().to_pylist()


def _key(line: bytes) -> tuple[str, int]:
    record = json.loads(line)
    return record["symbol"], record["trade_id"]


def _in_ranges(key: tuple[str, int], ranges: list[tuple[str, int, int]]) -> bool:
    symbol, trade_id = key
    return any(s == symbol and first <= trade_id <= last for s, first, last in ranges)


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
