"""The worker-thread helper: results and errors cross threads, reports are spaced, stop is run."""

from __future__ import annotations

import itertools
import queue
import threading
import time

import dagster as dg
import pytest

from crypto_assets.orchestration.worker import run_in_worker


def test_the_result_comes_back_and_stop_is_called_once_the_work_returns():
    stops: list[str] = []
    result = run_in_worker(
        lambda: 42, lambda: stops.append("stop"), queue.Queue(), print, name="answer"
    )
    assert result == 42
    assert stops == ["stop"]


def test_an_exception_of_the_work_is_raised_in_the_calling_thread():
    def work() -> None:
        raise ValueError("disk full")

    with pytest.raises(ValueError, match="disk full"):
        run_in_worker(work, lambda: None, queue.Queue(), print, name="failing")


def test_updates_faster_than_the_interval_fold_into_the_newest():
    updates: queue.Queue[int] = queue.Queue()
    reported: list[tuple[float, int]] = []

    def work() -> None:
        # 30 updates over 1.5 s or more: a report each 0.6 s at most, never one per update.
        for number in range(1, 31):
            updates.put(number)
            time.sleep(0.05)
        time.sleep(0.8)  # room for the last one to be reported

    started = time.monotonic()
    run_in_worker(
        work,
        lambda: None,
        updates,
        lambda n: reported.append((time.monotonic() - started, n)),
        name="updates",
        min_interval_seconds=0.6,
    )
    numbers = [n for _, n in reported]
    assert 2 <= len(reported) <= (time.monotonic() - started) / 0.6 + 1 < 30
    assert numbers == sorted(numbers)
    assert numbers[-1] == 30  # nothing stays unreported while the work runs long enough
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(reported)]
    assert all(gap >= 0.6 - 0.01 for gap in gaps)
    assert reported[0][0] >= 0.6 - 0.01


def test_on_each_sees_every_update_while_reports_fold_them():
    updates: queue.Queue[int] = queue.Queue()
    seen: list[int] = []
    reported: list[int] = []

    def work() -> None:
        for number in range(1, 21):
            updates.put(number)
            time.sleep(0.02)
        time.sleep(0.6)  # room for the last one to be seen

    run_in_worker(
        work,
        lambda: None,
        updates,
        reported.append,
        name="each",
        min_interval_seconds=10.0,
        on_each=seen.append,
    )
    assert seen == list(range(1, 21))
    assert reported == []  # the first report would be due after 10 s


def test_an_interruption_while_reporting_stops_the_work_and_waits_for_it():
    stop = threading.Event()
    finished: list[bool] = []
    updates: queue.Queue[int] = queue.Queue()

    def work() -> str:
        updates.put(1)
        stop.wait(timeout=30)
        time.sleep(0.2)  # the work lands what it has after being told to stop
        finished.append(True)
        return "stopped"

    def report(update: int) -> None:
        # What Dagster raises in the op's thread when the run is terminated.
        raise dg.DagsterExecutionInterruptedError("terminated from the UI")

    with pytest.raises(dg.DagsterExecutionInterruptedError):
        run_in_worker(work, stop.set, updates, report, name="interrupted")
    assert stop.is_set()
    assert finished == [True]  # joined before the interruption propagated


def test_an_interruption_named_in_stop_on_is_a_stop_request_and_the_result_comes_back():
    stopping = threading.Event()
    updates: queue.Queue[int] = queue.Queue()
    updates.put(1)

    def work() -> str:
        stopping.wait(timeout=30)
        return "landed"

    def report(update: int) -> None:
        raise dg.DagsterExecutionInterruptedError("terminated from the UI")

    result = run_in_worker(
        work,
        stopping.set,
        updates,
        report,
        name="stoppable",
        stop_on=(dg.DagsterExecutionInterruptedError,),
    )
    assert result == "landed"
    assert stopping.is_set()


def test_an_interruption_not_in_stop_on_still_propagates_after_stopping():
    stopping = threading.Event()
    updates: queue.Queue[int] = queue.Queue()
    updates.put(1)

    def report(update: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_in_worker(
            lambda: stopping.wait(timeout=30),
            stopping.set,
            updates,
            report,
            name="interrupted",
            stop_on=(dg.DagsterExecutionInterruptedError,),
        )
    assert stopping.is_set()
