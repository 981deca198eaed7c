"""The Spark assets on a classic Databricks cluster, through dagster-databricks' step launcher.

`databricks_step_launcher(settings)` is the `pyspark_step_launcher` resource of the Databricks
deployment with `DATABRICKS_COMPUTE=cluster` and `DATABRICKS_LAUNCHER=step_launcher` (the
default). It is dagster-databricks' own launcher (it uploads the step to DBFS, submits one
`spark_python_task`, streams the step's events back), configured from the environment, with what
its users get stuck on added:

- the code the cluster imports is the package's wheel (`wheel.py`), uploaded to the Volume and
  installed as a `whl` library beside the PyPI pins a runtime lacks (`libraries.py`), all
  computed here, where the step is launched: the cluster rebuilds the definitions from the
  installed wheel alone. The launcher still zips a folder into `code.zip` (it always does, and
  its step main unzips it onto `sys.path`): the folder it is given is an empty one
  (`NO_CODE_FOLDER`), so that zip holds nothing and no second copy of the package competes with
  the installed one;
- the token is given in the `{"env": "DATABRICKS_TOKEN"}` form, so only the variable's name is
  in the pickled step, and the workspace is checked before anything is uploaded: a bad token, an
  unreachable host or a workspace without DBFS is one line, not minutes of retries and a
  traceback;
- a run that fails outside the step (the cluster could not start, a library did not install, the
  bootstrap crashed) says why, from the run's output, with the run page's URL, instead of the
  service's "Workload failed, see run output for details".

The step launcher is superseded by Dagster Pipes (its `SupersessionWarning` is expected; there
is no plan to remove it): `DATABRICKS_LAUNCHER=pipes` and serverless compute use Pipes
(`pipes.py`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_databricks.databricks import DatabricksError
from dagster_databricks.databricks_pyspark_step_launcher import (
    DatabricksPySparkStepLauncher,
    databricks_pyspark_step_launcher,
)
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import DatabricksError as SdkError

from crypto_assets.databricks.diagnostics import check_workspace, run_failure_line
from crypto_assets.databricks.layout import VolumeLayout
from crypto_assets.databricks.workspace import WorkspaceError, error_text
from crypto_assets.errors import CryptoAssetsError
from crypto_assets.orchestration.databricks.classic_compute import (
    check_existing_cluster,
    dedicated_to,
    new_cluster,
)
from crypto_assets.orchestration.databricks.libraries import cluster_libraries, pypi_pins
from crypto_assets.orchestration.databricks.remote_environment import remote_environment
from crypto_assets.orchestration.databricks.wheel import upload_wheel
from crypto_assets.settings import Settings

# What the launcher zips into code.zip: an empty folder (see the module's docstring).
NO_CODE_FOLDER = Path(tempfile.gettempdir()) / "crypto_assets_databricks_no_code"


def cluster_spec(settings: Settings) -> dict[str, Any]:
    """The launcher's `cluster`: the existing DATABRICKS_CLUSTER_ID, else a new job cluster.

    The new cluster is `new_cluster`'s, in dagster-databricks' own shape (`size`, `nodes`, tags
    as a list of key and value).
    """
    if settings.databricks_cluster_id:
        return {"existing": settings.databricks_cluster_id}
    cluster = new_cluster(settings)
    spec: dict[str, Any] = {
        "size": {"num_workers": cluster.pop("num_workers")},
        "nodes": {"node_types": {"node_type_id": cluster.pop("node_type_id")}},
        **cluster,
    }
    tags = spec.pop("custom_tags", None)
    if tags:
        spec["custom_tags"] = [{"key": key, "value": value} for key, value in tags.items()]
    return {"new": spec}


def launcher_config(settings: Settings) -> dict[str, Any]:
    """dagster-databricks' launcher config: no secret in it, only the token's variable name."""
    if not settings.databricks_host:
        raise CryptoAssetsError(
            "CRYPTO_DEPLOYMENT=databricks needs DATABRICKS_HOST (https://<workspace>) and "
            "DATABRICKS_TOKEN (a personal access token)"
        )
    return {
        "run_config": {
            "run_name": "crypto_assets streaming analytics",
            "cluster": cluster_spec(settings),
            # Filled in by `launch_step`, on the Dagster side (`launch_run_config`).
            "libraries": [],
        },
        "databricks_host": settings.databricks_host,
        # Only the variable's name is stored, never its value: a literal token in this config
        # would be pickled into the step uploaded to DBFS.
        "databricks_token": {"env": "DATABRICKS_TOKEN"},
        # The cluster rebuilds the definitions from its own environment: it gets the settings
        # (never the token: the cluster authenticates as itself).
        "env_variables": remote_environment(settings),
        # No default in dagster-databricks' schema, yet required by the launcher.
        "permissions": {},
        "secrets_to_env_variables": [],
        # Always zipped by the launcher; the cluster imports the installed wheel instead.
        "local_pipeline_package_path": str(NO_CODE_FOLDER),
        "poll_interval_sec": 2.0,
        "verbose_logs": False,
    }


def launch_run_config(
    run_config: Mapping[str, Any], client: WorkspaceClient, layout: VolumeLayout
) -> dict[str, Any]:
    """The launcher's run config completed where the step is launched, never on the cluster.

    An existing cluster is checked first (`check_existing_cluster`: `CryptoAssetsError` in one
    line); a new one is dedicated to the token's user. Then the package's wheel is uploaded to
    `layout`'s Volume (`upload_wheel`) and the libraries are that wheel and `pypi_pins`, from
    this machine's installed package.
    """
    completed = dict(run_config)
    existing = run_config["cluster"].get("existing")
    if existing is not None:
        check_existing_cluster(client, existing)
    new = run_config["cluster"].get("new")
    if new is not None:
        completed["cluster"] = {"new": dedicated_to(new, client)}
    completed["libraries"] = cluster_libraries(upload_wheel(client, layout), pypi_pins())
    return completed


class CryptoDatabricksStepLauncher(DatabricksPySparkStepLauncher):
    """dagster-databricks' launcher that checks the workspace first and says why a run failed.

    `layout`: the Volume the package's wheel is uploaded to.
    """

    def __init__(self, layout: VolumeLayout, **config: Any) -> None:
        super().__init__(**config)
        self.layout = layout

    def launch_step(self, step_context: dg.StepExecutionContext) -> Iterator[dg.DagsterEvent]:
        """Check the workspace and the cluster, upload the wheel, then launch the step."""
        NO_CODE_FOLDER.mkdir(parents=True, exist_ok=True)
        client = self.databricks_runner.client.workspace_client
        try:
            # The launcher stages through DBFS: a workspace without it fails here, in one line.
            check_workspace(client, dbfs=True)
        except WorkspaceError as exc:  # unreachable host, token not accepted, no DBFS
            raise dg.Failure(description=str(exc)) from None
        try:
            self.run_config = launch_run_config(self.run_config, client, self.layout)
        except CryptoAssetsError as exc:  # a cluster that cannot run the step, no wheel
            raise dg.Failure(description=str(exc)) from None
        except SdkError as exc:  # no such cluster, no Volume, no permission to read or write
            raise dg.Failure(description=f"Databricks refused: {error_text(exc)}") from exc
        try:
            yield from super().launch_step(step_context)
        except SdkError as exc:  # refused: no such cluster, a bad spec, no permission
            raise dg.Failure(
                description=f"Databricks refused the step's run: {error_text(exc)}"
            ) from exc

    def step_events_iterator(
        self, step_context: dg.StepExecutionContext, step_key: str, databricks_run_id: int
    ) -> Iterator[dg.DagsterEvent]:
        """The step's events; a run that failed says why, from its output, with its page."""
        try:
            yield from super().step_events_iterator(step_context, step_key, databricks_run_id)
        except DatabricksError as exc:
            client = self.databricks_runner.client.workspace_client
            raise dg.Failure(description=run_failure_line(client, databricks_run_id, exc)) from exc


def databricks_step_launcher(settings: Settings) -> dg.ResourceDefinition:
    """The `pyspark_step_launcher` resource of the Databricks deployment on a classic cluster.

    Its config is `databricks_pyspark_step_launcher`'s (`launcher_config`); the wheel goes to
    the Volume of `settings`.
    """
    layout = VolumeLayout.from_settings(settings)

    @dg.resource(
        config_schema=databricks_pyspark_step_launcher.config_schema,
        description=databricks_pyspark_step_launcher.description,
    )
    def crypto_databricks_step_launcher(
        context: dg.InitResourceContext,
    ) -> CryptoDatabricksStepLauncher:
        return CryptoDatabricksStepLauncher(layout, **context.resource_config)

    return crypto_databricks_step_launcher.configured(launcher_config(settings))
