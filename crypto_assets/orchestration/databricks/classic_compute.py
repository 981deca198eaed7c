"""A classic Databricks cluster for the analytics, whichever launcher reaches it.

Both the step launcher and Pipes on classic compute run on the existing DATABRICKS_CLUSTER_ID or
on a new job cluster per run (`new_cluster`, in the Jobs API's terms). Dedicated (single user)
access either way: Unity Catalog's three-part names and Volumes, and for the step launcher `sc`
and DBFS; a cluster without an access mode has no Unity Catalog. An existing cluster is checked
before a run is submitted (`check_existing_cluster`); a new one gets the token's user, read where
the run is launched (`dedicated_to`).
"""

from __future__ import annotations

from typing import Any

from databricks.sdk import WorkspaceClient
from databricks.sdk.service import compute

from crypto_assets.errors import CryptoAssetsError
from crypto_assets.settings import Settings

# Access modes whose clusters give the analytics Unity Catalog, `sc` and DBFS (clusters API).
_DEDICATED_ACCESS = frozenset({"SINGLE_USER", "DATA_SECURITY_MODE_DEDICATED"})
# The Databricks Runtime major version whose Spark (4.0) the analytics are built against.
_RUNTIME_MAJOR = "17"
# Cluster states a run cannot start on (a TERMINATED cluster is started by the run).
_UNUSABLE_STATES = frozenset({"ERROR", "UNKNOWN", "TERMINATING"})


def new_cluster(settings: Settings) -> dict[str, Any]:
    """A new job cluster of `settings` (Jobs API `new_cluster`), dedicated to a user yet unnamed.

    `CryptoAssetsError` in one line without DATABRICKS_NODE_TYPE.
    """
    if not settings.databricks_node_type:
        raise CryptoAssetsError(
            "DATABRICKS_COMPUTE=cluster needs DATABRICKS_CLUSTER_ID (an existing cluster) or "
            "DATABRICKS_NODE_TYPE (a new cluster per run, e.g. i3.xlarge or Standard_DS3_v2)"
        )
    cluster: dict[str, Any] = {
        "spark_version": settings.databricks_spark_version,
        "node_type_id": settings.databricks_node_type,
        "num_workers": settings.databricks_num_workers,
        # The user is the token's, filled in at launch (`dedicated_to`).
        "data_security_mode": "SINGLE_USER",
    }
    if settings.databricks_num_workers == 0:  # a single node: Spark runs on the driver
        cluster["spark_conf"] = {
            "spark.databricks.cluster.profile": "singleNode",
            "spark.master": "local[*]",
        }
        cluster["custom_tags"] = {"ResourceClass": "SingleNode"}
    return cluster


def dedicated_to(cluster: dict[str, Any], client: WorkspaceClient) -> dict[str, Any]:
    """`cluster` (a new cluster's spec) dedicated to the token's own user (`current_user.me`)."""
    return {**cluster, "single_user_name": client.current_user.me().user_name}


def cluster_problems(cluster: compute.ClusterDetails) -> list[str]:
    """Why an existing cluster cannot run the analytics, one clause each (none: it can)."""
    name = cluster.cluster_id
    problems = []
    mode = cluster.data_security_mode.value if cluster.data_security_mode else "none"
    if mode not in _DEDICATED_ACCESS:
        problems.append(
            f"cluster {name} has access mode {mode}: the analytics need dedicated (single user) "
            "access, for Unity Catalog (and `sc` and DBFS for the step launcher); edit the "
            "cluster's access mode, or set DATABRICKS_COMPUTE=serverless"
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


def check_existing_cluster(client: WorkspaceClient, cluster_id: str) -> None:
    """`CryptoAssetsError` in one line unless `cluster_id` can run the analytics (`clusters/get`).

    The SDK's own error when the cluster cannot be read (no such cluster, no permission).
    """
    problems = cluster_problems(client.clusters.get(cluster_id))
    if problems:
        raise CryptoAssetsError("; ".join(problems))
