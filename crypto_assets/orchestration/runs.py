"""What the sensors, the schedule and a run that follows the producer ask the Dagster instance:
active runs, a run by its tag, recent failures, and whether a sensor is turned on."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from crypto_assets.orchestration.dagster_internals import InstigatorStatus, InstigatorType

# Every status of a run that has been requested and has not finished.
ACTIVE_STATUSES = (
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
)
FINISHED_STATUSES = (
    dg.DagsterRunStatus.SUCCESS,
    dg.DagsterRunStatus.FAILURE,
    dg.DagsterRunStatus.CANCELED,
)


def active_run(instance: dg.DagsterInstance, job_name: str) -> dg.RunRecord | None:
    """A queued or running run of `job_name`, or None."""
    records = instance.get_run_records(
        filters=dg.RunsFilter(job_name=job_name, statuses=list(ACTIVE_STATUSES)), limit=1
    )
    return records[0] if records else None


def tagged_run(
    instance: dg.DagsterInstance, job_name: str, key: str, value: str
) -> dg.RunRecord | None:
    """The newest run of `job_name` whose tag `key` is `value`, in any status, or None."""
    records = instance.get_run_records(
        filters=dg.RunsFilter(job_name=job_name, tags={key: value}), limit=1
    )
    return records[0] if records else None


def finished_runs(instance: dg.DagsterInstance, job_name: str, limit: int) -> list[dg.RunRecord]:
    """The newest `limit` finished runs of `job_name`, newest first."""
    return list(
        instance.get_run_records(
            filters=dg.RunsFilter(job_name=job_name, statuses=list(FINISHED_STATUSES)), limit=limit
        )
    )


def consecutive_failures(records: Sequence[dg.RunRecord]) -> int:
    """How many of the newest finished runs failed in a row (a success or a cancel resets)."""
    count = 0
    for record in records:
        if record.dagster_run.status != dg.DagsterRunStatus.FAILURE:
            break
        count += 1
    return count


def finished_at(record: dg.RunRecord) -> float:
    """When the run ended (epoch seconds); the record's last update if it never started."""
    if record.end_time is not None:
        return record.end_time
    return record.update_timestamp.timestamp()


def sensor_is_on(instance: dg.DagsterInstance, sensor_name: str) -> bool:
    """Whether a sensor of this name that is off by default has been turned on in `instance`.

    Turning a sensor on (UI, `dagster sensor start`) stores its state as RUNNING; a sensor that
    is off by default and was never turned on has no stored state, or one Dagster reads as off.
    Names are matched across the instance: the project runs one code location per instance (its
    run queue limits are instance-wide too).
    """
    states = instance.all_instigator_state(
        instigator_type=InstigatorType.SENSOR, instigator_statuses={InstigatorStatus.RUNNING}
    )
    return any(state.name == sensor_name for state in states)
