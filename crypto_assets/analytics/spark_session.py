"""The local Spark session: one per process, sized for a small machine, Java checked up front."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from pathlib import Path

from pyspark import SparkContext
from pyspark.sql import SparkSession

from crypto_assets.errors import CryptoAssetsError

logger = logging.getLogger(__name__)

MIN_JAVA = 17
DEFAULT_MASTER = "local[2]"
_VERSION = re.compile(r'version "(\d+)(?:\.(\d+))?')

# Settings for a 2-core machine: few shuffle partitions, no UI, no Hive, Arrow for the Delta
# hand-off, and streaming checkpoints that keep only a short tail of batch logs.
SESSION_CONF = {
    "spark.ui.enabled": "false",
    # A local session talks to itself only: bind the driver to loopback, not the machine's LAN.
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
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
}


class JavaNotFoundError(CryptoAssetsError):
    """No usable Java 17+ for Spark."""


def java_executable() -> Path | None:
    """The java PySpark will launch: ``$JAVA_HOME/bin/java`` if JAVA_HOME is set, else PATH's."""
    # PySpark itself reads JAVA_HOME and PATH, so the check must look where it will look.
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        return candidate if candidate.is_file() else None
    found = shutil.which("java")
    return Path(found) if found else None


def java_major_version(java: Path) -> int | None:
    """Major version printed by ``java -version`` (8 for ``1.8.0_x``), None if it cannot run."""
    try:
        result = subprocess.run(
            [str(java), "-version"], capture_output=True, text=True, timeout=60, check=False
        )
    except OSError:
        return None
    match = _VERSION.search(result.stderr + result.stdout)
    if result.returncode != 0 or not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def check_java() -> None:
    """Raise `JavaNotFoundError` (one line) unless a Java 17+ runtime is available to Spark."""
    hint = f"install a JDK {MIN_JAVA}+ and set JAVA_HOME to it (or put its bin/ on PATH)"
    java = java_executable()
    if java is None:
        where = os.environ.get("JAVA_HOME")
        place = f"JAVA_HOME={where} has no bin/java" if where else "no java on PATH"
        raise JavaNotFoundError(f"Spark needs Java {MIN_JAVA} or newer, but {place}: {hint}")
    major = java_major_version(java)
    if major is None:
        raise JavaNotFoundError(
            f"Spark needs Java {MIN_JAVA} or newer, but {java} does not run: {hint}"
        )
    if major < MIN_JAVA:
        raise JavaNotFoundError(
            f"Spark needs Java {MIN_JAVA} or newer, but {java} is Java {major}: {hint}"
        )


def get_spark_session(
    app_name: str = "crypto_assets", master: str = DEFAULT_MASTER
) -> SparkSession:
    """The process's Spark session (created on first call, reused after), local[2] by default."""
    # Only the first call starts a JVM; later calls (any thread) get the running session back.
    if SparkContext._active_spark_context is None:
        check_java()
    builder = SparkSession.builder.appName(app_name).master(master)
    for key, value in SESSION_CONF.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    logger.info("Spark %s session %s on %s", spark.version, app_name, master)
    return spark
