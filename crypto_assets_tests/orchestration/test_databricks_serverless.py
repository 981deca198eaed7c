"""What the serverless analytics refuse before anything reaches the workspace."""

from __future__ import annotations

import dagster as dg
import pytest

from crypto_assets.orchestration.databricks.serverless import (
    CONTINUOUS_REFUSED,
    ENVIRONMENT_VERSION,
    ServerlessAnalytics,
    submission,
)
from crypto_assets.settings import Settings


def test_a_continuous_run_is_refused_in_one_line_before_any_upload() -> None:
    # No host is set: reaching the workspace would fail differently, so the refusal came first.
    settings = Settings(deployment="databricks", databricks_compute="serverless")
    with pytest.raises(dg.Failure) as refused:
        ServerlessAnalytics().run(dg.build_asset_context(), settings, {"mode": "continuous"})
    assert refused.value.description == CONTINUOUS_REFUSED
    assert "\n" not in CONTINUOUS_REFUSED
    assert "DATABRICKS_COMPUTE=cluster" in CONTINUOUS_REFUSED


def test_the_task_asks_for_the_spark_4_client_environment() -> None:
    # Environment 3 is a Spark 3.5 client; the analytics use Spark 4's API (createDataFrame of an
    # Arrow table), which environment 4's Databricks Connect 17 client has.
    _, arguments = submission("/Volumes/c/s/v/_dagster/code/pipes_main.py", "code.zip", "run")
    (environment,) = arguments["environments"]
    assert environment.spec.environment_version == ENVIRONMENT_VERSION == "4"
