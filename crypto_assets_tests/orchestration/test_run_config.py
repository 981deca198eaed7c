"""Op config that fails in one line, naming the field and its allowed range, before the op runs."""

import dagster as dg
import pytest
from pydantic import Field

from crypto_assets.orchestration.analytics_assets import ANALYTICS_JOB, StreamingAnalyticsConfig
from crypto_assets.orchestration.definitions import build_definitions
from crypto_assets.orchestration.run_config import CheckedConfig
from crypto_assets.orchestration.sensors import ANALYTICS_OP
from crypto_assets.settings import Settings


class IntervalConfig(CheckedConfig):
    """A config with one bounded float and one bounded int."""

    seconds: float = Field(5.0, gt=0, le=60)
    count: int = Field(1, ge=1)


def _run(config: dict) -> tuple[dg.ExecuteInProcessResult, list[float]]:
    ran: list[float] = []

    @dg.op
    def interval_op(config: IntervalConfig) -> None:
        ran.append(config.seconds)

    @dg.job
    def interval_job() -> None:
        interval_op()

    result = interval_job.execute_in_process(
        run_config={"ops": {"interval_op": {"config": config}}}, raise_on_error=False
    )
    return result, ran


def test_a_value_in_range_reaches_the_op():
    result, ran = _run({"seconds": 60.0})
    assert result.success
    assert ran == [60.0]


def test_an_out_of_range_value_fails_the_step_in_one_line_before_its_body():
    result, ran = _run({"seconds": 61.0, "count": 0})
    assert not result.success
    assert ran == []
    failure = result.failure_data_for_node("interval_op")
    assert failure is not None
    assert failure.user_failure_data is not None
    assert failure.user_failure_data.description == (
        "IntervalConfig: seconds=61.0: allowed > 0 and ≤ 60; count=0: allowed ≥ 1"
    )


def test_a_retry_policy_does_not_retry_a_bad_config():
    @dg.op(retry_policy=dg.RetryPolicy(max_retries=2))
    def retried_op(config: IntervalConfig) -> None:
        del config

    @dg.job
    def retried_job() -> None:
        retried_op()

    result = retried_job.execute_in_process(
        run_config={"ops": {"retried_op": {"config": {"seconds": 0.0}}}}, raise_on_error=False
    )
    assert not result.success
    types = [event.event_type for event in result.all_events]
    assert dg.DagsterEventType.STEP_UP_FOR_RETRY not in types
    assert types.count(dg.DagsterEventType.STEP_FAILURE) == 1


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"trigger_seconds": -1.0}, "trigger_seconds=-1.0: allowed > 0 and ≤ 3600"),
        ({"report_interval_seconds": 0.0}, "report_interval_seconds=0.0: allowed > 0 and ≤ 3600"),
        ({"max_lag_seconds": 1e9}, "max_lag_seconds=1000000000.0: allowed > 0 and ≤ 86400"),
    ],
)
def test_the_analytics_config_names_the_field_and_its_range(values, message):
    with pytest.raises(dg.Failure) as failure:
        StreamingAnalyticsConfig(**values)
    assert failure.value.description == f"StreamingAnalyticsConfig: {message}"


def test_the_analytics_mode_is_an_enum_the_launchpad_checks():
    @dg.op
    def analytics_op(config: StreamingAnalyticsConfig) -> None:
        del config

    @dg.job
    def analytics_config_job() -> None:
        analytics_op()

    with pytest.raises(dg.DagsterInvalidConfigError, match="mode"):
        dg.validate_run_config(
            analytics_config_job, {"ops": {"analytics_op": {"config": {"mode": "sometimes"}}}}
        )


def test_with_defaults_changes_the_defaults_and_keeps_the_bounds():
    derived = IntervalConfig.with_defaults(seconds=30.0)
    assert (derived().seconds, derived().count) == (30.0, 1)
    with pytest.raises(dg.Failure) as failure:
        derived(seconds=61.0)
    assert failure.value.description == "IntervalConfig: seconds=61.0: allowed > 0 and ≤ 60"


def test_the_launchpads_trigger_seconds_is_the_deployments_analytics_trigger_seconds(tmp_path):
    default = Settings(data_dir=tmp_path)
    for deployed in (default, default.replace(analytics_trigger_seconds=2.5)):
        job = build_definitions(deployed).resolve_job_def(ANALYTICS_JOB)
        config = dg.validate_run_config(job, {})["ops"][ANALYTICS_OP]["config"]
        assert config["trigger_seconds"] == deployed.analytics_trigger_seconds
    # The settings model is the one source of the default: 1 second, so the run that follows a
    # producer (the UI demo's default) picks up each landing file within about a second.
    assert StreamingAnalyticsConfig().trigger_seconds == default.analytics_trigger_seconds == 1.0
