"""Sensors: keep one producer run and (when asked) one continuous analytics run alive, and turn
new landing files into analytics runs.

`binance_producer_sensor` is off by default (it streams from the internet until stopped): turn
it on in the UI (Automation → binance_producer_sensor) or with
`dagster sensor start binance_producer_sensor`. To stop producing, turn the sensor off first,
then terminate the producer run; a terminated run lands its current batch.

The analytics have three triggers, one in charge at a time:
- `landing_files_sensor` (on by default): new landing files → one availableNow run;
- `streaming_analytics_schedule` (off by default): one availableNow run every minute;
- `continuous_analytics_sensor` (off by default): keeps one continuous run alive. While it is on,
  the other two start nothing (they skip, naming it), so switching to continuous mode is turning
  it on, and back is turning it off and terminating the continuous run.
A supervised run that ends for any reason (also SUCCESS: a terminated continuous run stops between
batches and succeeds) is started again while its sensor is on; so to stop, turn the sensor off
first, then terminate the run. Failed runs are restarted after a growing delay (`RestartBackoff`).
"""

import time
from dataclasses import dataclass
from typing import Any

import dagster as dg

from crypto_assets.analytics.lakehouse import Lakehouse
from crypto_assets.backoff import RestartBackoff
from crypto_assets.orchestration.analytics_assets import ANALYTICS_JOB, streaming_analytics_job
from crypto_assets.orchestration.ingestion import PRODUCER_JOB, PRODUCER_OP
from crypto_assets.orchestration.runs import (
    active_run,
    consecutive_failures,
    finished_at,
    finished_runs,
    sensor_is_on,
)

PRODUCER_SENSOR = "binance_producer_sensor"
CONTINUOUS_ANALYTICS_SENSOR = "continuous_analytics_sensor"
LANDING_FILES_SENSOR = "landing_files_sensor"
ANALYTICS_OP = "streaming_analytics"
TRIGGER_TAG = "crypto_assets/trigger"
FAILURES_TAG = "crypto_assets/consecutive_failures"
# How often the supervising sensors look: a dead run is restarted this soon (plus the backoff).
# A tick is two queries of the run storage.
SUPERVISION_INTERVAL_SECONDS = 15
PRODUCER_BACKOFF = RestartBackoff(base_seconds=30.0, max_seconds=900.0)
ANALYTICS_BACKOFF = RestartBackoff(base_seconds=30.0, max_seconds=900.0)
# Failures older than this many runs no longer lengthen the backoff.
_FAILURE_HISTORY = 10
CONTINUOUS_PRODUCER_CONFIG = {"ops": {PRODUCER_OP: {"config": {"continuous": True}}}}


def continuous_analytics_config(trigger_seconds: float) -> dict[str, Any]:
    """Run config of a continuous `streaming_analytics_job` run with this trigger interval."""
    return {
        "ops": {
            ANALYTICS_OP: {"config": {"mode": "continuous", "trigger_seconds": trigger_seconds}}
        }
    }


@dataclass(frozen=True)
class SupervisedRun:
    """One long-running run a sensor keeps alive: its job, how it is started, its backoff."""

    job_name: str
    noun: str  # what the skip reasons call its runs, e.g. "producer"
    run_key_prefix: str
    run_config: dict[str, Any]
    backoff: RestartBackoff
    tags: tuple[tuple[str, str], ...] = ()


def supervise_decision(
    instance: dg.DagsterInstance, cursor: str | None, now: float, supervised: SupervisedRun
) -> dg.SensorResult | dg.SkipReason:
    """Start the supervised run unless a run of its job is active or the backoff is not over.

    Any active run of the job counts (whoever started it, in any mode): never two at once.
    The cursor counts the starts so far; each start has its own run key.
    """
    running = active_run(instance, supervised.job_name)
    if running is not None:
        run = running.dagster_run
        return dg.SkipReason(f"{supervised.noun} run {run.run_id} is {run.status.value}")
    recent = finished_runs(instance, supervised.job_name, _FAILURE_HISTORY)
    failures = consecutive_failures(recent)
    if failures:
        wait = finished_at(recent[0]) + supervised.backoff.delay(failures) - now
        if wait > 0:
            return dg.SkipReason(
                f"backing off after {failures} failed {supervised.noun} run(s): "
                f"next start in {wait:.0f} s"
            )
    started = int(cursor or 0) + 1
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                # A unique key per start: if the cursor update were lost, Dagster drops the repeat.
                run_key=f"{supervised.run_key_prefix}-{started}",
                run_config=supervised.run_config,
                tags={**dict(supervised.tags), FAILURES_TAG: str(failures)},
            )
        ],
        cursor=str(started),
    )


def producer_decision(
    instance: dg.DagsterInstance, cursor: str | None, now: float, backoff: RestartBackoff
) -> dg.SensorResult | dg.SkipReason:
    """Start a continuous producer run unless one is active or the backoff is not over."""
    supervised = SupervisedRun(
        job_name=PRODUCER_JOB,
        noun="producer",
        run_key_prefix="producer",
        run_config=CONTINUOUS_PRODUCER_CONFIG,
        backoff=backoff,
    )
    return supervise_decision(instance, cursor, now, supervised)


def continuous_analytics_decision(
    instance: dg.DagsterInstance,
    cursor: str | None,
    now: float,
    trigger_seconds: float,
    backoff: RestartBackoff = ANALYTICS_BACKOFF,
) -> dg.SensorResult | dg.SkipReason:
    """Start a continuous analytics run unless an analytics run is active or the backoff runs."""
    supervised = SupervisedRun(
        job_name=ANALYTICS_JOB,
        noun="analytics",
        run_key_prefix="continuous-analytics",
        run_config=continuous_analytics_config(trigger_seconds),
        backoff=backoff,
        tags=((TRIGGER_TAG, CONTINUOUS_ANALYTICS_SENSOR),),
    )
    return supervise_decision(instance, cursor, now, supervised)


def continuous_mode_skip(instance: dg.DagsterInstance) -> dg.SkipReason | None:
    """Why a once-run trigger starts nothing while continuous analytics are on; None if off."""
    if not sensor_is_on(instance, CONTINUOUS_ANALYTICS_SENSOR):
        return None
    return dg.SkipReason(
        f"{CONTINUOUS_ANALYTICS_SENSOR} is on: its continuous run processes new landing files"
    )


def build_producer_sensor(producer_job: dg.JobDefinition) -> dg.SensorDefinition:
    """`binance_producer_sensor` for the deployment's producer job (see `build_producer_job`)."""

    @dg.sensor(
        name=PRODUCER_SENSOR,
        target=producer_job,
        minimum_interval_seconds=SUPERVISION_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Keeps exactly one continuous producer run alive; backs off after failures.",
    )
    def binance_producer_sensor(
        context: dg.SensorEvaluationContext,
    ) -> dg.SensorResult | dg.SkipReason:
        """Start a producer run when none is queued or running (cursor: starts so far)."""
        return producer_decision(context.instance, context.cursor, time.time(), PRODUCER_BACKOFF)

    return binance_producer_sensor


def build_continuous_analytics_sensor(trigger_seconds: float) -> dg.SensorDefinition:
    """`continuous_analytics_sensor`, starting continuous runs with this trigger interval."""

    @dg.sensor(
        name=CONTINUOUS_ANALYTICS_SENSOR,
        target=streaming_analytics_job,
        minimum_interval_seconds=SUPERVISION_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=(
            "Keeps exactly one continuous streaming_analytics_job run alive; backs off after "
            "failures. While it is on, landing_files_sensor and the schedule start nothing."
        ),
    )
    def continuous_analytics_sensor(
        context: dg.SensorEvaluationContext,
    ) -> dg.SensorResult | dg.SkipReason:
        """Start a continuous analytics run when no analytics run is active (cursor: starts)."""
        return continuous_analytics_decision(
            context.instance, context.cursor, time.time(), trigger_seconds
        )

    return continuous_analytics_sensor


def landing_decision(
    instance: dg.DagsterInstance, cursor: str | None, lakehouse: dg.ResourceParam[Lakehouse]
) -> dg.SensorResult | dg.SkipReason:
    """One analytics run for all landing files newer than the cursor (the newest file seen).

    Nothing while continuous analytics are on; the cursor stays put, so files that landed since
    are handed to a once-run when continuous mode is turned off (the checkpoint skips what the
    continuous run processed).
    """
    quiet = continuous_mode_skip(instance)
    if quiet is not None:
        return quiet
    new = [f for f in lakehouse.landing_files() if cursor is None or f.name > cursor]
    if not new:
        return dg.SkipReason("no new landing files")
    running = active_run(instance, ANALYTICS_JOB)
    if running is not None:
        # The cursor stays put: these files trigger a run once the current one has finished.
        return dg.SkipReason(
            f"{len(new)} new landing file(s) wait for analytics run {running.dagster_run.run_id}"
        )
    newest = new[-1].name
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=newest,
                tags={
                    TRIGGER_TAG: LANDING_FILES_SENSOR,
                    "crypto_assets/new_landing_files": str(len(new)),
                },
            )
        ],
        cursor=newest,
    )


@dg.sensor(
    name=LANDING_FILES_SENSOR,
    target=streaming_analytics_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="New landing files → one streaming_analytics_job run (availableNow).",
)
def landing_files_sensor(
    context: dg.SensorEvaluationContext, lakehouse: dg.ResourceParam[Lakehouse]
) -> dg.SensorResult | dg.SkipReason:
    """Request one analytics run per batch of new landing files (cursor: newest file name)."""
    return landing_decision(context.instance, context.cursor, lakehouse)
