"""The whole pipeline without a UI: the producer job, then the analytics job, in this process.

This is what `crypto-assets run` (`make run`) needs: the same Dagster jobs the UI launches, run
with `execute_in_process`, so the headless run and the UI share one code path. Pass the instance
of `DAGSTER_HOME` to see these runs in `dagster dev` afterwards; an ephemeral one otherwise.
"""

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from crypto_assets.analytics.lakehouse import TABLES
from crypto_assets.errors import CryptoAssetsError
from crypto_assets.orchestration.analytics_assets import ANALYTICS_JOB
from crypto_assets.orchestration.checks import LANDING_TRADES
from crypto_assets.orchestration.definitions import build_definitions
from crypto_assets.orchestration.ingestion import PRODUCER_JOB, PRODUCER_OP
from crypto_assets.producer.producer import DEFAULT_PROGRESS_SECONDS
from crypto_assets.settings import Settings

logger = logging.getLogger(__name__)

# Dagster's console logger at INFO: run and step events without the DEBUG engine chatter.
_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


class PipelineRunError(CryptoAssetsError):
    """A job of the headless pipeline failed; the message is the failing step's one line."""


@dataclass(frozen=True)
class PipelineResult:
    """The two runs and what they reported for each asset (metadata of its last materialization)."""

    producer_run_id: str
    analytics_run_id: str
    assets: dict[str, dict[str, Any]] = field(default_factory=dict)

    def summary_lines(self) -> list[str]:
        """Short lines for the terminal: what landed and what each table holds."""
        landing = self.assets.get(LANDING_TRADES, {})
        lines = [
            f"landing_trades: {landing.get('run_trades', 0)} trades in "
            f"{landing.get('run_files', 0)} files from {landing.get('source', 'unknown')} "
            f"(run {self.producer_run_id})"
        ]
        for table in TABLES:
            meta = self.assets.get(table, {})
            revised = f", {meta['rows_revised']} revised" if meta.get("rows_revised") else ""
            lines.append(
                f"{table}: {meta.get('dagster/row_count', 0)} rows "
                f"(+{meta.get('rows_written', 0)} new{revised}) (run {self.analytics_run_id})"
            )
        return lines


def _last_metadata(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, Any]]:
    assets: dict[str, dict[str, Any]] = {}
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        assets[materialization.asset_key.to_user_string()] = {
            key: value.value for key, value in materialization.metadata.items()
        }
    return assets


def _execute(
    defs: dg.Definitions, job_name: str, instance: dg.DagsterInstance, run_config: dict[str, Any]
):
    result = defs.resolve_job_def(job_name).execute_in_process(
        run_config={**_RUN_CONFIG, **run_config}, instance=instance, raise_on_error=False
    )
    if result.success:
        return result
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data is not None:
            error = event.step_failure_data.error
            if error is not None and error.cls_name == "DagsterExecutionInterruptedError":
                raise KeyboardInterrupt
            user = event.step_failure_data.user_failure_data
            message = user.description if user and user.description else error and error.message
            raise PipelineRunError(f"{job_name} failed: {str(message).strip().splitlines()[0]}")
    raise PipelineRunError(f"{job_name} failed (run {result.run_id}): see the run's logs")


def _duration(settings: Settings) -> str:
    minutes = settings.run_duration_minutes
    if minutes is None:
        return "until stopped (Ctrl-C lands the open batch)"
    return f"for {minutes:g} min (RUN_DURATION_MINUTES)"


def run_pipeline(
    settings: Settings,
    instance: dg.DagsterInstance | None = None,
    progress_seconds: float = DEFAULT_PROGRESS_SECONDS,
) -> PipelineResult:
    """Produce for RUN_DURATION_MINUTES from CRYPTO_SOURCE, then process everything landed.

    Says what it waits for: the producer logs a progress line every `progress_seconds`.
    """
    defs = build_definitions(settings)
    producer_config = {
        "ops": {PRODUCER_OP: {"config": {"progress_interval_seconds": progress_seconds}}}
    }
    # A caller's instance stays open for the caller; an ephemeral one lives for these two runs.
    scope = contextlib.nullcontext(instance) if instance else dg.DagsterInstance.ephemeral()
    with scope as active:
        logger.info(
            "%s: producing %s from CRYPTO_SOURCE=%s, a progress line every %g s",
            PRODUCER_JOB,
            _duration(settings),
            settings.source,
            progress_seconds,
        )
        producer = _execute(defs, PRODUCER_JOB, active, producer_config)
        landed = _last_metadata(producer).get(LANDING_TRADES, {})
        logger.info(
            "%s: processing the %s landing files of this run (%s trades), and any earlier ones "
            "not in the tables yet, into %s (Spark starts first)",
            ANALYTICS_JOB,
            landed.get("run_files", 0),
            landed.get("run_trades", 0),
            ", ".join(TABLES),
        )
        analytics = _execute(defs, ANALYTICS_JOB, active, {})
    return PipelineResult(
        producer_run_id=producer.run_id,
        analytics_run_id=analytics.run_id,
        assets={**_last_metadata(producer), **_last_metadata(analytics)},
    )
