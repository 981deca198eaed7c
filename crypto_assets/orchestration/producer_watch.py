"""The watch that ends a continuous analytics run which follows the producer.

`landing_files_sensor` starts a continuous `streaming_analytics_job` run with `follow_producer`
while a `binance_producer_job` run is queued or running. In that run a `ProducerWatch` asks the
Dagster instance every `FOLLOW_POLL_SECONDS` whether a producer run is still active; once none
is, it sets the query's stop event (the one a termination sets), so the query stops between
batches and the run drains what landed last (`analytics_assets.run_continuous`).
"""

from __future__ import annotations

import logging
import threading

import dagster as dg

from crypto_assets.orchestration.ingestion import PRODUCER_JOB
from crypto_assets.orchestration.runs import active_run

logger = logging.getLogger(__name__)

# How often a following run asks the instance about producer runs: one run-storage query.
FOLLOW_POLL_SECONDS = 3.0


class ProducerWatch:
    """Sets a stop event once no producer run is active in `instance`, from its own thread."""

    def __init__(
        self, instance: dg.DagsterInstance, poll_seconds: float = FOLLOW_POLL_SECONDS
    ) -> None:
        self.instance = instance
        self.poll_seconds = poll_seconds
        self._ended = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def producer_ended(self) -> bool:
        """True once the watch found no producer run active (and set the stop event)."""
        return self._ended.is_set()

    def start(self, stop: threading.Event) -> None:
        """Watch until `stop` is set, by this watch or by anyone else (a termination)."""
        self._thread = threading.Thread(
            target=self._watch, args=(stop,), name="producer-watch", daemon=True
        )
        self._thread.start()

    def join(self) -> None:
        """Wait for the watch's thread, once `stop` is set."""
        if self._thread is not None:
            self._thread.join()

    def _watch(self, stop: threading.Event) -> None:
        while not stop.wait(self.poll_seconds):
            try:
                producing = active_run(self.instance, PRODUCER_JOB) is not None
            except Exception as exc:  # the run storage busy or away: ask again next time
                logger.warning("cannot read the producer runs (asking again): %s", exc)
                continue
            if not producing:
                self._ended.set()
                stop.set()
                return
