"""The Spark assets on Databricks serverless compute, through Dagster Pipes and a Volume.

Serverless compute has no DBFS and no cluster to install libraries on, so the step launcher cannot
run there. Instead the asset stays in Dagster's process and `ServerlessAnalytics.run`:

1. uploads the package (zipped as the step launcher zips it) and the bootstrap script
   (`pipes_main.py`) to the Volume's `_dagster/` folder with the Files API;
2. submits one serverless `spark_python_task` whose environment lists the package's dependencies,
   through dagster-databricks' `PipesDatabricksServerlessClient` (context and messages go
   through the Volume too);
3. returns what the task reported: the same materializations and check results as a local run.

The task runs the same analytics (`pipes_task.py`) with the Databricks reader and sink.
"""

from __future__ import annotations

import importlib.metadata
import io
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
from dagster_databricks.pipes import PipesDatabricksServerlessClient
from dagster_pyspark.utils import build_pyspark_zip
from databricks.sdk.errors import DatabricksError
from databricks.sdk.service import jobs

from crypto_assets.databricks.diagnostics import refusal_line, run_failure_line
from crypto_assets.databricks.layout import VolumeLayout
from crypto_assets.databricks.workspace import WorkspaceError, workspace_client
from crypto_assets.orchestration.code_versions import ANALYTICS_CODE_VERSION
from crypto_assets.orchestration.dagster_internals import DagsterPipesExecutionError
from crypto_assets.orchestration.databricks import pipes_main
from crypto_assets.orchestration.databricks.remote_environment import remote_environment
from crypto_assets.orchestration.databricks.step_launcher import cluster_libraries, package_folder
from crypto_assets.settings import Settings

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient

ENVIRONMENT_KEY = "crypto_assets"
TASK_KEY = "crypto_assets_analytics"
# Serverless environment version 4: a Databricks Connect 17 (Spark 4) client, the Spark API the
# code uses (`createDataFrame` of a pyarrow Table); version 3's client is Spark 3.5.
ENVIRONMENT_VERSION = "4"
# Serverless streaming queries take only the availableNow and once triggers (no processingTime).
CONTINUOUS_REFUSED = (
    "mode continuous cannot run on serverless compute, whose streaming queries take only the "
    "availableNow trigger: run mode once (landing_files_sensor starts one for new landing files, "
    "streaming_analytics_schedule one a minute), or set DATABRICKS_COMPUTE=cluster"
)


def serverless_dependencies() -> list[str]:
    """What the serverless task installs: the package's dependencies and Dagster's Pipes side."""
    libraries = [library["pypi"]["package"] for library in cluster_libraries()]
    return [
        *libraries,
        f"dagster=={importlib.metadata.version('dagster')}",
        f"dagster-pipes=={importlib.metadata.version('dagster-pipes')}",
    ]


def upload_code(client: WorkspaceClient, layout: VolumeLayout) -> tuple[str, str]:
    """Upload the package's zip and the bootstrap script; (script path, zip path) on the Volume."""
    with tempfile.TemporaryDirectory() as scratch:
        zip_path = Path(scratch) / "crypto_assets.zip"
        build_pyspark_zip(str(zip_path), str(package_folder()))
        remote_zip = f"{layout.staging_dir}/code/crypto_assets-{ANALYTICS_CODE_VERSION}.zip"
        with zip_path.open("rb") as data:
            client.files.upload(remote_zip, data, overwrite=True)
    remote_script = f"{layout.staging_dir}/code/pipes_main.py"
    script = Path(pipes_main.__file__).read_bytes()
    client.files.upload(remote_script, io.BytesIO(script), overwrite=True)
    return remote_script, remote_zip


def submission(script: str, code_zip: str, run_name: str) -> tuple[jobs.SubmitTask, dict[str, Any]]:
    """The serverless task and `jobs.submit` arguments of one analytics run."""
    task = jobs.SubmitTask.from_dict(
        {
            "task_key": TASK_KEY,
            "environment_key": ENVIRONMENT_KEY,
            "spark_python_task": {"python_file": script, "parameters": ["--code-zip", code_zip]},
        }
    )
    environment = {
        "environment_key": ENVIRONMENT_KEY,
        "spec": {
            "environment_version": ENVIRONMENT_VERSION,
            "dependencies": serverless_dependencies(),
        },
    }
    return task, {
        "run_name": run_name,
        "environments": [jobs.JobEnvironment.from_dict(environment)],
    }


class ReadablePipesClient(PipesDatabricksServerlessClient):
    """dagster-databricks' serverless Pipes client; a failed run says why, with its page."""

    def _poll_til_success(
        self, context: dg.OpExecutionContext | dg.AssetExecutionContext, run_id: int
    ) -> None:
        try:
            super()._poll_til_success(context, run_id)
        except DagsterPipesExecutionError as exc:
            raise dg.Failure(description=run_failure_line(self.client, run_id, exc)) from exc


class ServerlessAnalytics(dg.ConfigurableResource):
    """Runs the analytics as a serverless Databricks task through Dagster Pipes."""

    poll_interval_seconds: float = 5.0

    def run(
        self, context: dg.AssetExecutionContext, settings: Settings, extras: dict[str, Any]
    ) -> Sequence[dg.MaterializeResult | dg.AssetCheckResult]:
        """Run the analytics on serverless compute with `extras` (the run's config); its results.

        A continuous run is refused before anything is uploaded (`CONTINUOUS_REFUSED`).
        """
        if extras.get("mode") == "continuous":
            raise dg.Failure(description=CONTINUOUS_REFUSED)
        layout = VolumeLayout.from_settings(settings)
        try:
            client = workspace_client(settings)
            script, code_zip = upload_code(client, layout)
        except WorkspaceError as exc:
            raise dg.Failure(description=str(exc)) from None
        except DatabricksError as exc:
            raise dg.Failure(description=refusal_line(client.config.host, exc)) from None
        context.log.info("uploaded the package to %s", code_zip)
        task, submit_args = submission(script, code_zip, f"crypto_assets {context.run_id[:8]}")
        pipes = ReadablePipesClient(
            client=client,
            volume_path=f"{layout.staging_dir}/pipes",
            poll_interval_seconds=self.poll_interval_seconds,
        )
        payload = {**extras, "environment": remote_environment(settings)}
        invocation = pipes.run(context=context, extras=payload, task=task, submit_args=submit_args)
        return invocation.get_results()
