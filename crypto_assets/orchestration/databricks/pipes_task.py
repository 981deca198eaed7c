"""The Pipes analytics task: the same analytics as a local run, reported through Pipes.

Runs on Databricks, serverless or on a classic cluster (started by `pipes_main.py`, from the
installed wheel): it reads the run's config and the settings from the Pipes extras, runs the
Databricks deployment's analytics on the task's Spark session, and reports each changed table's
materialization and every check's result, the same ones a local run yields
(`analytics_assets.run_results`). Context and messages go through the Volume. A continuous query
(classic compute only) runs until Dagster cancels the run, and logs each batch it commits: Pipes
reports an asset's materialization once per run, at the end.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_pipes import (
    PipesCliArgsParamsLoader,
    PipesContext,
    PipesEnvVarParamsLoader,
    PipesParamsLoader,
    PipesUnityCatalogVolumesContextLoader,
    PipesUnityCatalogVolumesMessageWriter,
    open_dagster_pipes,
)

# dagster's metadata classes and the Pipes type each one travels as.
_PIPES_TYPES: tuple[tuple[type, str], ...] = (
    (dg.MarkdownMetadataValue, "md"),
    (dg.TextMetadataValue, "text"),
    (dg.UrlMetadataValue, "url"),
    (dg.PathMetadataValue, "path"),
    (dg.JsonMetadataValue, "json"),
    (dg.FloatMetadataValue, "float"),
    (dg.IntMetadataValue, "int"),
    (dg.BoolMetadataValue, "bool"),
    (dg.TimestampMetadataValue, "timestamp"),
)


def pipes_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """`metadata` as Pipes sends it: each dagster metadata value with its Pipes type."""
    converted: dict[str, Any] = {}
    for key, value in metadata.items():
        for cls, pipes_type in _PIPES_TYPES:
            if isinstance(value, cls):
                converted[key] = {"raw_value": value.value, "type": pipes_type}
                break
        else:
            converted[key] = value  # a plain number or string: Pipes infers its type
    return converted


def report(pipes: PipesContext, result: dg.MaterializeResult | dg.AssetCheckResult) -> None:
    """Send one result of `run_results` to Dagster."""
    checks = [result] if isinstance(result, dg.AssetCheckResult) else []
    if isinstance(result, dg.MaterializeResult):
        pipes.report_asset_materialization(
            asset_key=result.asset_key.to_user_string(),
            metadata=pipes_metadata(result.metadata or {}),
        )
        checks = list(result.check_results or [])
    for check in checks:
        pipes.report_asset_check(
            check_name=check.check_name,
            passed=check.passed,
            severity=check.severity.value,
            metadata=pipes_metadata(check.metadata or {}),
            asset_key=check.asset_key.to_user_string(),
        )


def params_loader() -> PipesParamsLoader:
    """Where Pipes' bootstrap parameters are: CLI arguments, else environment variables.

    dagster-databricks passes them as the task's parameters on serverless and on an existing
    cluster, and as the new cluster's environment variables (`spark_env_vars`) otherwise.
    """
    arguments = PipesCliArgsParamsLoader()
    return arguments if arguments.is_dagster_pipes_process() else PipesEnvVarParamsLoader()


def run_task() -> None:
    """Open Pipes through the Volume, run the analytics the extras ask for, report the results."""
    with open_dagster_pipes(
        context_loader=PipesUnityCatalogVolumesContextLoader(),
        message_writer=PipesUnityCatalogVolumesMessageWriter(),
        params_loader=params_loader(),
    ) as pipes:
        extras = pipes.extras
        os.environ.update(extras["environment"])
        # Imported here: the settings must be in the environment before the package reads them.
        import crypto_assets  # noqa: PLC0415
        from crypto_assets.analytics.lakehouse import PRICE_ALERTS  # noqa: PLC0415
        from crypto_assets.analytics.pipeline import run_analytics  # noqa: PLC0415
        from crypto_assets.analytics.spark_session import is_spark_connect  # noqa: PLC0415
        from crypto_assets.orchestration.analytics_assets import run_results  # noqa: PLC0415
        from crypto_assets.orchestration.checks import CheckLimits  # noqa: PLC0415
        from crypto_assets.orchestration.deployments import build_deployment  # noqa: PLC0415
        from crypto_assets.orchestration.resources import DatabricksSpark  # noqa: PLC0415
        from crypto_assets.settings import Settings  # noqa: PLC0415

        # Where the code came from: the wheel the task's libraries installed.
        pipes.log.info(f"crypto_assets imported from {Path(crypto_assets.__file__).parent}")
        settings = Settings.from_env()
        started = dt.datetime.now(dt.UTC)
        spark = DatabricksSpark().get_session()
        kind = "Spark Connect" if is_spark_connect(spark) else "classic Spark"
        pipes.log.info(
            f"analytics ({extras['mode']}) on {settings.catalog}.{settings.schema_name}, "
            f"{kind} {spark.version}"
        )
        deployment = build_deployment(settings)

        def committed(table: str, batch_id: int) -> None:
            if table == PRICE_ALERTS:  # the batch's last write
                pipes.log.info(f"continuous query: batch {batch_id} committed")

        summary = run_analytics(
            spark,
            settings,
            deployment.analytics_target(spark),
            mode=extras["mode"],
            trigger_seconds=extras["trigger_seconds"],
            on_step=committed if extras["mode"] == "continuous" else None,
        )
        pipes.log.info(summary.summary_line())
        for result in run_results(deployment.lakehouse, summary, CheckLimits.of(extras), started):
            report(pipes, result)
