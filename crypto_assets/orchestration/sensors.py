"""Sensors: keep one producer run alive, and turn new landing files into analytics runs.

`binance_producer_sensor` is off by default (it streams from the internet until stopped): turn
it on in the UI (Automation → binance_producer_sensor) or with
`dagster sensor start binance_producer_sensor`. To stop producing, turn the sensor off first,
then terminate the producer run; a terminated run lands its current batch.
"""

import time

import dagster as dg

from crypto_assets.orchestration.analytics_assets import streaming_analytics_job
from crypto_assets.orchestration.ingestion import PRODUCER_JOB, PRODUCER_OP
from crypto_assets.orchestration.lakehouse import LakehouseResource
from crypto_assets.orchestration.runs import (
    RestartBackoff,
    active_run,
    consecutive_failures,
    finished_at,
    finished_runs,
)

PRODUCER_BACKOFF = RestartBackoff(base_seconds=30.0, max_seconds=900.0)
# Failures older than this many runs no longer lengthen the backoff.
_FAILURE_HISTORY = 10
CONTINUOUS_PRODUCER_CONFIG = {"ops": {PRODUCER_OP: {"config": {"continuous": True}}}}


def producer_decision(
    instance: dg.DagsterInstance, cursor: str | None, now: float, backoff: RestartBackoff
) -> dg.SensorResult | dg.SkipReason:
    """Start a continuous producer run unless one is active or the backoff is not over."""
    running = active_run(instance, PRODUCER_JOB)
    if running is not None:
        return dg.SkipReason(
            f"producer run {running.dagster_run.run_id} is {running.dagster_run.status.value}"
        )
    recent = finished_runs(instance, PRODUCER_JOB, _FAILURE_HISTORY)
    failures = consecutive_failures(recent)
    if failures:
        wait = finished_at(recent[0]) + backoff.delay(failures) - now
        if wait > 0:
            return dg.SkipReason(
                f"backing off after {failures} failed producer run(s): next start in {wait:.0f} s"
            )
    started = int(cursor or 0) + 1
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                # A unique key per start: if the cursor update were lost, Dagster drops the repeat.
                run_key=f"producer-{started}",
                run_config=CONTINUOUS_PRODUCER_CONFIG,
                tags={"crypto_assets/consecutive_failures": str(failures)},
            )
        ],
        cursor=str(started),
    )


def build_producer_sensor(producer_job: dg.JobDefinition) -> dg.SensorDefinition:
    """`binance_producer_sensor` for the deployment's producer job (see `build_producer_job`)."""

    @dg.sensor(
        name="binance_producer_sensor",
        target=producer_job,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Keeps exactly one continuous producer run alive; backs off after failures.",
    )
    def binance_producer_sensor(
        context: dg.SensorEvaluationContext,
    ) -> dg.SensorResult | dg.SkipReason:
        """Start a producer run when none is queued or running (cursor: starts so far)."""
        return producer_decision(context.instance, context.cursor, time.time(), PRODUCER_BACKOFF)

    return binance_producer_sensor


def landing_decision(
    instance: dg.DagsterInstance, cursor: str | None, lakehouse: LakehouseResource
) -> dg.SensorResult | dg.SkipReason:
    """One analytics run for all landing files newer than the cursor (the newest file seen)."""
    new = [f for f in lakehouse.landing_files() if cursor is None or f.name > cursor]
    if not new:
        return dg.SkipReason("no new landing files")
    running = active_run(instance, streaming_analytics_job.name)
    if running is not None:
        # The cursor stays put: these files trigger a run once the current one has finished.
        return dg.SkipReason(
            f"{len(new)} new landing file(s) wait for analytics run {running.dagster_run.run_id}"
        )
    newest = new[-1].name
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(run_key=newest, tags={"crypto_assets/new_landing_files": str(len(new))})
        ],
        cursor=newest,
    )


@dg.sensor(
    name="landing_files_sensor",
    target=streaming_analytics_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="New landing files → one streaming_analytics_job run (availableNow).",
)
def landing_files_sensor(
    context: dg.SensorEvaluationContext, lakehouse: LakehouseResource
) -> dg.SensorResult | dg.SkipReason:
    """Request one analytics run per batch of new landing files (cursor: newest file name)."""
    return landing_decision(context.instance, context.cursor, lakehouse)
