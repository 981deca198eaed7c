"""The Delta-Spark jars of the install: what is cached, the one-line error, the Delta session."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from crypto_assets.analytics.delta_jars import (
    MANIFEST,
    DeltaJarsMissingError,
    artifact_name,
    delta_jar_paths,
    fetch_delta_jars,
    jar_cache_dir,
    pyspark_jars_dir,
)
from crypto_assets.analytics.spark_session import has_delta


def test_artifact_names() -> None:
    assert artifact_name("io.delta__delta-storage-4.4.0.jar") == "delta-storage"
    assert artifact_name("io.delta__delta-spark_4.0_2.13-4.4.0.jar") == "delta-spark_4.0_2.13"
    assert artifact_name("zstd-jni-1.5.6-9.jar") == "zstd-jni"
    assert artifact_name("scala-library-2.13.16.jar") == "scala-library"


def test_missing_jars_are_one_line_naming_the_folder(tmp_path: Path) -> None:
    with pytest.raises(DeltaJarsMissingError) as error:
        delta_jar_paths(tmp_path)
    assert str(error.value) == f"Delta-Spark jars missing in {tmp_path}: run make install"
    (tmp_path / MANIFEST).write_text("io.delta__delta-storage-4.4.0.jar\n")  # listed, not there
    with pytest.raises(DeltaJarsMissingError, match="run make install"):
        delta_jar_paths(tmp_path)


def test_the_install_cached_delta_spark_and_delta_storage() -> None:
    paths = delta_jar_paths()
    assert all(path.parent == jar_cache_dir() for path in paths)
    names = {artifact_name(path.name): path for path in paths}
    assert {"delta-spark_4.0_2.13", "delta-storage"} <= set(names)
    assert names["delta-spark_4.0_2.13"].name.endswith("-4.4.0.jar")
    assert names["delta-storage"].name.endswith("-4.4.0.jar")
    # Real jars with Delta's classes, not placeholders.
    with zipfile.ZipFile(names["delta-spark_4.0_2.13"]) as jar:
        assert "io/delta/sql/DeltaSparkSessionExtension.class" in jar.namelist()
    # Nothing Spark already ships (two Hadoop or Scala versions on one classpath would clash).
    provided = {artifact_name(jar.name) for jar in pyspark_jars_dir().glob("*.jar")}
    assert not provided & set(names)


def test_fetching_again_is_a_no_op() -> None:
    before = {path: path.stat().st_mtime_ns for path in delta_jar_paths()}
    assert fetch_delta_jars() == list(before)
    assert {path: path.stat().st_mtime_ns for path in before} == before


@pytest.mark.spark
def test_the_shared_test_session_has_delta(spark) -> None:
    assert has_delta(spark)
    assert spark.conf.get("spark.sql.catalog.spark_catalog") == (
        "org.apache.spark.sql.delta.catalog.DeltaCatalog"
    )
    loaded = spark.sparkContext.getConf().get("spark.jars")
    assert {Path(jar.removeprefix("file:")).name for jar in loaded.split(",")} == {
        path.name for path in delta_jar_paths()
    }
