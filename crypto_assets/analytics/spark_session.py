"""The Spark session: on Databricks the runtime's; locally one per process, sized for a small
machine, Java checked up front, with the Delta-Spark jars of the install when asked for Delta,
and started from the install's class archive when there is one (`local.class_archive`)."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pyspark
from pyspark import SparkContext
from pyspark.sql import SparkSession

from crypto_assets.analytics.delta_jars import delta_jar_paths
from crypto_assets.analytics.java_runtime import check_java
from crypto_assets.errors import CryptoAssetsError

logger = logging.getLogger(__name__)

DEFAULT_MASTER = "local[2]"
# Loaded by the JVM before Spark's first log line: WARN and up, no default-profile banner, no
# native-hadoop notice. Shipped as package data beside this module.
LOG4J_CONFIG = Path(__file__).with_name("log4j2.properties")
LOOPBACK = "127.0.0.1"

# Set by every Databricks Runtime in the driver's environment (for example "17.3").
DATABRICKS_RUNTIME_ENV = "DATABRICKS_RUNTIME_VERSION"
# Delta-Spark's SQL (MERGE INTO, DESCRIBE HISTORY, OPTIMIZE, delta.`path`) in a local session.
DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    # Delta rebuilds a table's state from its log in 50 partitions by default: on 2 local cores
    # and tables of a few files that is most of the time of reading one (measured: a two-session
    # test of the Unity Catalog stand-in went from 92 s to 54 s). Local sessions only: on
    # Databricks the runtime's session is used as it is.
    "spark.databricks.delta.snapshotPartitions": "2",
}

# Settings for a 2-core machine: few shuffle partitions, no UI, no Hive, Arrow for the Delta
# hand-off, and streaming checkpoints that keep only a short tail of batch logs.
SESSION_CONF = {
    "spark.ui.enabled": "false",
    # A local session talks to itself only: bind the driver to loopback, not the machine's LAN.
    "spark.driver.host": LOOPBACK,
    "spark.driver.bindAddress": LOOPBACK,
    # A file: URI, so a checkout path with spaces survives the launcher's option splitting.
    # C1 only (TieredStopAtLevel=1): locally the JVM plans the query, lists the landing files
    # and writes the checkpoint, while a batch's work runs in Python, Arrow, delta-rs and
    # DuckDB; C2's compilations cost more CPU than they gain on 2 cores (a 1,000,000-trade
    # backlog: 10.9 s -> 9.3 s as one process; docs/benchmarks.md).
    "spark.driver.extraJavaOptions": (
        f"-Dlog4j2.configurationFile={LOG4J_CONFIG.as_uri()} -XX:TieredStopAtLevel=1"
    ),
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.sql.session.timeZone": "UTC",
    "spark.driver.memory": "2g",
    "spark.sql.catalogImplementation": "in-memory",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.streaming.minBatchesToRetain": "20",
    "spark.sql.streaming.fileSource.log.compactInterval": "10",
    "spark.sql.streaming.fileSource.log.cleanupDelay": "5m",
    "spark.sql.adaptive.enabled": "false",
    # A micro-batch of many landing files is listed on the driver, not by a Spark job per batch.
    "spark.sql.sources.parallelPartitionDiscovery.threshold": "100000",
    # Delta's VACUUM lists a table's files in this many tasks (10,000 by default): 35 s a table
    # on 2 cores, against 2-3 s with 2.
    "spark.sql.sources.parallelPartitionDiscovery.parallelism": "2",
}


def class_archive_path() -> Path:
    """Where the install keeps the local JVM's class archive: one per virtualenv and PySpark."""
    return Path(sys.prefix) / "spark-class-archive" / f"pyspark-{pyspark.__version__}.jsa"


def class_archive_options(archive: Path) -> list[str]:
    """JVM options that map `archive` when this JVM and classpath made it, and say nothing.

    A JVM checks an archive before mapping it (its Java build, Spark's classpath) and starts
    without it when they differ; the log options keep that quiet, as the archive only saves time.
    """
    # Quoted: Spark splits its JVM options at spaces, and a checkout path may hold some.
    return [f'-XX:SharedArchiveFile="{archive}"', "-Xlog:cds=off", "-Xlog:cds+dynamic=off"]


@contextmanager
def _loopback_local_ip() -> Iterator[None]:
    """Set ``SPARK_LOCAL_IP=127.0.0.1`` (unless set) while the JVM is launched, then restore."""
    # Spark picks its local address from this variable alone, before any session setting is read;
    # unset, it warns that the hostname resolves to loopback and picks the LAN address. PySpark
    # copies os.environ into the JVM's environment, so it is set only around the launch.
    if "SPARK_LOCAL_IP" in os.environ:
        yield
        return
    os.environ["SPARK_LOCAL_IP"] = LOOPBACK
    try:
        yield
    finally:
        os.environ.pop("SPARK_LOCAL_IP", None)


@contextmanager
def _own_sigint_handler() -> Iterator[None]:
    """Keep the process's SIGINT handler across the creation of the SparkContext.

    PySpark installs one that cancels every running job and raises KeyboardInterrupt. SIGINT is
    how Dagster terminates a run worker, and Dagster's own handler turns it into a stop request
    that a continuous query honours between batches; a CLI installs its own handlers after this.
    """
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGINT)
    try:
        yield
    finally:
        if in_main_thread and previous is not None:
            signal.signal(signal.SIGINT, previous)


def on_databricks() -> bool:
    """True inside a Databricks Runtime (its driver sets DATABRICKS_RUNTIME_VERSION)."""
    return bool(os.environ.get(DATABRICKS_RUNTIME_ENV))


def get_spark_session(
    app_name: str = "crypto_assets",
    master: str = DEFAULT_MASTER,
    *,
    delta: bool = False,
    java_options: Sequence[str] | None = None,
) -> SparkSession:
    """The process's Spark session (created on first call, reused after), local[2] by default.

    On Databricks it is the runtime's active session, never a new one (the runtime has Delta).
    With `delta` a new local session loads the Delta-Spark jars fetched by `make install`; a
    session cannot gain jars once started, so a running one without them is an error. A new
    local JVM gets `java_options`; by default, those of the install's class archive if it has
    one (`class_archive_path`).
    """
    if on_databricks():
        active = SparkSession.getActiveSession()
        return active if active is not None else SparkSession.builder.getOrCreate()
    # Only the first call starts a JVM; later calls (any thread) get the running session back.
    starting = SparkContext._active_spark_context is None
    if starting:
        check_java()
    builder = SparkSession.builder.appName(app_name).master(master)
    conf = dict(SESSION_CONF)
    if java_options is None:
        archive = class_archive_path()
        java_options = class_archive_options(archive) if archive.is_file() else []
    conf["spark.driver.extraJavaOptions"] = " ".join(
        [conf["spark.driver.extraJavaOptions"], *java_options]
    )
    if delta:
        conf |= DELTA_CONF
        conf["spark.jars"] = ",".join(str(path) for path in delta_jar_paths())
    for key, value in conf.items():
        builder = builder.config(key, value)
    with _loopback_local_ip(), _own_sigint_handler():
        spark = builder.getOrCreate()
    if delta and not has_delta(spark):
        raise CryptoAssetsError(
            "the running Spark session was started without Delta-Spark: "
            "ask for get_spark_session(delta=True) before anything else starts Spark"
        )
    logger.info(
        "Spark %s session %s on %s%s", spark.version, app_name, master, " with Delta" * delta
    )
    return spark


def is_spark_connect(spark: SparkSession) -> bool:
    """True for a Spark Connect session (Databricks serverless, standard access mode, a remote).

    Told by the session's class, whose module is PySpark's Connect client: importing that module
    to compare needs the Connect client's own packages (pandas, grpcio), which classic Spark
    does not.
    """
    return type(spark).__module__.startswith("pyspark.sql.connect.")


def has_delta(spark: SparkSession) -> bool:
    """True when the session was started with Delta-Spark's SQL extension."""
    return DELTA_CONF["spark.sql.extensions"] in spark.conf.get("spark.sql.extensions", "")
