"""The watch of a run that follows the producer, against a real Dagster instance."""

from __future__ import annotations

import threading

import dagster as dg

from crypto_assets.orchestration.ingestion import PRODUCER_JOB
from crypto_assets.orchestration.producer_watch import ProducerWatch


def test_the_watch_stops_the_query_once_no_producer_run_is_active(defs, instance):
    job = defs.resolve_job_def(PRODUCER_JOB)
    first = instance.create_run_for_job(job, status=dg.DagsterRunStatus.STARTING)
    stop = threading.Event()
    watch = ProducerWatch(instance, poll_seconds=0.05)
    watch.start(stop)
    assert not stop.wait(0.5)  # a producer run starting counts as active
    # Another producer run starts before the first ends: the watch follows it too.
    second = instance.create_run_for_job(job, status=dg.DagsterRunStatus.STARTED)
    instance.report_run_canceled(first, "ended")
    assert not stop.wait(0.5)
    assert not watch.producer_ended
    instance.report_run_failed(second, "ended")
    assert stop.wait(5)
    watch.join()
    assert watch.producer_ended


def test_a_stop_from_elsewhere_ends_the_watch_without_a_producer_end(defs, instance):
    instance.create_run_for_job(
        defs.resolve_job_def(PRODUCER_JOB), status=dg.DagsterRunStatus.STARTED
    )
    stop = threading.Event()
    watch = ProducerWatch(instance, poll_seconds=0.05)
    watch.start(stop)
    stop.set()  # what a termination of the run does
    watch.join()
    assert not watch.producer_ended
