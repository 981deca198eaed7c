"""The Spark assets on Databricks through Dagster Pipes: serverless compute, or a classic cluster.

Serverless compute has no DBFS and no cluster to install libraries on, and some workspaces have
legacy DBFS disabled: the step launcher cannot run there. With `DATABRICKS_COMPUTE=serverless`
(always), or `DATABRICKS_COMPUTE=cluster` with `DATABRICKS_LAUNCHER=pipes`, the asset stays in
Dagster's process and `PipesAnalytics.run`:

1. checks the token, then uploads the package's wheel (`wheel.py`) and the task's entry script
   (`pipes_main.py`) to the Volume's `_dagster/` folder with the Files API;
2. submits one `spark_python_task` that runs the script (`submission`): on serverless, in an
   environment whose dependencies are the pins and the wheel; on classic compute, on the
   existing cluster (checked first) or a new job cluster dedicated to the token's user, with the
   pins and the wheel as libraries. dagster-databricks' `PipesDatabricksServerlessClient`, or its
   `PipesDatabricksClient` given the Unity Catalog Volume context injector and message reader
   (its defaults are DBFS's), carry the context and the messages through the Volume;
3. returns what the task reported: the same materializations and check results as a local run.

The task runs the same analytics (`pipes_task.py`) with the Databricks reader and sink.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_databricks.pipes import (
    PipesDatabricksClient,
    PipesDatabricksServerlessClient,
    PipesUnityCatalogVolumesContextInjector,
    PipesUnityCatalogVolumesMessageReader,
)
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import DatabricksError
from databricks.sdk.service import jobs

from crypto_assets.databricks.diagnostics import check_workspace, run_failure_line
from crypto_assets.databricks.layout import VolumeLayout
from crypto_assets.databricks.workspace import error_text, workspace_client
from crypto_assets.errors import CryptoAssetsError
from crypto_assets.orchestration.dagster_internals import DagsterPipesExecutionError
from crypto_assets.orchestration.databricks import pipes_main
from crypto_assets.orchestration.databricks.classic_compute import (
    check_existing_cluster,
    dedicated_to,
    new_cluster,
)
from crypto_assets.orchestration.databricks.libraries import (
    cluster_libraries,
    environment_dependencies,
    pipes_pins,
)
from crypto_assets.orchestration.databricks.remote_environment import remote_environment
from crypto_assets.orchestration.databricks.wheel import upload_wheel
from crypto_assets.settings import Settings

ENVIRONMENT_KEY = "crypto_assets"
TASK_KEY = "crypto_assets_analytics"
# Serverless environment version 4: a Databricks Connect 17 (Spark 4) client, the Spark API the
# code uses (`createDataFrame` of a pyarrow Table); version 3's client is Spark 3.5.
ENVIRONMENT_VERSION = "4"
# Serverless streaming queries take only the availableNow and once triggers (no processingTime);
# a classic cluster takes processingTime, through Pipes as through the step launcher.
CONTINUOUS_REFUSED = (
    "mode continuous cannot run on serverless compute, whose streaming queries take only the "
    "availableNow trigger: run mode once (landing_files_sensor starts one for new landing files, "
    "streaming_analytics_schedule one a minute), or set DATABRICKS_COMPUTE=cluster"
)

# A run that follows the producer asks the Dagster instance about producer runs from the process
# that runs its query, which a Databricks task is not.
FOLLOW_REFUSED = (
    "follow_producer runs on local compute only (a Databricks task cannot see the Dagster "
    "instance's producer runs): run mode continuous and Terminate it, or mode once"
)


def upload_entry(client: WorkspaceClient, layout: VolumeLayout) -> str:
    """Upload the task's entry script (`pipes_main.py`); its path on the Volume."""
    remote = f"{layout.staging_dir}/code/pipes_main.py"
    script = Path(pipes_main.__file__).read_bytes()
    client.files.upload(remote, io.BytesIO(script), overwrite=True)
    return remote


def submission(
    client: WorkspaceClient, settings: Settings, script: str, wheel: str, run_name: str
) -> tuple[jobs.SubmitTask, dict[str, Any]]:
    """The task and `jobs.submit` arguments of one analytics run on the compute of `settings`.

    Every compute runs `script` (the shared entry) with the wheel at `wheel` and `pipes_pins`.
    Classic compute: an existing DATABRICKS_CLUSTER_ID is checked first (`CryptoAssetsError` in
    one line), a new cluster is dedicated to the token's user.
    """
    task: dict[str, Any] = {"task_key": TASK_KEY, "spark_python_task": {"python_file": script}}
    if settings.databricks_compute == "serverless":
        environment = {
            "environment_key": ENVIRONMENT_KEY,
            "spec": {
                "environment_version": ENVIRONMENT_VERSION,
                "dependencies": environment_dependencies(wheel, pipes_pins()),
            },
        }
        return jobs.SubmitTask.from_dict({**task, "environment_key": ENVIRONMENT_KEY}), {
            "run_name": run_name,
            "environments": [jobs.JobEnvironment.from_dict(environment)],
        }
    if settings.databricks_cluster_id:
        check_existing_cluster(client, settings.databricks_cluster_id)
        task["existing_cluster_id"] = settings.databricks_cluster_id
    else:
        task["new_cluster"] = dedicated_to(new_cluster(settings), client)
    task["libraries"] = cluster_libraries(wheel, pipes_pins())
    return jobs.SubmitTask.from_dict(task), {"run_name": run_name}


class _SaysWhyRunsFail:
    """Mixed into dagster-databricks' Pipes clients: a failed run says why, with its page."""

    client: WorkspaceClient

    def _poll_til_success(
        self, context: dg.OpExecutionContext | dg.AssetExecutionContext, run_id: int
    ) -> None:
        try:
            super()._poll_til_success(context, run_id)  # type: ignore[misc]
        except DagsterPipesExecutionError as exc:
            raise dg.Failure(description=run_failure_line(self.client, run_id, exc)) from exc


class ReadableServerlessClient(_SaysWhyRunsFail, PipesDatabricksServerlessClient):
    """dagster-databricks' serverless Pipes client (context and messages on the Volume)."""


class ReadableClassicClient(_SaysWhyRunsFail, PipesDatabricksClient):
    """dagster-databricks' classic-compute Pipes client, given the Volume's injector and reader."""


def pipes_client(
    settings: Settings, client: WorkspaceClient, volume_path: str, poll_interval_seconds: float
) -> ReadableServerlessClient | ReadableClassicClient:
    """The Pipes client of the compute of `settings`, its context and messages in `volume_path`."""
    if settings.databricks_compute == "serverless":
        return ReadableServerlessClient(
            client=client, volume_path=volume_path, poll_interval_seconds=poll_interval_seconds
        )
    return ReadableClassicClient(
        client=client,
        context_injector=PipesUnityCatalogVolumesContextInjector(
            client=client, volume_path=volume_path
        ),
        message_reader=PipesUnityCatalogVolumesMessageReader(
            client=client, volume_path=volume_path
        ),
        poll_interval_seconds=poll_interval_seconds,
    )


class PipesAnalytics(dg.ConfigurableResource):
    """Runs the analytics as a Databricks task through Dagster Pipes (serverless or a cluster)."""

    poll_interval_seconds: float = 5.0

    def run(
        self, context: dg.AssetExecutionContext, settings: Settings, extras: dict[str, Any]
    ) -> Sequence[dg.MaterializeResult | dg.AssetCheckResult]:
        """Run the analytics on the compute of `settings` with `extras` (the run's config).

        Anything that stops the run before it is submitted (continuous mode on serverless, a
        run that would follow the producer, a refused token, an unusable cluster, a Volume that
        refuses the upload) is one line, `CONTINUOUS_REFUSED` and `FOLLOW_REFUSED` before
        anything is uploaded.
        """
        if extras.get("mode") == "continuous" and settings.databricks_compute == "serverless":
            raise dg.Failure(description=CONTINUOUS_REFUSED)
        if extras.get("follow_producer"):
            raise dg.Failure(description=FOLLOW_REFUSED)
        layout = VolumeLayout.from_settings(settings)
        try:
            client = workspace_client(settings)
            check_workspace(client)
            script, wheel = upload_entry(client, layout), upload_wheel(client, layout)
            run_name = f"crypto_assets {context.run.run_id[:8]}"
            task, submit_args = submission(client, settings, script, wheel, run_name)
        except CryptoAssetsError as exc:  # a refused token, an unusable cluster, no wheel
            raise dg.Failure(description=str(exc)) from None
        except DatabricksError as exc:
            raise dg.Failure(description=f"Databricks refused: {error_text(exc)}") from None
        context.log.info("the task installs the package's wheel %s", wheel)
        pipes = pipes_client(
            settings, client, f"{layout.staging_dir}/pipes", self.poll_interval_seconds
        )
        payload = {**extras, "environment": remote_environment(settings)}
        invocation = pipes.run(context=context, extras=payload, task=task, submit_args=submit_args)
        return invocation.get_results()


def pipes_analytics(settings: Settings) -> PipesAnalytics:
    """The Pipes resource of the Databricks deployment, its compute's settings checked now.

    A new cluster needs DATABRICKS_NODE_TYPE: missing, the definitions fail to load in one line
    (`CryptoAssetsError`), as with the step launcher, rather than every run later.
    """
    if settings.databricks_compute == "cluster" and not settings.databricks_cluster_id:
        new_cluster(settings)
    return PipesAnalytics()
