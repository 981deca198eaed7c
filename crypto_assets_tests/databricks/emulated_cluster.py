"""What an emulated Databricks cluster runs for one spark_python_task (started by emulator.py).

Run as ``python -I -S emulated_cluster.py`` inside a mount namespace where /dbfs and /Volumes are
the emulator's folders. It must not import ``crypto_assets``: the package is importable here only
when the task ships it. The spec comes as a JSON file named by ``EMULATED_CLUSTER_SPEC``: the python
file and its parameters, the site-packages folders to expose (without their ``.pth`` files, so the
editable install's finder stays out), extra ``sys.path`` entries (shipped wheels and zips), the
Spark conf, the cluster id, and where to write the result (the exception for get-output).
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import traceback
from typing import Any

SESSION_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.adaptive.enabled": "false",
}


def build_spark(spec: dict[str, Any]) -> Any:
    """A local SparkSession dressed as a Databricks cluster's (clusterUsageTags set)."""
    # Imported here: sys.path gets the site-packages only in main().
    from pyspark.sql import SparkSession  # noqa: PLC0415

    builder = SparkSession.builder.master("local[2]").appName(f"emulated-{spec['cluster_id']}")
    conf = {
        **SESSION_CONF,
        "spark.databricks.clusterUsageTags.clusterId": spec["cluster_id"],
        "spark.databricks.clusterUsageTags.clusterName": f"emulated-{spec['cluster_id']}",
        "spark.databricks.clusterUsageTags.sparkVersion": spec["spark_version"],
        # Read by dagster-pipes' PipesDbfsMessageWriter; strings, as on a real cluster.
        "spark.databricks.clusterUsageTags.clusterLogDeliveryEnabled": str(
            bool(spec["cluster_log_destination"])
        ).lower(),
        "spark.databricks.clusterUsageTags.clusterLogDestination": spec["cluster_log_destination"],
        **spec["spark_conf"],
    }
    for key, value in conf.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def build_dbutils() -> Any:
    """databricks-sdk's RemoteDbUtils on the emulator (DATABRICKS_HOST/TOKEN of the cluster)."""
    from databricks.sdk.dbutils import RemoteDbUtils  # noqa: PLC0415

    return RemoteDbUtils()


def write_result(path: str, error: BaseException | None) -> None:
    """The run's outcome for get-output: the exception's last line and its traceback."""
    result: dict[str, Any] = {}
    if error is not None:
        lines = traceback.format_exception_only(type(error), error)
        result = {
            "error": lines[-1].strip(),
            "error_trace": "".join(traceback.format_exception(error)),
        }
    with open(path, "w", encoding="utf-8") as stream:
        json.dump(result, stream)


def mount_points() -> set[str]:
    """Mount points of this namespace (a bind mount of the same filesystem fools ismount)."""
    with open("/proc/self/mountinfo", encoding="utf-8") as stream:
        return {line.split()[4] for line in stream}


def main() -> int:
    """Set up sys.path, Spark and dbutils, then run the task's file as ``__main__``."""
    with open(os.environ["EMULATED_CLUSTER_SPEC"], encoding="utf-8") as stream:
        spec = json.load(stream)
    # The runtime's preinstalled packages, without processing .pth files (-S).
    sys.path.extend(spec["site_packages"])
    sys.path[:0] = spec["extra_sys_path"]
    mounted = mount_points()
    for folder in ("/dbfs", "/Volumes"):
        if folder not in mounted:
            raise SystemExit(f"emulated cluster: {folder} is not mounted")
    init_globals: dict[str, Any] = {"spark": None, "sc": None}
    spark = None
    error: BaseException | None = None
    try:
        if spec["start_spark"]:
            spark = build_spark(spec)
            init_globals.update(spark=spark, sc=spark.sparkContext)
        init_globals["dbutils"] = build_dbutils()
        sys.argv = [spec["python_file"], *spec["parameters"]]
        runpy.run_path(spec["python_file"], init_globals=init_globals, run_name="__main__")
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            error = exit_
    except BaseException as raised:  # everything the task raises is its failure
        error = raised
        traceback.print_exc()
    finally:
        write_result(spec["result_path"], error)
        if spark is not None:
            spark.stop()
    return 0 if error is None else 1


if __name__ == "__main__":
    sys.exit(main())
