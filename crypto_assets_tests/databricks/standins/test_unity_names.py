"""The Unity Catalog names stand-in: the sink's tables by ``catalog.schema.table``, for real.

Each Spark application is a child process started here (a session cannot gain catalogs or jars
once started, and the suite's shared session has neither): the first writes through the project's
`SparkDeltaSink` by three-part names; the second, a new application over the same warehouse, finds
the tables and their history again by the same names, as the next emulated Databricks run does.
``python -m`` of this module is that child.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pyarrow as pa
import pytest

from crypto_assets.analytics.ports import BatchTag
from crypto_assets.analytics.schema import ALL_TABLES, TRADES_QUARANTINE, TRADES_RAW
from crypto_assets.databricks.layout import VolumeLayout, quoted
from crypto_assets.databricks.spark_delta_sink import SparkDeltaSink, layout_identifier, table_ddl
from crypto_assets_tests.databricks.emulated_runtime import runtime_root
from crypto_assets_tests.databricks.standins.unity_names import (
    CATALOG_CLASS,
    build_catalog_jar,
    catalog_conf,
    default_classpath,
    merge_conf,
    schema_dir,
    table_dir,
)

CATALOG, SCHEMA = "takamol_demo", "crypto_streaming"
LAYOUT = VolumeLayout(CATALOG, SCHEMA)
# A second catalog with a schema of the same name: its own tables, not LAYOUT's.
OTHER = VolumeLayout("other_catalog", SCHEMA)
TAG, NEXT_TAG = BatchTag("query:unity", 1), BatchTag("query:unity", 2)
MAX_BEFORE = 1_722_000_000_000
REPO_ROOT = Path(__file__).resolve().parents[3]
_APPLICATION_TIMEOUT_S = 400
# Speed alone, for two short applications on 2 cores: Delta rebuilds a table's state in 50
# partitions unless told otherwise (tasks that dominate the reads of tables this small), and a JVM
# this short-lived gains little from C2's compilations. Together they took the two applications
# from 92s to 44s on a 2-core machine shared with other work.
_SHORT_APPLICATION_CONF = {
    "spark.databricks.delta.snapshotPartitions": "2",
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1",
}


# --- the child: one Spark application -----------------------------------------------------------


def _sink(spark: Any, layout: VolumeLayout) -> SparkDeltaSink:
    """The sink as the Databricks branch builds it: Unity Catalog names of `layout`."""
    return SparkDeltaSink(spark, layout_identifier(layout, on_databricks=True))


def _error(action: Callable[[], object]) -> str | None:
    """Spark's error condition of `action` (None when it succeeds)."""
    from pyspark.errors import PySparkException  # noqa: PLC0415 - the child's import

    try:
        action()
    except PySparkException as exc:
        return exc.getCondition()
    return None


def _quarantine_row() -> pa.Table:
    return pa.table(
        {
            "source_file": ["trades_20240801_000000_000001.json"],
            "raw_line": ["not json"],
            "reason": ["not valid JSON"],
            "processed_time": pa.array(
                [dt.datetime(2024, 8, 2, tzinfo=dt.UTC)], pa.timestamp("us", tz="UTC")
            ),
        }
    )


class Clock:
    """Seconds taken by each step of an application, in order."""

    def __init__(self) -> None:
        self.steps: dict[str, float] = {}
        self._last = time.monotonic()

    def mark(self, step: str) -> None:
        """`step` ended now."""
        now = time.monotonic()
        self.steps[step] = round(now - self._last, 1)
        self._last = now


def first_application(spark: Any) -> dict[str, Any]:
    """Create the tables, write a batch and read it back by three-part names; names not there."""
    from crypto_assets_tests.databricks.test_spark_delta_sink import _raw_rows  # noqa: PLC0415

    clock = Clock()
    results: dict[str, Any] = {"steps": clock.steps}
    sink = _sink(spark, LAYOUT)
    sink.ensure_tables()
    clock.mark("ensure_tables")
    sink.ensure_tables()  # CREATE TABLE IF NOT EXISTS of existing tables: nothing happens
    results["tables"] = sorted(
        row["tableName"] for row in spark.sql(f"SHOW TABLES IN {CATALOG}.{SCHEMA}").collect()
    )
    clock.mark("ensure_tables_again")
    results["inserted"] = sink.merge_trades_raw(_raw_rows([1, 2, 3]), TAG, MAX_BEFORE, final=True)
    clock.mark("merge")
    sink.append_quarantine(_quarantine_row(), TAG)
    clock.mark("append")
    results["read_back"] = sorted(
        row["trade_id"] for row in spark.table(f"{CATALOG}.{SCHEMA}.{TRADES_RAW}").collect()
    )
    detail = spark.sql(f"DESCRIBE DETAIL {LAYOUT.table_name(TRADES_RAW)}").first()
    results["location"] = detail["location"]
    results["partitions"] = detail["partitionColumns"]
    clock.mark("read_back")
    # LAYOUT's schema folder was made by the test, as the emulator's schema API makes it; this
    # one by Spark's CREATE SCHEMA.
    spark.sql(f"CREATE SCHEMA {quoted(OTHER.catalog, OTHER.schema)}")
    spark.sql(f"CREATE TABLE {OTHER.table_name(TRADES_RAW)} {table_ddl(TRADES_RAW)}")
    results["other_rows"] = _sink(spark, OTHER).row_count(TRADES_RAW)
    results["other_location"] = spark.sql(
        f"DESCRIBE DETAIL {OTHER.table_name(TRADES_RAW)}"
    ).first()["location"]
    clock.mark("other_catalog")
    unknown = _sink(spark, VolumeLayout("no_such_catalog", SCHEMA))
    results["unknown_catalog_read"] = _error(lambda: unknown.row_count(TRADES_RAW))
    results["unknown_catalog_create"] = _error(unknown.ensure_tables)
    results["unknown_schema_create"] = _error(
        _sink(spark, VolumeLayout(CATALOG, "nope")).ensure_tables
    )
    results["unknown_table_read"] = _error(lambda: spark.table(f"{CATALOG}.{SCHEMA}.nope").count())
    clock.mark("unknown_names")
    return results


def second_application(spark: Any) -> dict[str, Any]:
    """A new application: the same names find the tables, their rows and their history."""
    from delta.tables import DeltaTable  # noqa: PLC0415 - the child's import

    from crypto_assets_tests.databricks.test_spark_delta_sink import _raw_rows  # noqa: PLC0415

    clock = Clock()
    results: dict[str, Any] = {"steps": clock.steps}
    sink = _sink(spark, LAYOUT)
    name = f"{CATALOG}.{SCHEMA}.{TRADES_RAW}"
    results["exists"] = spark.catalog.tableExists(name)
    results["rows"] = sink.row_count(TRADES_RAW)
    clock.mark("rows")
    results["applied"] = sink.applied(TRADES_RAW, TAG)
    results["recorded"] = list(sink.recorded_max_trade_time(TAG))
    results["quarantine_applied"] = sink.applied(TRADES_QUARANTINE, TAG)
    clock.mark("history_again")
    results["inserted_next"] = sink.merge_trades_raw(
        _raw_rows([4]), NEXT_TAG, sink.max_trade_time(), final=True
    )
    clock.mark("merge")
    # The sink's maintenance statements (`maintain` runs them on all four tables), on one table.
    # (VACUUM's listing runs in SESSION_CONF's 2 tasks, not Spark's default 10,000.)
    spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
    spark.sql(f"OPTIMIZE {sink.identifier(TRADES_RAW)}")
    clock.mark("optimize")
    spark.sql(f"VACUUM {sink.identifier(TRADES_RAW)} RETAIN 0 HOURS")
    clock.mark("vacuum")
    results["rows_after_maintenance"] = sink.row_count(TRADES_RAW)
    results["operations"] = [
        row["operation"]
        for row in spark.sql(f"DESCRIBE HISTORY {sink.identifier(TRADES_RAW)}").collect()
    ]
    results["for_name_versions"] = DeltaTable.forName(spark, name).history().count()
    results["schemas"] = sorted(row[0] for row in spark.sql(f"SHOW SCHEMAS IN {CATALOG}").collect())
    clock.mark("history")
    return results


APPLICATIONS = {"first": first_application, "second": second_application}


def main(argv: list[str]) -> int:
    """Child: ``<application> <root> <catalog jar>``; results in ``<root>``."""
    from pyspark.sql import SparkSession  # noqa: PLC0415 - the child's import

    from crypto_assets.analytics.delta_jars import delta_jar_paths  # noqa: PLC0415
    from crypto_assets.analytics.spark_session import DELTA_CONF, SESSION_CONF  # noqa: PLC0415

    application, root, jar = argv[0], Path(argv[1]), Path(argv[2])
    conf = SESSION_CONF | DELTA_CONF | {"spark.jars": ",".join(map(str, delta_jar_paths()))}
    conf = merge_conf(conf, catalog_conf(jar, [LAYOUT.catalog, OTHER.catalog], root / "warehouse"))
    conf = merge_conf(conf, _SHORT_APPLICATION_CONF)
    builder = SparkSession.builder.master("local[2]").appName(f"unity-names-{application}")
    for key, value in conf.items():
        builder = builder.config(key, value)
    started = time.monotonic()
    spark = builder.getOrCreate()
    session_start = round(time.monotonic() - started, 1)
    try:
        results = APPLICATIONS[application](spark)
    finally:
        spark.stop()
    results["steps"] = {"session_start": session_start, **results["steps"]}
    results["total"] = round(time.monotonic() - started, 1)
    (root / f"{application}.json").write_text(json.dumps(results, indent=1))
    return 0


# --- the tests ------------------------------------------------------------------------------------


def run_application(application: str, root: Path, jar: Path) -> dict[str, Any]:
    """Run one Spark application in a child Python; what it found."""
    env = os.environ | {"SPARK_LOCAL_IP": "127.0.0.1"}
    result = subprocess.run(
        [sys.executable, "-m", __spec__.name, application, str(root), str(jar)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=_APPLICATION_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, f"{application} failed:\n{result.stderr[-4000:]}"
    return json.loads((root / f"{application}.json").read_text())


def local_path(location: str) -> Path:
    """The local path of a table location as Delta reports it (``file:/...``)."""
    parsed = urlparse(location)
    assert parsed.scheme == "file", location
    return Path(unquote(parsed.path))


@pytest.mark.slow  # two Spark applications with Delta: minutes on 2 cores
@pytest.mark.timeout(900)
def test_three_part_names_reach_the_same_tables_from_one_application_to_the_next(
    tmp_path: Path,
) -> None:
    # The emulator's jar cache: a jar of this source is compiled once (its own test compiles anew).
    jar = build_catalog_jar(runtime_root() / "standins", default_classpath())
    warehouse = (tmp_path / "warehouse").resolve()
    schema_dir(warehouse, CATALOG, SCHEMA).mkdir(parents=True)

    first = run_application("first", tmp_path, jar)

    assert first["tables"] == sorted(ALL_TABLES)
    assert first["inserted"] == 3
    assert first["read_back"] == [1, 2, 3]
    assert first["partitions"] == ["trade_date"]
    assert local_path(first["location"]) == table_dir(warehouse, CATALOG, SCHEMA, TRADES_RAW)
    # The other catalog's schema of the same name is another folder: its own, empty table.
    assert first["other_rows"] == 0
    assert local_path(first["other_location"]) == table_dir(
        warehouse, OTHER.catalog, SCHEMA, TRADES_RAW
    )
    # A catalog Spark does not know: the namespace goes to spark_catalog, which refuses it (a
    # Databricks cluster without Unity Catalog answers the same).
    assert first["unknown_catalog_read"] == "REQUIRES_SINGLE_PART_NAMESPACE"
    assert first["unknown_catalog_create"] == "REQUIRES_SINGLE_PART_NAMESPACE"
    assert first["unknown_schema_create"] == "SCHEMA_NOT_FOUND"
    assert first["unknown_table_read"] == "TABLE_OR_VIEW_NOT_FOUND"
    for table in ALL_TABLES:
        assert (table_dir(warehouse, CATALOG, SCHEMA, table) / "_delta_log").is_dir()

    second = run_application("second", tmp_path, jar)

    assert second["exists"]
    assert second["rows"] == 3
    assert second["applied"]
    assert second["quarantine_applied"]
    assert second["recorded"] == [True, MAX_BEFORE]
    assert second["inserted_next"] == 1
    assert second["rows_after_maintenance"] == 4
    assert second["operations"][0] == "VACUUM END"
    assert {"OPTIMIZE", "VACUUM START", "MERGE", "CREATE TABLE"} <= set(second["operations"])
    assert second["for_name_versions"] == len(second["operations"])
    assert second["schemas"] == [SCHEMA]
    for application, found in (("first", first), ("second", second)):
        print(f"{application} application, {found['total']}s:", found["steps"])


def test_the_catalog_jar_is_compiled_once_per_source(tmp_path: Path) -> None:
    started = time.monotonic()
    jar = build_catalog_jar(tmp_path, default_classpath())
    compiled_s = time.monotonic() - started
    stamp = jar.stat().st_mtime_ns

    again = build_catalog_jar(tmp_path, default_classpath())

    assert again == jar
    assert again.stat().st_mtime_ns == stamp
    assert [path.name for path in tmp_path.iterdir()] == [jar.name]  # no work folder left over
    with zipfile.ZipFile(jar) as archive:
        assert f"{CATALOG_CLASS.replace('.', '/')}.class" in archive.namelist()
    print(f"javac and jar: {compiled_s:.1f}s")


def test_the_conf_registers_each_catalog_over_one_warehouse(tmp_path: Path) -> None:
    jar = tmp_path / "catalog.jar"
    warehouse = str((tmp_path / "wh").resolve())

    conf = catalog_conf(jar, ["a", "b"], tmp_path / "wh")

    assert conf == {
        "spark.jars": str(jar.resolve()),
        "spark.sql.catalog.a": CATALOG_CLASS,
        "spark.sql.catalog.a.warehouse": warehouse,
        "spark.sql.catalog.b": CATALOG_CLASS,
        "spark.sql.catalog.b.warehouse": warehouse,
    }
    assert (tmp_path / "wh").is_dir()
    merged = merge_conf(
        {"spark.jars": "/delta.jar", "spark.driver.extraJavaOptions": "-Da=1", "x": "1"},
        conf | {"spark.driver.extraJavaOptions": "-Db=2"},
    )
    assert merged["spark.jars"] == f"/delta.jar,{jar.resolve()}"
    assert merged["spark.driver.extraJavaOptions"] == "-Da=1 -Db=2"
    assert merged["x"] == "1"
    assert schema_dir(tmp_path, "Takamol_Demo", "Crypto") == tmp_path / "takamol_demo__crypto.db"
    assert table_dir(tmp_path, "c", "s", "T") == tmp_path / "c__s.db" / "t"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
