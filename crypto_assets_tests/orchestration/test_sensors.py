"""The sensors against a real Dagster instance with real run records."""

from __future__ import annotations

import time

import dagster as dg
import pytest
from dagster._core.remote_origin import (
    InProcessCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

from crypto_assets.orchestration.ingestion import PRODUCER_JOB, PRODUCER_OP
from crypto_assets.orchestration.runs import RestartBackoff
from crypto_assets.orchestration.sensors import PRODUCER_BACKOFF, producer_decision
from crypto_assets.settings import Settings
from crypto_assets_tests.orchestration.landing_for_tests import write_landing_file


def _producer_sensor(defs: dg.Definitions) -> dg.SensorDefinition:
    return defs.resolve_sensor_def("binance_producer_sensor")


def _evaluate(sensor: dg.SensorDefinition, instance: dg.DagsterInstance, cursor: str | None, **kw):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, **kw)
    return sensor(context)


def _submit(instance: dg.DagsterInstance, job: dg.JobDefinition, request: dg.RunRequest):
    """What the daemon does with a run request: create the run, queued, with its code origin."""
    origin = RemoteJobOrigin(
        repository_origin=RemoteRepositoryOrigin(
            code_location_origin=InProcessCodeLocationOrigin(
                LoadableTargetOrigin(module_name="crypto_assets.definitions")
            ),
            repository_name="__repository__",
        ),
        job_name=job.name,
    )
    return instance.create_run_for_job(
        job,
        run_config=request.run_config,
        tags=request.tags,
        status=dg.DagsterRunStatus.QUEUED,
        remote_job_origin=origin,
    )


def _failed_run(instance: dg.DagsterInstance, job: dg.JobDefinition) -> dg.DagsterRun:
    run = instance.create_run_for_job(job, status=dg.DagsterRunStatus.STARTED)
    instance.report_run_failed(run, "producer could not connect")
    return run


def test_producer_sensor_starts_one_continuous_run(defs, instance):
    sensor = _producer_sensor(defs)
    result = _evaluate(sensor, instance, None)
    assert isinstance(result, dg.SensorResult)
    (request,) = result.run_requests
    assert request.run_config == {"ops": {PRODUCER_OP: {"config": {"continuous": True}}}}
    assert result.cursor == "1"
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    assert sensor.job_name == PRODUCER_JOB


def test_producer_sensor_never_starts_a_second_run(defs, instance):
    sensor = _producer_sensor(defs)
    job = defs.resolve_job_def(PRODUCER_JOB)
    first = _evaluate(sensor, instance, None)
    run = _submit(instance, job, first.run_requests[0])
    assert run.status == dg.DagsterRunStatus.QUEUED
    again = _evaluate(sensor, instance, first.cursor)
    assert isinstance(again, dg.SkipReason)
    assert run.run_id in again.skip_message


@pytest.mark.parametrize(
    "status",
    [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING],
)
def test_producer_sensor_skips_while_a_run_is_active(defs, instance, status):
    run = instance.create_run_for_job(defs.resolve_job_def(PRODUCER_JOB), status=status)
    result = _evaluate(_producer_sensor(defs), instance, "7")
    assert isinstance(result, dg.SkipReason)
    assert run.run_id in result.skip_message


def test_producer_sensor_restarts_after_the_run_ended(defs, instance):
    sensor = _producer_sensor(defs)
    job = defs.resolve_job_def(PRODUCER_JOB)
    run = instance.create_run_for_job(job, status=dg.DagsterRunStatus.STARTED)
    instance.report_run_canceled(run, "terminated from the UI")
    result = _evaluate(sensor, instance, "4")
    assert isinstance(result, dg.SensorResult)
    assert result.cursor == "5"
    assert result.run_requests[0].run_key == "producer-5"


def test_producer_sensor_backs_off_after_failures(defs, instance):
    sensor = _producer_sensor(defs)
    job = defs.resolve_job_def(PRODUCER_JOB)
    for _ in range(3):
        _failed_run(instance, job)
    result = _evaluate(sensor, instance, "3")
    assert isinstance(result, dg.SkipReason)
    assert "3 failed producer run(s)" in result.skip_message


def test_backoff_grows_with_failures_and_ends(defs, instance):
    job = defs.resolve_job_def(PRODUCER_JOB)
    backoff = RestartBackoff(base_seconds=10.0, max_seconds=25.0)
    assert [backoff.delay(n) for n in range(5)] == [0.0, 10.0, 20.0, 25.0, 25.0]
    _failed_run(instance, job)
    _failed_run(instance, job)
    (newest,) = instance.get_run_records(dg.RunsFilter(job_name=PRODUCER_JOB), limit=1)
    ended = newest.end_time
    assert ended is not None
    waiting = producer_decision(instance, "2", ended + 19.0, backoff)
    assert isinstance(waiting, dg.SkipReason)
    assert "next start in 1 s" in waiting.skip_message
    started = producer_decision(instance, "2", ended + 20.5, backoff)
    assert isinstance(started, dg.SensorResult)
    assert started.run_requests[0].tags["crypto_assets/consecutive_failures"] == "2"


def test_a_success_resets_the_backoff(defs, instance):
    job = defs.resolve_job_def(PRODUCER_JOB)
    _failed_run(instance, job)
    instance.create_run_for_job(job, status=dg.DagsterRunStatus.SUCCESS)
    decision = producer_decision(instance, None, time.time(), PRODUCER_BACKOFF)
    assert isinstance(decision, dg.SensorResult)


def _landing_sensor(defs):
    return defs.resolve_sensor_def("landing_files_sensor")


def _landing_context(defs, instance, cursor):
    return dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"lakehouse": defs.resources["lakehouse"]}
    )


def test_landing_sensor_one_run_per_burst_and_each_file_once(defs, instance, settings: Settings):
    sensor = _landing_sensor(defs)
    assert isinstance(sensor(_landing_context(defs, instance, None)), dg.SkipReason)
    burst = [f"trades_20240809_0000{i:02d}_{i:06x}.json" for i in range(40)]
    for name in burst:
        write_landing_file(settings.landing_dir, name)
    # Temporary and hidden names are never landing files.
    write_landing_file(settings.landing_dir, ".trades_20240809_000100_abcdef.json")
    write_landing_file(settings.landing_dir, "_trades_20240809_000100_abcdef.json")

    first = sensor(_landing_context(defs, instance, None))
    assert isinstance(first, dg.SensorResult)
    assert len(first.run_requests) == 1
    assert first.run_requests[0].tags["crypto_assets/new_landing_files"] == str(len(burst))
    assert first.cursor == max(burst)

    again = sensor(_landing_context(defs, instance, first.cursor))
    assert isinstance(again, dg.SkipReason)

    later = ["trades_20240809_000200_000001.json", "trades_20240809_000201_000002.json"]
    for name in later:
        write_landing_file(settings.landing_dir, name)
    second = sensor(_landing_context(defs, instance, first.cursor))
    assert second.run_requests[0].tags["crypto_assets/new_landing_files"] == "2"
    assert second.run_requests[0].run_key == later[-1]
    assert second.cursor == later[-1]


def test_landing_sensor_waits_for_the_active_analytics_run(defs, instance, settings):
    sensor = _landing_sensor(defs)
    write_landing_file(settings.landing_dir, "trades_20240809_000000_000001.json")
    job = defs.resolve_job_def("streaming_analytics_job")
    run = instance.create_run_for_job(job, status=dg.DagsterRunStatus.STARTED)
    waiting = sensor(_landing_context(defs, instance, None))
    assert isinstance(waiting, dg.SkipReason)
    assert run.run_id in waiting.skip_message
    instance.report_run_failed(run)
    # The file that waited still triggers once the run is over: the cursor had not moved.
    assert isinstance(sensor(_landing_context(defs, instance, None)), dg.SensorResult)
