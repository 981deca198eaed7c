"""The Databricks deployment: the Volume's paths, Auto Loader, Delta-Spark, the spool's upload."""

from __future__ import annotations

from pathlib import Path

import pytest

from crypto_assets.databricks.autoloader_reader import AutoLoaderReader
from crypto_assets.databricks.deployment import DatabricksDeployment
from crypto_assets.databricks.spark_delta_sink import SparkDeltaSink
from crypto_assets.settings import Settings, SettingsError

VOLUME = "/Volumes/main/crypto/crypto_landing"


@pytest.mark.spark
def test_off_databricks_it_reads_and_writes_the_volume_paths(spark, monkeypatch) -> None:
    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION", raising=False)
    deployment = DatabricksDeployment(Settings(catalog="main", schema_name="crypto"))
    target = deployment.analytics_target(spark, max_files_per_trigger=3)
    assert target.landing_dir == Path(f"{VOLUME}/trades")
    assert target.checkpoint == Path(f"{VOLUME}/_checkpoints/landing_trades_to_delta")
    assert isinstance(target.reader, AutoLoaderReader)
    assert not target.reader.on_databricks  # the JSON file source, not cloudFiles
    assert target.reader.schema_location == f"{VOLUME}/_schemas/landing_trades_to_delta"
    assert target.reader.max_files_per_trigger == 3
    assert isinstance(target.sink, SparkDeltaSink)
    assert target.sink.identifier("trades_raw") == f"delta.`{VOLUME}/_tables/trades_raw`"
    assert "databricks-setup" in target.missing_landing


@pytest.mark.spark
def test_on_databricks_it_names_unity_catalog_tables(spark, monkeypatch) -> None:
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "17.3")
    deployment = DatabricksDeployment(Settings(catalog="main", schema_name="crypto"))
    target = deployment.analytics_target(spark)
    assert target.reader.on_databricks
    assert target.sink.identifier("price_alerts") == "`main`.`crypto`.`price_alerts`"


@pytest.mark.spark
def test_under_a_given_root_it_stands_in_for_the_volume(spark, tmp_path: Path) -> None:
    target = DatabricksDeployment(Settings(), volume_root=tmp_path).analytics_target(spark)
    assert target.landing_dir == tmp_path / "trades"
    assert target.sink.identifier("trades_raw") == f"delta.`{tmp_path}/_tables/trades_raw`"


def test_the_producers_state_is_on_the_volume_so_a_state_file_is_refused(tmp_path: Path) -> None:
    # Refused before any workspace client is built: the state path alone decides it.
    deployment = DatabricksDeployment(Settings(catalog="main", schema_name="crypto"))
    with pytest.raises(SettingsError, match="keeps the producer's state on the Volume"):
        deployment.landing_target(state_path=tmp_path / "state.json")


def test_its_assets_are_located_by_volume_path_and_unity_catalog_name() -> None:
    deployment = DatabricksDeployment(Settings(catalog="main", schema_name="crypto"))
    assert deployment.landing_metadata() == {"landing_location": Path(f"{VOLUME}/trades")}
    assert deployment.table_metadata("trades_raw") == {
        "dagster/table_name": "main.crypto.trades_raw"
    }
