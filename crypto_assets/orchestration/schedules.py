"""The analytics schedule: streaming_analytics_job every minute, an alternative to the sensor."""

import dagster as dg

from crypto_assets.orchestration.analytics_assets import streaming_analytics_job
from crypto_assets.orchestration.runs import active_run


@dg.schedule(
    name="streaming_analytics_schedule",
    cron_schedule="* * * * *",
    target=streaming_analytics_job,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="streaming_analytics_job every minute (availableNow), unless one is running.",
)
def streaming_analytics_schedule(
    context: dg.ScheduleEvaluationContext,
) -> dg.RunRequest | dg.SkipReason:
    """Process whatever landed since the last run; skip while a run is still going."""
    running = active_run(context.instance, streaming_analytics_job.name)
    if running is not None:
        return dg.SkipReason(f"analytics run {running.dagster_run.run_id} is still going")
    return dg.RunRequest(tags={"crypto_assets/trigger": "schedule"})
