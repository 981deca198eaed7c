"""Dagster's default run launcher, plus the health check run monitoring needs to fail dead runs.

A run's process is a child of the code server that launched it. When only the run's process dies
(SIGKILL, out of memory) that server marks the run FAILURE within a second. When the server dies
with it (the daemon's process group killed, a reboot), nobody does: `DefaultRunLauncher` has no
health check, so the run stays STARTED for ever and the sensors that keep one producer and one
continuous analytics run alive never start another. `MonitoredRunLauncher` answers run
monitoring's question from the run's own record: the run process's pid, which Dagster logs when
the process starts ("Started process for run (pid: N)"), must still be alive. The monitoring
daemon then marks a dead run FAILURE, and the sensors restart it. It holds on one host, where
the local deployment's code servers and run processes live (also when Spark runs on Databricks:
the run process that drives it is local).

Terminate has the same blind spot: `DefaultRunLauncher` asks the code server that launched the
run to interrupt it, and with that server gone the run stays CANCELING while its process keeps
working (a producer still landing files beside the one its sensor starts next). A server that is
shutting down (its daemon restarted; it waits for its runs) is worse: it takes the request and
never answers, and Terminate waited for gRPC's deadline, 120 s. Here the server gets
`SERVER_ANSWER_SECONDS` to answer; when it is gone or silent, the run's process is interrupted
directly (SIGINT, what the server would send), so it stops as cleanly as from the UI.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import threading

import dagster as dg

from crypto_assets.orchestration.dagster_internals import (
    CheckRunHealthResult,
    DagsterUserCodeUnreachableError,
    WorkerStatus,
)

logger = logging.getLogger(__name__)

_PID = "pid"
# How long Terminate waits for the code server that launched a run before interrupting the run's
# process itself (a live server answers in milliseconds).
SERVER_ANSWER_SECONDS = 5.0


def run_process_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The pid of the run's newest process, from its "Started process for run" event; or None."""
    events = instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
    for event in reversed(events):
        data = event.dagster_event.engine_event_data if event.dagster_event else None
        value = data.metadata.get(_PID) if data is not None else None
        if value is not None:
            return int(value.value)
    return None


def process_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            # The state follows the parenthesised command name; Z: exited, not yet reaped.
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class MonitoredRunLauncher(dg.DefaultRunLauncher):
    """`DefaultRunLauncher` whose runs run monitoring can check: alive while their pid is."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        """Run monitoring may call `check_run_worker_health`."""
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        """RUNNING while the run's process lives; FAILED once it is gone and the run unfinished."""
        current = self._instance.get_run_by_id(run.run_id)
        if current is None or current.is_finished:
            # It ended between monitoring's read and this check: nothing to fail.
            return CheckRunHealthResult(WorkerStatus.SUCCESS, "the run has finished")
        pid = run_process_pid(self._instance, run.run_id)
        if pid is None:
            # Not started yet, or started elsewhere: no evidence it died.
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no run process pid recorded yet")
        if process_alive(pid):
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"run process {pid} is alive")
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"run process {pid} is gone (killed, or with the Dagster process that launched it)",
        )

    def terminate(self, run_id: str) -> bool:
        """Interrupt the run through its code server; through its pid when that server is gone
        or has not answered within `SERVER_ANSWER_SECONDS`."""
        answers: queue.Queue[bool | BaseException] = queue.Queue()

        def ask_server() -> None:
            try:
                answers.put(super(MonitoredRunLauncher, self).terminate(run_id))
            except BaseException as exc:  # handed to the caller below
                answers.put(exc)

        # A thread, so a silent server costs SERVER_ANSWER_SECONDS, not the gRPC deadline; the
        # thread ends at that deadline on its own.
        threading.Thread(target=ask_server, name=f"terminate-{run_id[:8]}", daemon=True).start()
        try:
            answer = answers.get(timeout=SERVER_ANSWER_SECONDS)
        except queue.Empty:
            logger.warning("the code server of run %s is silent; interrupting the run", run_id)
            answer = False
        if isinstance(answer, DagsterUserCodeUnreachableError):
            logger.warning("the code server of run %s is unreachable", run_id)
        elif isinstance(answer, BaseException):
            raise answer
        elif answer:
            return True
        return self._interrupt_run_process(run_id)

    def _interrupt_run_process(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            return False
        pid = run_process_pid(self._instance, run_id)
        if pid is None or not process_alive(pid):
            return False
        os.kill(pid, signal.SIGINT)
        self._instance.report_engine_event(
            f"The code server that launched this run is gone: interrupted run process {pid} "
            "(SIGINT), as Terminate does through the server.",
            run,
            cls=type(self),
        )
        return True
