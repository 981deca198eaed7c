"""Run a blocking call in a worker thread while the op's own thread reports its progress.

Dagster raises in the op's thread when a run is terminated, so long work (the producer, a
continuous query) runs in a worker and the op's thread only waits on a queue of progress updates:
whatever interrupts it stops the work, waits for it to finish cleanly, then propagates; an
exception of the worker is re-raised in the op's thread, where Dagster sees it.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

Result = TypeVar("Result")
Update = TypeVar("Update")

# How long the op's thread blocks on the queue before it looks at the worker again.
_POLL_SECONDS = 0.5


class _Worker(threading.Thread, Generic[Result]):
    """Calls `work` once and keeps its result or its exception for the calling thread."""

    def __init__(self, work: Callable[[], Result], name: str) -> None:
        super().__init__(name=name, daemon=True)
        self._work = work
        self._result: Result | None = None
        self._error: BaseException | None = None

    def run(self) -> None:
        try:
            self._result = self._work()
        except BaseException as exc:  # re-raised in the calling thread, which Dagster watches
            self._error = exc

    def outcome(self) -> Result:
        """The result of `work`, or its exception raised here."""
        if self._error is not None:
            raise self._error
        return self._result  # type: ignore[return-value]


def run_in_worker(
    work: Callable[[], Result],
    stop: Callable[[], None],
    updates: queue.Queue[Update],
    report: Callable[[Update], None],
    *,
    name: str,
    min_interval_seconds: float = 0.0,
    stop_on: tuple[type[BaseException], ...] = (),
    on_each: Callable[[Update], None] | None = None,
) -> Result:
    """`work()` in a worker thread; `report` its newest update at most once per interval.

    Updates (never None) arriving faster than `min_interval_seconds` are folded into the newest
    one; `on_each`, when given, sees every update as it arrives, in this thread. Whatever
    interrupts this thread (Dagster's termination included) calls `stop()` and waits for `work`
    to return before the exception propagates; an exception of `work` is raised here. An
    interruption of a type in `stop_on` is a stop request, not an error: `work`'s
    result is returned as if it had ended by itself.
    """
    worker = _Worker(work, name)
    worker.start()
    next_report = time.monotonic() + min_interval_seconds
    newest: Update | None = None  # the newest update not reported yet
    try:
        while worker.is_alive():
            with contextlib.suppress(queue.Empty):
                newest = updates.get(timeout=_POLL_SECONDS)
                if on_each is not None:
                    on_each(newest)
            if newest is not None and time.monotonic() >= next_report:
                report(newest)
                newest, next_report = None, time.monotonic() + min_interval_seconds
    except stop_on:
        pass  # `finally` stops the work; its result is the answer
    finally:
        stop()
        worker.join()
    return worker.outcome()
