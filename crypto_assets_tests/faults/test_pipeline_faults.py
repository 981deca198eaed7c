"""The fault suite: the whole local pipeline under Dagster survives every fault of a deployment.

One pipeline session per version (the replay of the bundled recording looped at 10x, the producer
kept alive by binance_producer_sensor, continuous analytics kept alive by
continuous_analytics_sensor, a real webserver and daemon), so Dagster and Spark start once. The
faults are injected in sequence, one test each; every test waits until the pipeline has moved
past its fault, then settles it (producer stopped, every landing file processed) and judges the
whole run so far against what the market published (`Verdict`: every trade exactly once in
trades_raw, windows and alerts equal to the plain-Python reference, unfillable gaps reported),
then starts the producer again through its sensor. The tests depend on the order they are written
in (one session), as a soak does.

`make test-faults` runs the short version (`faults and not long`, CI); the long one adds more
trades between faults and a slower rotation (`make test-faults FAULTS_MARKERS=faults`).
The landing folder is a real 256 MiB tmpfs (engineer B's `small_disk`, needs root) for the
disk-full fault; Delta tables, checkpoints and Dagster's storage stay on the ordinary disk.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from _pytest.outcomes import Skipped
from deltalake import DeltaTable

from crypto_assets_tests.faults.harness import (
    ANALYTICS_JOB,
    PRODUCER_JOB,
    PRODUCER_SENSOR,
    HarnessOptions,
    PipelineHarness,
    Verdict,
)
from crypto_assets_tests.producer.small_disk import SmallDisk, small_disk

logger = logging.getLogger(__name__)

pytestmark = [pytest.mark.faults, pytest.mark.e2e]

LANDING_DISK_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class Version:
    """How hard a version of the suite pushes: replay speed, trades between faults, the
    connection lifetime."""

    name: str
    speed: float
    progress_trades: int
    max_connection_age: float


# The short version replays at 5x: fewer rows to judge after each fault, the same faults.
SHORT = Version("short", speed=5.0, progress_trades=600, max_connection_age=40.0)
LONG = Version("long", speed=10.0, progress_trades=6000, max_connection_age=120.0)


@dataclass
class Session:
    """One running pipeline, its version and (when mounted) the landing folder's small disk."""

    harness: PipelineHarness
    version: Version
    disk: SmallDisk | None
    disk_skip_reason: str = ""

    def progress(self, timeout: float = 240.0) -> int:
        """Wait until trades_raw holds the version's number of trades more than now."""
        return self.harness.wait_for_raw_trades(
            self.harness.raw_count() + self.version.progress_trades, timeout
        )

    def settle(self) -> Verdict:
        """Stop the producer, let every landing file in, judge; then the producer back on."""
        began = time.monotonic()
        verdict = self.harness.finish()
        judged = time.monotonic()
        resumed_after = time.time()
        self.harness.services.start_sensor(PRODUCER_SENSOR)
        self.harness.wait_for_run_started(PRODUCER_JOB, after=resumed_after, timeout=180)
        # Started is not yet connected: the next fault may be one on the connection.
        replay = self.harness.replay
        _wait(lambda: replay.stats.connections.connections_open >= 1, 120, "a producer connection")
        logger.info(
            "settled in %.0f s, producer back in %.0f s: %s",
            judged - began,
            time.monotonic() - judged,
            verdict.summary(),
        )
        return verdict


@pytest.fixture(
    scope="module",
    params=[SHORT, pytest.param(LONG, marks=pytest.mark.long)],
    ids=lambda version: version.name,
)
def session(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """The pipeline running under Dagster, producing and analysing, for the module's faults."""
    version: Version = request.param
    root = tmp_path_factory.mktemp(f"faults_{version.name}")
    options = HarnessOptions(
        speed=version.speed,
        max_connection_age=version.max_connection_age,
        # Low enough that the recording raises PRICE_MOVE alerts (about two a lap at 5x): the
        # verdict then compares alerts, not two empty tables.
        price_change_threshold_pct=0.1,
    )
    with contextlib.ExitStack() as stack:
        disk, skip_reason = None, ""
        try:
            disk = stack.enter_context(small_disk(root / "data" / "landing", LANDING_DISK_BYTES))
        except Skipped as skipped:  # not root: only the disk-full fault cannot run
            skip_reason = str(skipped)
        harness = stack.enter_context(PipelineHarness(root, options))
        harness.start_pipeline()
        harness.wait_for_run_started(PRODUCER_JOB, timeout=240)
        harness.wait_for_run_started(ANALYTICS_JOB, timeout=240)
        harness.wait_for_raw_trades(version.progress_trades, timeout=300)
        yield Session(harness, version, disk, skip_reason)


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f} s for {what}")
        time.sleep(0.5)


def _wait_for_status(session: Session, run_id: str, status: str, timeout: float) -> None:
    dagster = session.harness.services
    _wait(lambda: dagster.status(run_id) == status, timeout, f"run {run_id} {status}")


def _quarantined_lines(landing_root: Path) -> int:
    folder = landing_root / "_quarantine"
    if not folder.is_dir():
        return 0
    return sum(len(p.read_bytes().splitlines()) for p in folder.iterdir() if p.is_file())


def _newest_batch(table: Path) -> int:
    """The highest streaming batch id committed to a Delta table (its txn actions), or -1."""
    newest = -1
    for commit in (table / "_delta_log").glob("*.json"):
        for line in commit.read_text().splitlines():
            action = json.loads(line)
            if "txn" in action:
                newest = max(newest, int(action["txn"]["version"]))
    return newest


def _rows_in(table: Path) -> int:
    if not (table / "_delta_log").is_dir():
        return 0
    return DeltaTable(str(table)).to_pyarrow_table(columns=["symbol"]).num_rows


def _compute_logs(session: Session) -> str:
    storage = session.harness.root / "dagster_home" / "storage"
    return "".join(p.read_text(errors="replace") for p in storage.rglob("*.err"))


def _quarantined_from(session: Session, file_name: str) -> list[dict]:
    table = session.harness.data_dir / "delta" / "trades_quarantine"
    if not (table / "_delta_log").is_dir():
        return []
    rows = DeltaTable(str(table)).to_pyarrow_table(columns=["source_file", "reason"]).to_pylist()
    return [row for row in rows if Path(row["source_file"]).name == file_name]


# The faults, in the order one session meets them.


def test_websocket_dropped(session: Session) -> None:
    assert session.harness.replay.drop_connections() >= 1
    session.progress()
    verdict = session.settle()
    verdict.assert_ok()
    assert session.harness.replay.stats.connections.connections_dropped >= 1


def test_server_shutdown(session: Session) -> None:
    assert session.harness.replay.send_server_shutdown() >= 1
    session.progress()
    session.settle().assert_ok()
    assert session.harness.replay.stats.connections.shutdowns_sent >= 1


def test_connection_rotation_with_a_short_lifetime(session: Session) -> None:
    harness = session.harness
    producer = harness.active_run(PRODUCER_JOB)
    assert producer is not None
    opened = harness.replay.stats.connections.connections_opened
    # The server closes a connection older than max_connection_age, as Binance does at 24 h.
    _wait(
        lambda: harness.replay.stats.connections.connections_opened > opened,
        session.version.max_connection_age + 60,
        "a rotated connection",
    )
    session.progress()
    # The same producer run rotated its connection: nothing restarted it.
    assert harness.active_run(PRODUCER_JOB)["runId"] == producer["runId"]
    session.settle().assert_ok()


def test_malformed_frames(session: Session) -> None:
    landing_root = session.harness.data_dir / "landing"
    before = _quarantined_lines(landing_root)
    session.harness.replay.corrupt_next(25)
    session.progress()
    _wait(lambda: _quarantined_lines(landing_root) > before, 60, "malformed frames quarantined")
    # The corrupted trades are gaps in the ids: REST filled them, so the verdict finds them all.
    session.settle().assert_ok()


def test_gaps_rest_can_fill(session: Session) -> None:
    session.harness.replay.withhold_next(60)
    session.progress()
    verdict = session.settle()
    verdict.assert_ok()
    assert verdict.unfillable == []


def test_gaps_rest_cannot_fill_are_reported(session: Session) -> None:
    session.harness.replay.withhold_next(40, from_rest=True)
    session.progress()
    verdict = session.settle()
    # The 40 trades are nowhere to be had; the producer said which ones (Verdict.unreported).
    assert len(verdict.unfillable) == 40, verdict.summary()
    assert verdict.unreported == []
    verdict.assert_ok()


def test_producer_sigkilled_is_restarted_by_its_sensor(session: Session) -> None:
    harness = session.harness
    killed = harness.active_run(PRODUCER_JOB)["runId"]
    assert harness.kill_producer()
    _wait_for_status(session, killed, "FAILURE", 90)
    restarted = harness.wait_for_run_started(
        PRODUCER_JOB, after=harness.last_fault_time, timeout=240
    )
    assert restarted != killed
    session.progress()
    session.settle().assert_ok()


def _wait_for_new_commit(log: Path, timeout: float = 120.0) -> None:
    """Wait for a commit file in the Delta log `log` newer than those there now."""
    commits = set(log.glob("*.json"))
    deadline = time.monotonic() + timeout
    while not set(log.glob("*.json")) - commits:
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f} s for a commit in {log}")
        time.sleep(0.01)


# How many batches may commit their alerts before the test catches one between its commits.
MID_BATCH_ATTEMPTS = 20


def test_continuous_analytics_sigkilled_mid_batch_is_restarted_by_its_sensor(
    session: Session,
) -> None:
    harness = session.harness
    killed = harness.active_run(ANALYTICS_JOB)["runId"]
    delta = harness.data_dir / "delta"
    raw_log = delta / "trades_raw" / "_delta_log"
    _wait_for_new_commit(raw_log)  # the run's JVM is up and its batches are flowing
    # Looked up now: reading a run's events takes longer than what is left of a batch after its
    # trades_raw commit (its windows and alerts, about 0.1 s).
    pids = harness.run_pids(killed)
    # A batch commits trades_raw first, its windows and alerts after. At each new trades_raw
    # commit the run's processes are stopped where they are (SIGSTOP); a batch that already
    # committed its alerts goes on (SIGCONT), and the next one is tried.
    for _ in range(MID_BATCH_ATTEMPTS):
        _wait_for_new_commit(raw_log)
        harness.signal_processes(pids, signal.SIGSTOP)
        killed_in = _newest_batch(delta / "trades_raw")
        if _newest_batch(delta / "price_alerts") < killed_in:
            break
        harness.signal_processes(pids, signal.SIGCONT)
    else:
        pytest.fail(f"{MID_BATCH_ATTEMPTS} batches committed their alerts before a stop")
    harness.kill_processes(pids, f"run {killed} of {ANALYTICS_JOB}")
    _wait_for_status(session, killed, "FAILURE", 90)
    restarted = harness.wait_for_run_started(
        ANALYTICS_JOB, after=harness.last_fault_time, timeout=300
    )
    assert restarted != killed
    session.progress()
    verdict = session.settle()
    verdict.assert_ok()


def test_landing_disk_full(session: Session) -> None:
    if session.disk is None:
        pytest.skip(session.disk_skip_reason)
    harness, disk = session.harness, session.disk
    producer = harness.active_run(PRODUCER_JOB)["runId"]
    disk.fill()
    full_since = time.time()
    time.sleep(20)
    landed_while_full = [
        p for p in harness.landing_dir.glob("trades_*.json") if p.stat().st_mtime > full_since + 2
    ]
    assert landed_while_full == []
    assert harness.services.status(producer) == "STARTED"
    disk.free()
    session.progress()
    assert harness.active_run(PRODUCER_JOB)["runId"] == producer
    assert "landing disk full" in _compute_logs(session)
    session.settle().assert_ok()


@pytest.mark.parametrize("how", ["truncate", "delete"])
def test_landing_file_damaged_by_hand_is_reported_and_the_run_lives_on(
    session: Session, how: str
) -> None:
    harness = session.harness
    damaged = harness.damage_next_landing_file(how)
    analytics = harness.wait_for_run_started(
        ANALYTICS_JOB, after=harness.last_fault_time, timeout=300
    )
    session.progress()
    assert harness.active_run(ANALYTICS_JOB)["runId"] == analytics
    if how == "truncate":
        # The cut-off last line is quarantined with its file and a reason.
        assert _quarantined_from(session, damaged.name)
    # A deleted file leaves no row behind; the analytics' own report of it (engineer B, issue 10)
    # is not on main yet: assert it here, e.g. its name in the run's messages, once it is.
    verdict = session.settle()
    verdict.assert_ok()
    # Its trades are known to be gone (the verdict lists them apart), not counted missing.
    assert verdict.damaged


def test_dagster_daemon_restarted(session: Session) -> None:
    harness = session.harness
    producer = harness.active_run(PRODUCER_JOB)["runId"]
    analytics = harness.active_run(ANALYTICS_JOB)["runId"]
    harness.restart_daemon()
    session.progress()
    # The runs lived through it.
    assert harness.active_run(PRODUCER_JOB)["runId"] == producer
    assert harness.active_run(ANALYTICS_JOB)["runId"] == analytics
    # Their code server died with the old daemon: a crash now is caught by run monitoring, and
    # the new daemon's sensor starts a new run.
    assert harness.kill_analytics()
    _wait_for_status(session, analytics, "FAILURE", 120)
    harness.wait_for_run_started(ANALYTICS_JOB, after=harness.last_fault_time, timeout=300)
    session.progress()
    # Terminating the orphaned producer (in settle) goes to its process: its server is gone.
    session.settle().assert_ok()


def test_the_session_ran_each_kind_of_fault(session: Session) -> None:
    # The verdicts compared alerts that exist (each was judged equal to the reference's).
    assert _rows_in(session.harness.data_dir / "delta" / "price_alerts") > 0
    stats = session.harness.replay.stats
    assert stats.market.trades_corrupted >= 25
    assert stats.market.trades_withheld >= 100
    assert stats.market.trades_hidden_from_rest >= 40
