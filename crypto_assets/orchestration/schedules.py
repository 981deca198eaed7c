"""The analytics schedule: streaming_analytics_job every minute, an alternative to the sensor."""

import dagster as dg

from crypto_assets.orchestration.analytics_assets import ANALYTICS_JOB, streaming_analytics_job
from crypto_assets.orchestration.runs import active_run
from crypto_assets.orchestration.sensors import TRIGGER_TAG, continuous_mode_skip


def schedule_decision(instance: dg.DagsterInstance) -> dg.RunRequest | dg.SkipReason:
    """One availableNow run, unless continuous analytics are on or an analytics run is going."""
    quiet = continuous_mode_skip(instance)
    if quiet is not None:
        return quiet
    running = active_run(instance, ANALYTICS_JOB)
    if running is not None:
        return dg.SkipReason(f"analytics run {running.dagster_run.run_id} is still going")
    return dg.RunRequest(tags={TRIGGER_TAG: "schedule"})


@dg.schedule(
    name="streaming_analytics_schedule",
    cron_schedule="* * * * *",
    target=streaming_analytics_job,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description=(
        "streaming_analytics_job every minute (availableNow), unless one is running or "
        "continuous_analytics_sensor is on."
    ),
)
def streaming_analytics_schedule(
    context: dg.ScheduleEvaluationContext,
) -> dg.RunRequest | dg.SkipReason:
    """Process whatever landed since the last run; skip while a run is still going."""
    return schedule_decision(context.instance)
