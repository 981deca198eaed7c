"""streaming_analytics_schedule against a real Dagster instance."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from crypto_assets.orchestration.analytics_assets import ANALYTICS_JOB
from crypto_assets.orchestration.dagster_internals import InstigatorStatus
from crypto_assets_tests.orchestration.instigator_states import turn_sensor


def test_schedule_runs_the_analytics_job_every_minute(defs, instance):
    schedule = defs.resolve_schedule_def("streaming_analytics_schedule")
    assert schedule.cron_schedule == "* * * * *"
    assert schedule.job_name == ANALYTICS_JOB
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    context = dg.build_schedule_context(
        instance=instance, scheduled_execution_time=dt.datetime(2024, 8, 9, 0, 1, tzinfo=dt.UTC)
    )
    result = schedule.evaluate_tick(context)
    (request,) = result.run_requests
    assert request.tags["crypto_assets/trigger"] == "schedule"


def test_schedule_skips_while_an_analytics_run_is_going(defs, instance):
    schedule = defs.resolve_schedule_def("streaming_analytics_schedule")
    run = instance.create_run_for_job(
        defs.resolve_job_def(ANALYTICS_JOB), status=dg.DagsterRunStatus.STARTED
    )
    result = schedule.evaluate_tick(dg.build_schedule_context(instance=instance))
    assert not result.run_requests
    assert run.run_id in result.skip_message
    instance.report_run_failed(run)
    assert (
        len(schedule.evaluate_tick(dg.build_schedule_context(instance=instance)).run_requests) == 1
    )


def test_schedule_is_quiet_while_continuous_analytics_are_on(defs, instance):
    schedule = defs.resolve_schedule_def("streaming_analytics_schedule")
    turn_sensor(instance, "continuous_analytics_sensor", InstigatorStatus.RUNNING)
    quiet = schedule.evaluate_tick(dg.build_schedule_context(instance=instance))
    assert not quiet.run_requests
    assert "continuous_analytics_sensor is on" in quiet.skip_message
    turn_sensor(instance, "continuous_analytics_sensor", InstigatorStatus.STOPPED)
    assert (
        len(schedule.evaluate_tick(dg.build_schedule_context(instance=instance)).run_requests) == 1
    )
