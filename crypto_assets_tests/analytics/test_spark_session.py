"""The Java check before Spark starts, and the shared session's settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from crypto_assets.analytics.spark_session import JavaNotFoundError, check_java, get_spark_session


def test_unusable_java_home_gives_one_line_cli_error(tmp_path: Path, landing_records) -> None:
    # A fresh process, so the shared Spark session of this run is untouched.
    (tmp_path / "landing" / "trades").mkdir(parents=True)
    env = {**os.environ, "JAVA_HOME": str(tmp_path / "no-jdk"), "PATH": "/usr/bin/false-dir"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "crypto_assets.cli",
            "analytics",
            "--data-dir",
            str(tmp_path),
            "--once",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == (
        f"crypto-assets analytics: error: Spark needs Java 17 or newer, but "
        f"JAVA_HOME={tmp_path / 'no-jdk'} has no bin/java: install a JDK 17+ and set JAVA_HOME "
        "to it (or put its bin/ on PATH)"
    )
    assert "Traceback" not in result.stderr
    assert "Exception" not in result.stderr


def fake_java(directory: Path, banner: str) -> Path:
    java = directory / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text(f"#!/bin/sh\necho '{banner}' >&2\n")
    java.chmod(0o755)
    return directory


@pytest.mark.parametrize(
    ("banner", "major"),
    [('openjdk version "11.0.22" 2024-01-16', 11), ('java version "1.8.0_392"', 8)],
)
def test_old_java_is_refused(tmp_path: Path, monkeypatch, banner: str, major: int) -> None:
    monkeypatch.setenv("JAVA_HOME", str(fake_java(tmp_path, banner)))
    with pytest.raises(JavaNotFoundError, match=f"is Java {major}: install a JDK 17"):
        check_java()


def test_java_17_passes(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(
        "JAVA_HOME", str(fake_java(tmp_path, 'openjdk version "17.0.15" 2025-04-15'))
    )
    check_java()


def test_no_java_on_path(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(JavaNotFoundError, match="no java on PATH"):
        check_java()


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
