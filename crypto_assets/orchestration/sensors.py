"""Sensors: keep one producer run and (when asked) one continuous analytics run alive, follow
each producer run with one continuous analytics run, and turn new landing files into runs.

`binance_producer_sensor` is off by default (it streams from the internet until stopped): turn
it on in the UI (Automation → binance_producer_sensor) or with
`dagster sensor start binance_producer_sensor`. To stop producing, turn the sensor off first,
then terminate the producer run; a terminated run lands its current batch.

The analytics have three triggers, one in charge at a time:
- `landing_files_sensor` (on by default, every 5 s): while a `binance_producer_job` run is queued
  or running and no analytics run is, it starts one continuous run that follows it
  (`follow_producer`): one JVM for the whole producer run, seconds from landing to table. That
  run ends by itself, SUCCESS, once no producer run is active and it has drained the landing
  folder. Each producer run is followed once: if its follow run fails or is terminated, the
  files take the other way, which is also the way without a producer run, and the only one on
  Databricks compute (its query cannot watch the instance): landing files the analytics have not
  processed → one availableNow run (never one for files all processed);
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
    tagged_run,
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
# landing_files_sensor: a run that follows a producer run starts within this of it. A tick is a
# few run-storage queries, and a listing of the landing folder when it looks for files.
LANDING_INTERVAL_SECONDS = 5
# The producer run that a continuous analytics run follows, and how many unprocessed landing
# files a once-run was started for.
FOLLOWS_TAG = "crypto_assets/follows"
NEW_FILES_TAG = "crypto_assets/new_landing_files"
FOLLOW_PRODUCER_CONFIG = {
    "ops": {ANALYTICS_OP: {"config": {"mode": "continuous", "follow_producer": True}}}
}


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


def follow_decision(
    instance: dg.DagsterInstance, producer: dg.RunRecord, analytics: dg.RunRecord | None
) -> dg.SensorResult | dg.SkipReason | None:
    """One continuous run that follows the active `producer` run, unless an analytics run is.

    Each producer run is followed once (its run id is the run key): None when its follow run has
    already ended (failed, or terminated by hand), so that the landing files go the once-run way.
    """
    producer_id = producer.dagster_run.run_id
    if analytics is not None:
        run = analytics.dagster_run
        return dg.SkipReason(
            f"producer run {producer_id} is {producer.dagster_run.status.value}; analytics run "
            f"{run.run_id} is {run.status.value}"
        )
    if tagged_run(instance, ANALYTICS_JOB, FOLLOWS_TAG, producer_id) is not None:
        return None
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f"follow-{producer_id}",
                run_config=FOLLOW_PRODUCER_CONFIG,
                tags={TRIGGER_TAG: LANDING_FILES_SENSOR, FOLLOWS_TAG: producer_id},
            )
        ]
    )


def files_decision(
    cursor: str | None, lakehouse: Lakehouse, analytics: dg.RunRecord | None
) -> dg.SensorResult | dg.SkipReason:
    """One availableNow run for the unprocessed landing files newer than the cursor.

    The cursor is the newest file name handed to a run or found processed already (by a run
    that followed the producer, or by runs before this cursor existed), so no run is ever
    started for files that are all processed; `NEW_FILES_TAG` counts the unprocessed ones.
    """
    new = [f for f in lakehouse.landing_files() if cursor is None or f.name > cursor]
    if not new:
        return dg.SkipReason("no new landing files")
    if analytics is not None:
        # The cursor stays put: these files are looked at again once the current run has ended.
        return dg.SkipReason(
            f"{len(new)} new landing file(s) wait for analytics run {analytics.dagster_run.run_id}"
        )
    newest = new[-1].name
    unprocessed = lakehouse.unprocessed(new)
    if unprocessed is None:  # the deployment cannot tell: every new file may be
        unprocessed = new
    if not unprocessed:
        return dg.SensorResult(
            skip_reason=f"{len(new)} new landing file(s), all processed already", cursor=newest
        )
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=newest,
                tags={TRIGGER_TAG: LANDING_FILES_SENSOR, NEW_FILES_TAG: str(len(unprocessed))},
            )
        ],
        cursor=newest,
    )


def landing_decision(
    instance: dg.DagsterInstance,
    cursor: str | None,
    lakehouse: Lakehouse,
    follow_producer: bool = True,
) -> dg.SensorResult | dg.SkipReason:
    """While a producer run is active, one continuous run that follows it (`follow_decision`);
    otherwise one availableNow run for unprocessed landing files (`files_decision`).

    Without `follow_producer` (Databricks compute, whose query cannot watch the instance) only
    the latter. Nothing while continuous analytics are on; the cursor stays put, so files that
    landed since are looked at when continuous mode is turned off. A tick costs a few run-storage
    queries and, when files newer than the cursor have landed, a look at the checkpoint's log.
    """
    quiet = continuous_mode_skip(instance)
    if quiet is not None:
        return quiet
    analytics = active_run(instance, ANALYTICS_JOB)
    producer = active_run(instance, PRODUCER_JOB) if follow_producer else None
    if producer is not None:
        followed = follow_decision(instance, producer, analytics)
        if followed is not None:
            return followed
    return files_decision(cursor, lakehouse, analytics)


def build_landing_files_sensor(follow_producer: bool) -> dg.SensorDefinition:
    """`landing_files_sensor`; with `follow_producer` (local compute, where the run's query sees
    the Dagster instance) it follows producer runs, else it serves landing files only."""

    @dg.sensor(
        name=LANDING_FILES_SENSOR,
        target=streaming_analytics_job,
        minimum_interval_seconds=LANDING_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "A producer run active → one continuous streaming_analytics_job run that follows it "
            "and ends by itself after it; otherwise unprocessed landing files → one run "
            "(availableNow)."
            if follow_producer
            else "Unprocessed landing files → one streaming_analytics_job run (availableNow)."
        ),
    )
    def landing_files_sensor(
        context: dg.SensorEvaluationContext, lakehouse: dg.ResourceParam[Lakehouse]
    ) -> dg.SensorResult | dg.SkipReason:
        """Follow each producer run with one continuous run; else a run per burst of new files."""
        return landing_decision(context.instance, context.cursor, lakehouse, follow_producer)

    return landing_files_sensor
