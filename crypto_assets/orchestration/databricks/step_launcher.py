"""The Spark assets on a classic Databricks cluster, through dagster-databricks' step launcher.

`databricks_step_launcher(settings)` is the `pyspark_step_launcher` resource of the Databricks
deployment with `DATABRICKS_COMPUTE=cluster`. It is dagster-databricks' own launcher (it zips the
package, uploads the step to DBFS, submits one `spark_python_task`, streams the step's events
back), configured from the environment, with three things added where its users get stuck:

- the package it zips is a folder that holds only `crypto_assets/` (the launcher zips everything
  it is given: a checkout would ship `.venv`, `.git` and `.env`);
- the token is given in the `{"env": "DATABRICKS_TOKEN"}` form, so only the variable's name is
  in the pickled step, and the workspace is checked before anything is uploaded: a bad token or
  an unreachable host is one line, not five minutes of retries and a traceback;
- a run that fails outside the step (the cluster could not start, a library did not install, the
  bootstrap crashed) says why, from the run's output, with the run page's URL, instead of the
  service's "Workload failed, see run output for details".

The step launcher is superseded by Dagster Pipes (its `SupersessionWarning` is expected; there
is no plan to remove it): `DATABRICKS_COMPUTE=serverless` uses Pipes (`serverless.py`).
"""

from __future__ import annotations

import importlib.metadata
import shutil
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
from databricks.sdk.service import compute

import crypto_assets
from crypto_assets.databricks.diagnostics import check_workspace, run_failure_line
from crypto_assets.databricks.workspace import WorkspaceError, error_text
from crypto_assets.errors import CryptoAssetsError
from crypto_assets.orchestration.databricks.remote_environment import remote_environment
from crypto_assets.settings import Settings

# Access modes whose clusters give the step Unity Catalog, `sc` and DBFS (clusters API values).
_DEDICATED_ACCESS = frozenset({"SINGLE_USER", "DATA_SECURITY_MODE_DEDICATED"})
# The Databricks Runtime major version whose Spark (4.0) the analytics are built against.
_RUNTIME_MAJOR = "17"
# Cluster states a run cannot start on (a TERMINATED cluster is started by the run).
_UNUSABLE_STATES = frozenset({"ERROR", "UNKNOWN", "TERMINATING"})

# What a Databricks runtime already has (pyspark, Delta, pyarrow), what the launcher adds itself
# (dagster, dagster-databricks, dagster-pyspark, databricks-sdk, at the local versions), and what
# only the local UI needs: everything else the package requires is installed on the cluster.
_PROVIDED_ON_THE_CLUSTER = frozenset(
    {
        "pyspark",
        "delta-spark",
        "pyarrow",
        "dagster",
        "dagster-databricks",
        "dagster-pyspark",
        "databricks-sdk",
        "dagster-webserver",
    }
)
_PACKAGE = Path(crypto_assets.__file__).parent
# What the launcher zips: refreshed from the installed package before every launch.
PACKAGE_FOLDER = Path(tempfile.gettempdir()) / "crypto_assets_databricks_package"


def _requirement_name(requirement: str) -> str:
    name = requirement.split(";", maxsplit=1)[0]
    for stop in "<>=!~[ (":
        name = name.split(stop)[0]
    return name.strip().lower().replace("_", "-")


def cluster_libraries() -> list[dict[str, dict[str, str]]]:
    """The package's runtime dependencies a Databricks runtime lacks, pinned to the local versions.

    Derived from the installed package's own requirements (extras such as `dev` excluded), so a
    dependency added to pyproject.toml reaches the cluster without a second list to keep. Read
    where the step is launched only (`CryptoDatabricksStepLauncher.launch_step`): the cluster
    rebuilds the definitions from the package's code, without its distribution metadata.
    """
    requirements = importlib.metadata.requires("crypto_assets") or []
    names = sorted(
        {_requirement_name(r) for r in requirements if "extra ==" not in r}
        - _PROVIDED_ON_THE_CLUSTER
    )
    return [{"pypi": {"package": f"{name}=={importlib.metadata.version(name)}"}} for name in names]


def cluster_spec(settings: Settings) -> dict[str, Any]:
    """The launcher's `cluster`: the existing DATABRICKS_CLUSTER_ID, else a new job cluster."""
    if settings.databricks_cluster_id:
        return {"existing": settings.databricks_cluster_id}
    if not settings.databricks_node_type:
        raise CryptoAssetsError(
            "DATABRICKS_COMPUTE=cluster needs DATABRICKS_CLUSTER_ID (an existing cluster) or "
            "DATABRICKS_NODE_TYPE (a new cluster per run, e.g. i3.xlarge or Standard_DS3_v2)"
        )
    return {
        "new": {
            "size": {"num_workers": settings.databricks_num_workers},
            "spark_version": settings.databricks_spark_version,
            # Dedicated (single-user) access: Unity Catalog's three-part names and Volumes, `sc`
            # and the launcher's DBFS paths. A cluster without an access mode has no Unity
            # Catalog. The user is the token's, filled in at launch (`launch_step`).
            "data_security_mode": "SINGLE_USER",
            "nodes": {"node_types": {"node_type_id": settings.databricks_node_type}},
            # A cluster without workers is a single node: Spark runs on the driver.
            **(
                {
                    "spark_conf": {
                        "spark.databricks.cluster.profile": "singleNode",
                        "spark.master": "local[*]",
                    },
                    "custom_tags": [{"key": "ResourceClass", "value": "SingleNode"}],
                }
                if settings.databricks_num_workers == 0
                else {}
            ),
        }
    }


def package_folder() -> Path:
    """A folder that holds only a fresh copy of the `crypto_assets` package, for the launcher."""
    target = PACKAGE_FOLDER / _PACKAGE.name
    staging = PACKAGE_FOLDER / f".{_PACKAGE.name}.new"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(_PACKAGE, staging, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return PACKAGE_FOLDER


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
            # Filled in by `launch_step`, on the Dagster side (`cluster_libraries`).
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
        "local_pipeline_package_path": str(PACKAGE_FOLDER),
        "poll_interval_sec": 2.0,
        "verbose_logs": False,
    }


def cluster_problems(cluster: compute.ClusterDetails) -> list[str]:
    """Why an existing cluster cannot run the step, one clause each (none: it can)."""
    name = cluster.cluster_id
    problems = []
    mode = cluster.data_security_mode.value if cluster.data_security_mode else "none"
    if mode not in _DEDICATED_ACCESS:
        problems.append(
            f"cluster {name} has access mode {mode}: the step launcher needs dedicated (single "
            "user) access, for Unity Catalog, `sc` and DBFS; edit the cluster's access mode, or "
            "set DATABRICKS_COMPUTE=serverless"
        )
    runtime = cluster.spark_version or "unknown"
    if runtime.split(".")[0] != _RUNTIME_MAJOR:
        problems.append(
            f"cluster {name} runs Databricks Runtime {runtime}: the analytics need "
            f"{_RUNTIME_MAJOR}.x (Spark 4.0, e.g. 17.3 LTS); change its runtime, or unset "
            "DATABRICKS_CLUSTER_ID for a new cluster per run"
        )
    state = cluster.state.value if cluster.state else "UNKNOWN"
    if state in _UNUSABLE_STATES:
        problems.append(f"cluster {name} is {state}: restart it, or unset DATABRICKS_CLUSTER_ID")
    return problems


def launch_run_config(run_config: Mapping[str, Any], client: WorkspaceClient) -> dict[str, Any]:
    """The launcher's run config completed where the step is launched, never on the cluster.

    The libraries (`cluster_libraries`, from this machine's installed package) and, for a new
    cluster, its single user: the token's own (`current_user.me`), as dedicated access needs.
    An existing cluster is checked first (`cluster_problems`): `CryptoAssetsError` in one line.
    """
    completed = {**run_config, "libraries": cluster_libraries()}
    existing = run_config["cluster"].get("existing")
    if existing is not None:
        problems = cluster_problems(client.clusters.get(existing))
        if problems:
            raise CryptoAssetsError("; ".join(problems))
    new = run_config["cluster"].get("new")
    if new is not None:
        user = client.current_user.me().user_name
        completed["cluster"] = {"new": {**new, "single_user_name": user}}
    return completed


class CryptoDatabricksStepLauncher(DatabricksPySparkStepLauncher):
    """dagster-databricks' launcher that checks the workspace first and says why a run failed."""

    def launch_step(self, step_context: dg.StepExecutionContext) -> Iterator[dg.DagsterEvent]:
        """Refresh the shipped package and check the workspace, then launch the step."""
        package_folder()
        client = self.databricks_runner.client.workspace_client
        try:
            check_workspace(client)
        except WorkspaceError as exc:  # unreachable host, token not accepted, no permission
            raise dg.Failure(description=str(exc)) from None
        try:
            self.run_config = launch_run_config(self.run_config, client)
        except CryptoAssetsError as exc:  # an existing cluster that cannot run the step
            raise dg.Failure(description=str(exc)) from None
        except SdkError as exc:  # no such cluster, no permission to read it
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


@dg.resource(
    config_schema=databricks_pyspark_step_launcher.config_schema,
    description=databricks_pyspark_step_launcher.description,
)
def crypto_databricks_step_launcher(
    context: dg.InitResourceContext,
) -> CryptoDatabricksStepLauncher:
    """The launcher resource; its config is `databricks_pyspark_step_launcher`'s."""
    return CryptoDatabricksStepLauncher(**context.resource_config)


def databricks_step_launcher(settings: Settings) -> dg.ResourceDefinition:
    """The `pyspark_step_launcher` resource of the Databricks deployment on a classic cluster."""
    return crypto_databricks_step_launcher.configured(launcher_config(settings))
