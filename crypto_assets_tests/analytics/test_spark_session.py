"""The shared session's settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from crypto_assets.analytics.spark_session import get_spark_session


@pytest.mark.spark
def test_shared_session_settings(spark) -> None:
    conf = spark.conf
    assert spark.sparkContext.master == "local[2]"
    assert conf.get("spark.sql.session.timeZone") == "UTC"
    assert conf.get("spark.ui.enabled") == "false"
    assert 2 <= int(conf.get("spark.sql.shuffle.partitions")) <= 4
    assert conf.get("spark.sql.catalogImplementation") == "in-memory"


# A fresh interpreter starts the session, logs one probe warning and one probe info line through
# the JVM's log4j, and reports where the driver is bound and whether its SIGINT handler survived.
_QUIET_START = """
import os
import signal
def ours(signum, frame):
    pass
signal.signal(signal.SIGINT, ours)
from crypto_assets.analytics.spark_session import get_spark_session
spark = get_spark_session(app_name="quiet_start")
print("SIGINT handler kept=" + str(signal.getsignal(signal.SIGINT) is ours))
assert spark.range(5).count() == 5
jvm_log = spark._jvm.org.apache.logging.log4j.LogManager.getLogger("crypto_assets.probe")
jvm_log.warn("probe warning from the JVM")
jvm_log.info("probe info from the JVM")
print("driver.host=" + spark.sparkContext.getConf().get("spark.driver.host"))
print("SPARK_LOCAL_IP after start=" + os.environ.get("SPARK_LOCAL_IP", "<unset>"))
spark.stop()
"""

# What stock Spark 4 prints on every start (seen on this project's machines before the fix).
_START_NOISE = (
    "resolves to a loopback address",
    "Set SPARK_LOCAL_IP",
    "Using Spark's default log4j profile",
    "Setting default log level",
    "To adjust logging level",
    "NativeCodeLoader",
    "native-hadoop",
)
# Printed by the JVM itself for the module Spark's launcher always adds; no option turns it off.
_INCUBATOR_WARNING = "WARNING: Using incubator modules: jdk.incubator.vector"


@pytest.mark.spark
def test_session_starts_without_spark_start_up_noise(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key != "SPARK_LOCAL_IP"}
    result = subprocess.run(
        [sys.executable, "-c", _QUIET_START],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for noise in _START_NOISE:
        assert noise not in result.stderr, result.stderr
    stderr_lines = [line for line in result.stderr.splitlines() if line.strip()]
    # Warnings still reach the console (at WARN, in Spark's usual layout); info does not.
    probe = [line for line in stderr_lines if "probe" in line]
    assert len(probe) == 1, result.stderr
    assert probe[0].endswith(" WARN probe: probe warning from the JVM")
    assert set(stderr_lines) - set(probe) <= {_INCUBATOR_WARNING}, result.stderr
    assert "driver.host=127.0.0.1" in result.stdout.splitlines()
    # The variable is set only while the JVM launches, not left in the caller's environment.
    assert "SPARK_LOCAL_IP after start=<unset>" in result.stdout.splitlines()
    # PySpark's own SIGINT handler (cancel every job, raise KeyboardInterrupt) is not left in
    # place: SIGINT is Dagster's termination, which a continuous query turns into a clean stop.
    assert "SIGINT handler kept=True" in result.stdout.splitlines()


@pytest.mark.spark
def test_on_databricks_the_session_is_the_runtimes(spark, monkeypatch) -> None:
    # The runtime's session is active in the driver; nothing is built or configured. (Which
    # Python session object PySpark calls active changes as other tests of this worker run
    # streaming batches, so this test asks PySpark rather than naming the fixture's object.)
    from pyspark.sql import SparkSession  # noqa: PLC0415 - only the Spark tests load PySpark

    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "17.3")
    session = get_spark_session(app_name="ignored", delta=True)
    assert session is SparkSession.getActiveSession()
    assert session.sparkContext is spark.sparkContext  # the running JVM: nothing was started
    assert session.conf.get("spark.app.name") != "ignored"  # and nothing was configured
