"""Analytics runs on a local Spark Connect server, in a child process the test drives.

A Python process cannot hold the test session's classic SparkContext and a local Spark Connect
server at once (PySpark starts the server inside a classic context of its own), so the runs
happen in a spawned child: the parent sends one request per run through a pipe and gets back the
run's summary as plain facts, or its one-line error. The foreachBatch function then runs, as on
Databricks serverless, pickled in a Python worker that the Connect server starts.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import socket
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crypto_assets.analytics.spark_session import LOOPBACK
from crypto_assets_tests.analytics.runs import summary_facts

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from pyspark.sql import SparkSession

# One run of a few batches of Delta-Spark on 2 busy cores takes a minute or two.
RUN_TIMEOUT_S = 600


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def local_connect_session() -> SparkSession:
    """A Spark Connect client of a server started in this process (local[2], Delta-Spark).

    The server is a classic session with Spark Connect's plugin, as PySpark's ``remote("local")``
    starts one, but on a free loopback port: that one always listens on 15002, which another
    local server (another test process) may hold.
    """
    from pyspark.sql import SparkSession  # noqa: PLC0415 - in the child only
    from pyspark.sql.connect.session import SparkSession as ConnectSession  # noqa: PLC0415

    from crypto_assets.analytics.delta_jars import delta_jar_paths  # noqa: PLC0415
    from crypto_assets.analytics.spark_session import DELTA_CONF, SESSION_CONF  # noqa: PLC0415

    # The server starts the foreachBatch worker with this interpreter (default: python3 on PATH).
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["SPARK_LOCAL_IP"] = LOOPBACK
    port = free_port()
    conf = {
        **SESSION_CONF,
        **DELTA_CONF,
        "spark.jars": ",".join(str(path) for path in delta_jar_paths()),
        "spark.plugins": "org.apache.spark.sql.connect.SparkConnectPlugin",
        "spark.connect.grpc.binding.address": LOOPBACK,
        "spark.connect.grpc.binding.port": str(port),
    }
    builder = SparkSession.builder.master("local[2]").appName("crypto_assets_connect_server")
    for key, value in conf.items():
        builder = builder.config(key, value)
    builder.getOrCreate()
    # From here on PySpark's functions build Spark Connect columns, as after remote("local").
    os.environ["SPARK_CONNECT_MODE_ENABLED"] = "1"
    return ConnectSession.builder.remote(f"sc://{LOOPBACK}:{port}").getOrCreate()


def serve(conn: Connection) -> None:
    """The child: one Databricks-deployment run per request `(data_dir, volume, files a batch)`."""
    from crypto_assets.analytics.pipeline import AnalyticsError, run_analytics  # noqa: PLC0415
    from crypto_assets.analytics.spark_session import is_spark_connect  # noqa: PLC0415
    from crypto_assets.databricks.deployment import DatabricksDeployment  # noqa: PLC0415
    from crypto_assets_tests.analytics.settings_for_tests import (  # noqa: PLC0415
        analytics_settings,
    )

    spark = local_connect_session()
    try:
        while (request := conn.recv()) is not None:
            data_dir, volume, files_per_batch = request
            settings = analytics_settings(Path(data_dir))
            deployment = DatabricksDeployment(settings, volume_root=Path(volume))
            target = deployment.analytics_target(spark, max_files_per_trigger=files_per_batch)
            try:
                summary = run_analytics(spark, settings, target)
            except AnalyticsError as exc:
                conn.send({"error": str(exc)})
                continue
            conn.send(
                {
                    "connect": is_spark_connect(spark),
                    "facts": summary_facts(summary),
                    "rows_total": dict(summary.rows_total),
                }
            )
    finally:
        spark.stop()


class ConnectRunner:
    """The parent's end: a child process with a local Spark Connect session, runs on request."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")  # a fresh interpreter, no classic Spark
        self._conn, child_end = context.Pipe()
        self._process: BaseProcess = context.Process(
            target=serve, args=(child_end,), name="spark-connect-runs"
        )
        self._process.start()
        child_end.close()

    def run(self, data_dir: Path, volume: Path, files_per_batch: int) -> dict[str, Any]:
        """One `once` run of the Databricks deployment on the Volume stand-in `volume`.

        The answer: ``connect`` (the session was Spark Connect), the summary's ``facts``
        (`summary_facts`) and ``rows_total``; or ``error``, the run's `AnalyticsError`.
        """
        self._conn.send((str(data_dir), str(volume), files_per_batch))
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while not self._conn.poll(1.0):
            if not self._process.is_alive():
                raise RuntimeError("the Spark Connect child died: its traceback is on stderr")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no answer from the Spark Connect child in {RUN_TIMEOUT_S} s")
        return self._conn.recv()

    def close(self) -> None:
        """End the child (its Spark Connect server stops with its session)."""
        with contextlib.suppress(OSError):  # the child may be gone already
            self._conn.send(None)
        self._process.join(timeout=120)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._conn.close()
