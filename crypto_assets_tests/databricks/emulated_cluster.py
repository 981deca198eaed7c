"""What an emulated Databricks cluster runs for one spark_python_task (started by emulator.py).

Run as ``<emulated runtime python> -I emulated_cluster.py`` inside a mount namespace where /dbfs
and /Volumes are the emulator's folders. The interpreter is the emulated Databricks Runtime's
(emulated_runtime.py): its site-packages are the runtime's preinstalled packages and the task's
installed libraries. It must not import ``crypto_assets``: the package is importable here only
when the task ships it. The spec comes as a JSON file named by ``EMULATED_CLUSTER_SPEC``: the python
file and its parameters, extra ``sys.path`` entries put right after the file's folder (the run's
installed wheels, shipped zips and folders), the Spark conf, the cluster id, and where to write
the result (the exception for get-output).
"""

from __future__ import annotations

import json
import os
import runpy
import socket
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
    # Speed alone: VACUUM lists a table's files in 10,000 tasks by default (35 s on 2 cores).
    "spark.sql.sources.parallelPartitionDiscovery.parallelism": "2",
}


# What serverless answers a streaming query with another trigger (only availableNow and once run).
SERVERLESS_TRIGGER_REFUSED = (
    "[INFINITE_STREAMING_TRIGGER_NOT_SUPPORTED] Trigger type {} is not supported for this "
    "cluster type. Use a different trigger type e.g. AvailableNow, Once."
)


def build_spark(spec: dict[str, Any]) -> Any:
    """The task's Spark: a local session dressed as a cluster's, or a serverless Connect one."""
    if spec["spark_connect"]:
        return build_connect_spark(spec)
    return build_cluster_spark(spec)


def build_connect_spark(spec: dict[str, Any]) -> Any:
    """A Spark Connect session of a local server started here, as serverless compute gives one.

    The server is a classic session with Spark Connect's plugin on a free loopback port; it runs
    the session's foreachBatch functions in Python workers of the task's interpreter. Streaming
    queries get serverless' triggers only (`refuse_serverless_triggers`).
    """
    from pyspark.sql import SparkSession  # noqa: PLC0415
    from pyspark.sql.connect.session import SparkSession as ConnectSession  # noqa: PLC0415

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    builder = SparkSession.builder.master("local[2]").appName("emulated-serverless")
    conf = {
        **SESSION_CONF,
        **spec["spark_conf"],
        "spark.plugins": "org.apache.spark.sql.connect.SparkConnectPlugin",
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.connect.grpc.binding.port": str(port),
    }
    for key, value in conf.items():
        builder = builder.config(key, value)
    builder.getOrCreate()
    # As on serverless: PySpark builds Spark Connect plans, SparkSession.builder connects here.
    os.environ["SPARK_CONNECT_MODE_ENABLED"] = "1"
    os.environ["SPARK_REMOTE"] = f"sc://127.0.0.1:{port}"
    spark = ConnectSession.builder.remote(os.environ["SPARK_REMOTE"]).getOrCreate()
    refuse_serverless_triggers()
    if spec["cloudfiles_stand_in"]:
        install_cloudfiles_stand_in(spark, spec["cloudfiles_stand_in"])
    return spark


def refuse_serverless_triggers() -> None:
    """Streaming queries of Connect sessions run only with the availableNow or once trigger."""
    from pyspark.sql.connect.streaming.readwriter import DataStreamWriter  # noqa: PLC0415

    own_trigger, own_start = DataStreamWriter.trigger, DataStreamWriter.start

    def trigger(self: Any, *args: Any, **kwargs: Any) -> Any:
        for kind in ("processingTime", "continuous"):
            if kwargs.get(kind) is not None:
                raise RuntimeError(SERVERLESS_TRIGGER_REFUSED.format(kind))
        self._serverless_trigger = True
        return own_trigger(self, *args, **kwargs)

    def start(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not getattr(self, "_serverless_trigger", False):  # the default is processingTime 0
            raise RuntimeError(SERVERLESS_TRIGGER_REFUSED.format("processingTime"))
        return own_start(self, *args, **kwargs)

    DataStreamWriter.trigger, DataStreamWriter.start = trigger, start


def build_cluster_spark(spec: dict[str, Any]) -> Any:
    """A local SparkSession dressed as a Databricks cluster's (clusterUsageTags set)."""
    # Imported here: the shipped sys.path entries come first only once main() has set them.
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
    spark = builder.getOrCreate()
    if spec["cloudfiles_stand_in"]:
        install_cloudfiles_stand_in(spark, spec["cloudfiles_stand_in"])
    return spark


def install_cloudfiles_stand_in(spark: Any, module_path: str) -> None:
    """Give `spark` the Auto Loader stand-in (``format("cloudFiles")``), from its copied module."""
    folder = os.path.dirname(module_path)
    sys.path.insert(0, folder)
    try:
        import cloudfiles  # noqa: PLC0415 - the stand-in's module, copied beside this script
    finally:
        sys.path.remove(folder)  # the task's own imports see nothing of it
    cloudfiles.install_cloudfiles(spark)


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
    # The task file's folder is sys.path[0], as for `python <file>` (dagster's code loader drops
    # sys.path[0] while it imports a code location); what the task ships comes next, before the
    # site-packages of the runtime and its libraries.
    sys.path[:0] = [os.path.dirname(spec["python_file"]), *spec["extra_sys_path"]]
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
            # Spark Connect has no SparkContext: `sc` stays None there, as on serverless.
            context = None if spec["spark_connect"] else spark.sparkContext
            init_globals.update(spark=spark, sc=context)
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
