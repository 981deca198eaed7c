"""Op config that fails in one line, naming the field and its allowed range, before the op runs."""

import dagster as dg
import pytest
from pydantic import Field

from crypto_assets.orchestration.analytics_assets import StreamingAnalyticsConfig
from crypto_assets.orchestration.run_config import CheckedConfig


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
