"""The sensors against a real Dagster instance with real run records."""

from __future__ import annotations

import time

import dagster as dg
import pytest

# Test-only internals: the code origin the daemon gives a run it creates from a run request;
# no public API builds one without a loaded code location.
from dagster._core.remote_origin import (
    InProcessCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

from crypto_assets.analytics.lakehouse import LandingFile
from crypto_assets.analytics.schema import QUERY_NAME
from crypto_assets.backoff import RestartBackoff
from crypto_assets.local.lakehouse import LocalLakehouse
from crypto_assets.local.layout import LocalLayout
from crypto_assets.orchestration.analytics_assets import ANALYTICS_JOB
from crypto_assets.orchestration.dagster_internals import InstigatorStatus
from crypto_assets.orchestration.definitions import build_definitions
from crypto_assets.orchestration.ingestion import PRODUCER_JOB, PRODUCER_OP
from crypto_assets.orchestration.runs import sensor_is_on
from crypto_assets.orchestration.sensors import (
    PRODUCER_BACKOFF,
    build_landing_files_sensor,
    continuous_analytics_decision,
    files_decision,
    producer_decision,
)
from crypto_assets.settings import Settings, SettingsError
from crypto_assets_tests.landing_folder import landing_of
from crypto_assets_tests.local.file_source_checkpoint import set_mtime, write_checkpoint
from crypto_assets_tests.orchestration.instigator_states import turn_sensor
from crypto_assets_tests.orchestration.landing_for_tests import write_landing_file


def _producer_sensor(defs: dg.Definitions) -> dg.SensorDefinition:
    return defs.resolve_sensor_def("binance_producer_sensor")


def _evaluate(sensor: dg.SensorDefinition, instance: dg.DagsterInstance, cursor: str | None, **kw):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, **kw)
    return sensor(context)


def _submit(
    instance: dg.DagsterInstance,
    job: dg.JobDefinition,
    request: dg.RunRequest,
    status: dg.DagsterRunStatus = dg.DagsterRunStatus.QUEUED,
):
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
        status=status,
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
        write_landing_file(landing_of(settings), name)
    # Temporary and hidden names are never landing files.
    write_landing_file(landing_of(settings), ".trades_20240809_000100_abcdef.json")
    write_landing_file(landing_of(settings), "_trades_20240809_000100_abcdef.json")

    first = sensor(_landing_context(defs, instance, None))
    assert isinstance(first, dg.SensorResult)
    assert len(first.run_requests) == 1
    assert first.run_requests[0].tags["crypto_assets/new_landing_files"] == str(len(burst))
    assert first.cursor == max(burst)

    again = sensor(_landing_context(defs, instance, first.cursor))
    assert isinstance(again, dg.SkipReason)

    later = ["trades_20240809_000200_000001.json", "trades_20240809_000201_000002.json"]
    for name in later:
        write_landing_file(landing_of(settings), name)
    second = sensor(_landing_context(defs, instance, first.cursor))
    assert second.run_requests[0].tags["crypto_assets/new_landing_files"] == "2"
    assert second.run_requests[0].run_key == later[-1]
    assert second.cursor == later[-1]


def test_landing_sensor_waits_for_the_active_analytics_run(defs, instance, settings):
    sensor = _landing_sensor(defs)
    write_landing_file(landing_of(settings), "trades_20240809_000000_000001.json")
    job = defs.resolve_job_def("streaming_analytics_job")
    run = instance.create_run_for_job(job, status=dg.DagsterRunStatus.STARTED)
    waiting = sensor(_landing_context(defs, instance, None))
    assert isinstance(waiting, dg.SkipReason)
    assert run.run_id in waiting.skip_message
    instance.report_run_failed(run)
    # The file that waited still triggers once the run is over: the cursor had not moved.
    assert isinstance(sensor(_landing_context(defs, instance, None)), dg.SensorResult)


def _continuous_sensor(defs: dg.Definitions) -> dg.SensorDefinition:
    return defs.resolve_sensor_def("continuous_analytics_sensor")


def _continuous_config(trigger: float) -> dict:
    return {
        "ops": {
            "streaming_analytics": {"config": {"mode": "continuous", "trigger_seconds": trigger}}
        }
    }


def test_continuous_sensor_is_off_by_default_and_starts_one_continuous_run(defs, instance):
    sensor = _continuous_sensor(defs)
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    assert sensor.job_name == ANALYTICS_JOB
    result = _evaluate(sensor, instance, None)
    assert isinstance(result, dg.SensorResult)
    (request,) = result.run_requests
    # ANALYTICS_TRIGGER_SECONDS' default, 1 s.
    assert request.run_config == _continuous_config(1.0)
    assert request.run_key == "continuous-analytics-1"
    assert request.tags["crypto_assets/trigger"] == "continuous_analytics_sensor"
    assert result.cursor == "1"
    # The run config is one the job accepts.
    validated = dg.validate_run_config(defs.resolve_job_def(ANALYTICS_JOB), request.run_config)
    assert validated["ops"]["streaming_analytics"]["config"]["mode"] == "continuous"


def test_the_trigger_comes_from_analytics_trigger_seconds(
    settings: Settings, instance, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("ANALYTICS_TRIGGER_SECONDS", "2.5")
    from_env = Settings.from_env().replace(data_dir=settings.data_dir)
    defs = build_definitions(from_env)
    result = _evaluate(_continuous_sensor(defs), instance, "3")
    assert result.run_requests[0].run_config == _continuous_config(2.5)
    assert result.run_requests[0].run_key == "continuous-analytics-4"
    # A setting of the sensor, not of a run: the settings resource has no such run-config field.
    assert "analytics_trigger_seconds" not in type(defs.resources["settings"]).model_fields
    assert "watermark_delay" in type(defs.resources["settings"]).model_fields
    with pytest.raises(SettingsError, match="analytics_trigger_seconds"):
        settings.replace(analytics_trigger_seconds=0)


@pytest.mark.parametrize("mode", ["continuous", "once"])
@pytest.mark.parametrize(
    "status",
    [
        dg.DagsterRunStatus.QUEUED,
        dg.DagsterRunStatus.STARTING,
        dg.DagsterRunStatus.STARTED,
        dg.DagsterRunStatus.CANCELING,
    ],
)
def test_continuous_sensor_never_starts_a_second_analytics_run(defs, instance, status, mode):
    job = defs.resolve_job_def(ANALYTICS_JOB)
    config = {"ops": {"streaming_analytics": {"config": {"mode": mode}}}}
    run = _submit(instance, job, dg.RunRequest(run_config=config), status)
    result = _evaluate(_continuous_sensor(defs), instance, "1")
    assert isinstance(result, dg.SkipReason)
    assert run.run_id in result.skip_message
    assert status.value in result.skip_message


def test_continuous_sensor_restarts_a_dead_run(defs, instance):
    sensor = _continuous_sensor(defs)
    job = defs.resolve_job_def(ANALYTICS_JOB)
    first = _evaluate(sensor, instance, None)
    run = _submit(instance, job, first.run_requests[0])
    assert isinstance(_evaluate(sensor, instance, first.cursor), dg.SkipReason)
    # What the code server reports when the run's process is SIGKILLed: the run failed.
    instance.report_run_failed(run, "Run execution process for it was terminated by signal 9")
    backoff = RestartBackoff(base_seconds=10.0, max_seconds=60.0)
    (record,) = instance.get_run_records(dg.RunsFilter(run_ids=[run.run_id]))
    assert record.end_time is not None
    waiting = continuous_analytics_decision(
        instance, first.cursor, record.end_time + 5.0, 5.0, backoff
    )
    assert isinstance(waiting, dg.SkipReason)
    assert "1 failed analytics run(s): next start in 5 s" in waiting.skip_message
    restarted = continuous_analytics_decision(
        instance, first.cursor, record.end_time + 10.5, 5.0, backoff
    )
    assert isinstance(restarted, dg.SensorResult)
    (request,) = restarted.run_requests
    assert request.run_key == "continuous-analytics-2"
    assert request.run_config == _continuous_config(5.0)
    assert request.tags["crypto_assets/consecutive_failures"] == "1"


def test_continuous_sensor_backs_off_longer_after_repeated_failures(defs, instance):
    job = defs.resolve_job_def(ANALYTICS_JOB)
    for _ in range(3):
        _failed_run(instance, job)
    (newest,) = instance.get_run_records(dg.RunsFilter(job_name=ANALYTICS_JOB), limit=1)
    ended = newest.end_time
    backoff = RestartBackoff(base_seconds=10.0, max_seconds=60.0)
    # Three failures in a row: 10 * 2**2 = 40 s.
    waiting = continuous_analytics_decision(instance, "3", ended + 39.0, 5.0, backoff)
    assert isinstance(waiting, dg.SkipReason)
    assert "3 failed analytics run(s)" in waiting.skip_message
    started = continuous_analytics_decision(instance, "3", ended + 40.5, 5.0, backoff)
    assert started.run_requests[0].tags["crypto_assets/consecutive_failures"] == "3"
    # With the sensor's own backoff (30 s base) it still waits right after the third failure.
    assert isinstance(_evaluate(_continuous_sensor(defs), instance, "3"), dg.SkipReason)


@pytest.mark.parametrize("ended", ["success", "canceled"])
def test_a_stopped_continuous_run_is_started_again_while_the_sensor_is_on(defs, instance, ended):
    # A terminated continuous run stops between batches and ends SUCCESS (in-process executor).
    job = defs.resolve_job_def(ANALYTICS_JOB)
    _failed_run(instance, job)
    if ended == "success":
        instance.create_run_for_job(
            job, run_config=_continuous_config(5.0), status=dg.DagsterRunStatus.SUCCESS
        )
    else:
        run = instance.create_run_for_job(
            job, run_config=_continuous_config(5.0), status=dg.DagsterRunStatus.STARTED
        )
        instance.report_run_canceled(run, "terminated")
    result = _evaluate(_continuous_sensor(defs), instance, "2")
    assert isinstance(result, dg.SensorResult)
    # The success or cancel ended the failure streak: no backoff.
    assert result.run_requests[0].tags["crypto_assets/consecutive_failures"] == "0"


def test_landing_sensor_is_quiet_while_continuous_analytics_are_on(defs, instance, settings):
    sensor = _landing_sensor(defs)
    write_landing_file(landing_of(settings), "trades_20240809_000000_000001.json")
    turn_sensor(instance, "continuous_analytics_sensor", InstigatorStatus.RUNNING)
    quiet = sensor(_landing_context(defs, instance, None))
    assert isinstance(quiet, dg.SkipReason)
    assert "continuous_analytics_sensor is on" in quiet.skip_message
    # Turned off again: the file that landed meanwhile triggers a once-run (cursor unmoved).
    turn_sensor(instance, "continuous_analytics_sensor", InstigatorStatus.STOPPED)
    result = sensor(_landing_context(defs, instance, None))
    assert isinstance(result, dg.SensorResult)
    assert result.run_requests[0].tags["crypto_assets/trigger"] == "landing_files_sensor"


def test_other_sensors_turned_on_do_not_silence_the_landing_sensor(defs, instance, settings):
    write_landing_file(landing_of(settings), "trades_20240809_000000_000001.json")
    turn_sensor(instance, "binance_producer_sensor", InstigatorStatus.RUNNING)
    # A lingering DECLARED_IN_CODE row of a sensor that is off by default means off.
    turn_sensor(instance, "continuous_analytics_sensor", InstigatorStatus.DECLARED_IN_CODE)
    assert not sensor_is_on(instance, "continuous_analytics_sensor")
    assert isinstance(
        _landing_sensor(defs)(_landing_context(defs, instance, None)), dg.SensorResult
    )


def _follow_config() -> dict:
    return {
        "ops": {"streaming_analytics": {"config": {"mode": "continuous", "follow_producer": True}}}
    }


def _producer_run(defs, instance, status=dg.DagsterRunStatus.QUEUED) -> dg.DagsterRun:
    job = defs.resolve_job_def(PRODUCER_JOB)
    return _submit(instance, job, dg.RunRequest(run_config={}), status)


@pytest.mark.parametrize("status", [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTED])
def test_a_producer_run_is_followed_by_one_continuous_run(defs, instance, status):
    sensor = _landing_sensor(defs)
    assert sensor.minimum_interval_seconds == 5
    producer = _producer_run(defs, instance, status)
    first = sensor(_landing_context(defs, instance, None))
    assert isinstance(first, dg.SensorResult)
    (request,) = first.run_requests
    assert request.run_config == _follow_config()
    assert request.run_key == f"follow-{producer.run_id}"
    assert request.tags == {
        "crypto_assets/trigger": "landing_files_sensor",
        "crypto_assets/follows": producer.run_id,
    }
    assert first.cursor is None  # the files' cursor is not the follow run's business
    job = defs.resolve_job_def(ANALYTICS_JOB)
    config = dg.validate_run_config(job, request.run_config)["ops"]["streaming_analytics"]
    assert config["config"]["follow_producer"] is True
    assert config["config"]["trigger_seconds"] == 1.0  # ANALYTICS_TRIGGER_SECONDS
    follow = _submit(instance, job, request)
    # One follow run: while it is active the sensor starts nothing, and says why.
    again = sensor(_landing_context(defs, instance, None))
    assert isinstance(again, dg.SkipReason)
    assert producer.run_id in again.skip_message
    assert follow.run_id in again.skip_message


def test_an_active_analytics_run_goes_first_then_the_follow_run_starts(defs, instance, settings):
    sensor = _landing_sensor(defs)
    job = defs.resolve_job_def(ANALYTICS_JOB)
    once = _submit(instance, job, dg.RunRequest(), dg.DagsterRunStatus.STARTED)
    producer = _producer_run(defs, instance, dg.DagsterRunStatus.STARTED)
    write_landing_file(landing_of(settings), "trades_20240809_000000_000001.json")
    waiting = sensor(_landing_context(defs, instance, None))
    assert isinstance(waiting, dg.SkipReason)
    assert once.run_id in waiting.skip_message
    instance.report_run_failed(once)
    started = sensor(_landing_context(defs, instance, None))
    assert started.run_requests[0].run_key == f"follow-{producer.run_id}"


@pytest.mark.parametrize("ended", ["failed", "terminated"])
def test_a_producer_run_is_followed_once_then_files_take_the_once_way(
    defs, instance, settings, ended
):
    sensor = _landing_sensor(defs)
    job = defs.resolve_job_def(ANALYTICS_JOB)
    producer = _producer_run(defs, instance, dg.DagsterRunStatus.STARTED)
    request = sensor(_landing_context(defs, instance, None)).run_requests[0]
    # A terminated continuous run stops between batches and succeeds.
    status = dg.DagsterRunStatus.STARTED if ended == "failed" else dg.DagsterRunStatus.SUCCESS
    follow = _submit(instance, job, request, status)
    if ended == "failed":
        instance.report_run_failed(follow)
    # No second follow run for the same producer run: nothing landed, nothing to do.
    quiet = sensor(_landing_context(defs, instance, None))
    assert isinstance(quiet, dg.SkipReason)
    assert quiet.skip_message == "no new landing files"
    write_landing_file(landing_of(settings), "trades_20240809_000000_000001.json")
    once = sensor(_landing_context(defs, instance, None))
    (request,) = once.run_requests
    assert request.run_config == {}
    assert request.tags["crypto_assets/new_landing_files"] == "1"
    assert producer.run_id not in request.tags.values()


def test_without_a_producer_run_only_unprocessed_files_start_a_run(defs, instance, settings):
    sensor = _landing_sensor(defs)
    landing = landing_of(settings)
    start = time.time() - 100
    paths = []
    for index in range(4):
        path = write_landing_file(landing, f"trades_20240809_00000{index}_{index:06x}.json")
        set_mtime(path, start + index)
        paths.append(path)
    checkpoint = LocalLayout.from_settings(settings).checkpoint_dir(QUERY_NAME)
    # The query took the first three files (the last of its batches still in the folder: Spark
    # archives a batch's files when it plans the next) and committed the first two batches.
    write_checkpoint(checkpoint, [paths[:1], paths[1:2], paths[2:3]], committed=2)
    first = sensor(_landing_context(defs, instance, None))
    (request,) = first.run_requests
    assert request.tags["crypto_assets/new_landing_files"] == "2"  # the planned batch's too
    assert request.run_key == first.cursor == paths[-1].name

    # All processed (a fresh instance over an earlier run's files): no run, the cursor moves.
    write_checkpoint(checkpoint, [paths[:1], paths[1:2], paths[2:4]], committed=3)
    processed = sensor(_landing_context(defs, instance, None))
    assert isinstance(processed, dg.SensorResult)
    assert processed.run_requests == []
    assert processed.skip_reason.skip_message == "4 new landing file(s), all processed already"
    assert processed.cursor == paths[-1].name
    again = sensor(_landing_context(defs, instance, processed.cursor))
    assert again.skip_message == "no new landing files"


class _CannotTell(LocalLakehouse):
    """A lakehouse that cannot tell which landing files are processed (Databricks')."""

    def unprocessed(self, files: list[LandingFile]) -> None:
        return None


def test_where_processed_files_are_unknown_every_new_file_counts(settings):
    for index in range(2):
        write_landing_file(landing_of(settings), f"trades_20240809_00000{index}_{index:06x}.json")
    lakehouse = _CannotTell(LocalLayout.from_settings(settings))
    result = files_decision(None, lakehouse, None)
    (request,) = result.run_requests
    assert request.tags["crypto_assets/new_landing_files"] == "2"
    assert result.cursor == "trades_20240809_000001_000001.json"


def test_off_local_compute_files_take_the_once_way_with_a_producer_run(defs, instance, settings):
    # On Databricks a query cannot watch the instance: the sensor never asks for a follow run.
    sensor = build_landing_files_sensor(follow_producer=False)
    _producer_run(defs, instance, dg.DagsterRunStatus.STARTED)
    write_landing_file(landing_of(settings), "trades_20240809_000000_000001.json")
    result = sensor(_landing_context(defs, instance, None))
    (request,) = result.run_requests
    assert request.run_config == {}
    assert request.tags["crypto_assets/new_landing_files"] == "1"
