"""MonitoredRunLauncher under run monitoring: a real instance from the demo dagster.yaml, real
processes killed with SIGKILL."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dagster as dg
import grpc
import pytest

# Test-only internals, none with a public equivalent: the engine event Dagster itself logs when a
# run process starts (its pid), the tag naming the code server that launched a run, and one pass
# of the monitoring daemon over a started run.
from dagster._core.events import EngineEventData
from dagster._core.storage.tags import GRPC_INFO_TAG
from dagster._daemon.monitoring.run_monitoring import monitor_started_run

from crypto_assets.orchestration.analytics_assets import ANALYTICS_JOB
from crypto_assets.orchestration.dagster_internals import WorkerStatus
from crypto_assets.orchestration.instance_config import write_instance_yaml
from crypto_assets.orchestration.run_launcher import (
    MonitoredRunLauncher,
    process_alive,
    run_process_pid,
)
from crypto_assets_tests.dagster_services import free_port


@pytest.fixture
def demo_instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    """A Dagster instance on the dagster.yaml `make ui` writes."""
    home = tmp_path / "dagster_home"
    write_instance_yaml(home / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance


@pytest.fixture
def run_process() -> Iterator[subprocess.Popen]:
    """A real process standing in for a run's process."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield process
    process.kill()
    process.wait()


def _started_run(instance: dg.DagsterInstance, defs: dg.Definitions, pid: int) -> dg.DagsterRun:
    """A STARTED run whose process logged its pid, as Dagster's run process does."""
    run = instance.create_run_for_job(
        defs.resolve_job_def(ANALYTICS_JOB), status=dg.DagsterRunStatus.STARTED
    )
    instance.report_engine_event(
        f"Started process for run (pid: {pid}).", run, EngineEventData.in_process(pid)
    )
    return run


def test_the_demo_instance_monitors_runs_with_the_launcher(demo_instance):
    assert isinstance(demo_instance.run_launcher, MonitoredRunLauncher)
    assert demo_instance.run_launcher.supports_check_run_worker_health
    assert demo_instance.run_monitoring_enabled
    assert demo_instance.run_monitoring_poll_interval_seconds == 15
    assert demo_instance.run_monitoring_max_resume_run_attempts == 0


def test_a_run_is_healthy_while_its_process_lives_and_failed_once_killed(
    demo_instance, defs, run_process
):
    run = _started_run(demo_instance, defs, run_process.pid)
    assert run_process_pid(demo_instance, run.run_id) == run_process.pid
    launcher = demo_instance.run_launcher
    assert launcher.check_run_worker_health(run).status == WorkerStatus.RUNNING
    run_process.kill()
    # Wait until it has exited, without reaping it: a zombie is a dead process too.
    os.waitid(os.P_PID, run_process.pid, os.WEXITED | os.WNOWAIT)
    assert not process_alive(run_process.pid)
    health = launcher.check_run_worker_health(run)
    assert health.status == WorkerStatus.FAILED
    assert str(run_process.pid) in health.msg


def test_run_monitoring_marks_the_dead_run_failed(demo_instance, defs, run_process):
    run = _started_run(demo_instance, defs, run_process.pid)
    (record,) = demo_instance.get_run_records(dg.RunsFilter(run_ids=[run.run_id]))
    logger = logging.getLogger("test_run_launcher")
    # What the monitoring daemon does every poll_interval_seconds for each STARTED run.
    monitor_started_run(demo_instance, None, record, logger)
    assert demo_instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED
    run_process.kill()
    run_process.wait()
    monitor_started_run(demo_instance, None, record, logger)
    assert demo_instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE


def test_a_run_without_a_pid_or_already_finished_is_not_failed(demo_instance, defs):
    job = defs.resolve_job_def(ANALYTICS_JOB)
    launcher = demo_instance.run_launcher
    starting = demo_instance.create_run_for_job(job, status=dg.DagsterRunStatus.STARTED)
    assert launcher.check_run_worker_health(starting).status == WorkerStatus.RUNNING
    # A run that ended (its process gone) between monitoring's read and the check.
    ended = _started_run(demo_instance, defs, 2**22 + 12345)
    demo_instance.report_run_canceled(ended, "terminated")
    assert launcher.check_run_worker_health(ended).status == WorkerStatus.SUCCESS


@pytest.fixture
def interruptible_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen, Path]]:
    """A stand-in run process, asleep, that writes `stopped` to its marker file on SIGINT."""
    marker = tmp_path / "interrupted"
    ready = tmp_path / "ready"
    script = (
        # SIGINT is KeyboardInterrupt even where the test runs in the background (SIG_IGN).
        "import signal, sys, time\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        f"try:\n    open({str(ready)!r}, 'w').close()\n    time.sleep(300)\n"
        f"except KeyboardInterrupt:\n    open({str(marker)!r}, 'w').write('stopped')\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script])
    try:
        # The interpreter has reached its sleep, inside the KeyboardInterrupt handler.
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert time.monotonic() < deadline, "the stand-in run process never started"
            time.sleep(0.05)
        yield process, marker
    finally:
        process.kill()
        process.wait()


def _launched_by(instance: dg.DagsterInstance, run: dg.DagsterRun, port: int) -> None:
    """Tag `run` as launched by the code server on `port`, as Dagster does."""
    instance.add_run_tags(
        run.run_id, {GRPC_INFO_TAG: json.dumps({"host": "127.0.0.1", "port": port})}
    )


def test_terminate_interrupts_the_run_process_when_its_code_server_is_gone(
    demo_instance, defs, interruptible_process
):
    process, marker = interruptible_process
    run = _started_run(demo_instance, defs, process.pid)
    _launched_by(demo_instance, run, free_port())  # a port nothing listens on any more
    assert demo_instance.run_launcher.terminate(run.run_id)
    assert process.wait(timeout=120) == 0
    assert marker.read_text() == "stopped"
    messages = [e.message for e in demo_instance.all_logs(run.run_id)]
    assert any(f"interrupted run process {process.pid}" in m for m in messages)


def test_terminate_interrupts_the_run_process_when_its_code_server_never_answers(
    demo_instance, defs, interruptible_process
):
    # A code server shutting down (its daemon restarted) still takes the request but answers
    # nothing: Terminate then waited for gRPC's 120 s deadline before interrupting the run itself.
    process, marker = interruptible_process
    answered = threading.Event()  # never set: the server holds every call
    silent = grpc.server(ThreadPoolExecutor(max_workers=2))
    silent.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "api.DagsterApi",
                {
                    "CancelExecution": grpc.unary_unary_rpc_method_handler(
                        lambda request, context: answered.wait(300) and b""
                    )
                },
            ),
        )
    )
    port = silent.add_insecure_port("127.0.0.1:0")
    silent.start()
    try:
        run = _started_run(demo_instance, defs, process.pid)
        _launched_by(demo_instance, run, port)
        started = time.monotonic()
        assert demo_instance.run_launcher.terminate(run.run_id)
        waited = time.monotonic() - started
        assert process.wait(timeout=30) == 0
        assert marker.read_text() == "stopped"
        # Not a timing figure: the run must not wait for the deadline of a server that is gone.
        assert waited < 60, f"Terminate waited {waited:.0f} s for a code server that never answers"
    finally:
        silent.stop(grace=None)


def test_terminate_of_a_finished_run_signals_nothing(demo_instance, defs, run_process):
    run = _started_run(demo_instance, defs, run_process.pid)
    demo_instance.report_run_canceled(run, "already over")
    assert not demo_instance.run_launcher.terminate(run.run_id)
    assert run_process.poll() is None
