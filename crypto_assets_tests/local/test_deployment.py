"""The local deployment: every path under CRYPTO_DATA_DIR, its reader, sink and lakehouse."""

from __future__ import annotations

from pathlib import Path

import pytest

from crypto_assets.local.delta_sink import DeltaSink
from crypto_assets.local.deployment import LocalDeployment
from crypto_assets.local.lakehouse import LocalLakehouse
from crypto_assets.local.landing_reader import LocalLandingReader
from crypto_assets.orchestration.deployments import build_deployment
from crypto_assets.producer.landing_target import StateFile
from crypto_assets.settings import Settings


@pytest.mark.spark
def test_the_analytics_read_the_landing_folder_and_write_delta_rs_tables(
    spark, tmp_path: Path
) -> None:
    target = LocalDeployment(Settings(data_dir=tmp_path)).analytics_target(
        spark, max_files_per_trigger=3
    )
    assert isinstance(target.reader, LocalLandingReader)
    assert isinstance(target.sink, DeltaSink)
    assert target.landing_dir == tmp_path / "landing" / "trades"
    assert target.checkpoint == tmp_path / "checkpoints" / "landing_trades_to_delta"
    assert target.reader.checkpoint_dir == target.checkpoint
    assert target.reader.max_files_per_trigger == 3
    assert target.sink.path("trades_raw") == str(tmp_path / "delta" / "trades_raw")


def test_the_producer_lands_in_the_landing_folder_with_its_own_state(tmp_path: Path) -> None:
    deployment = LocalDeployment(Settings(data_dir=tmp_path))
    target = deployment.landing_target()
    assert target.landing_dir == tmp_path / "landing" / "trades"
    assert target.state_path is StateFile.BESIDE_LANDING
    assert target.upload is None
    assert target.location == str(tmp_path / "landing" / "trades")
    elsewhere = deployment.landing_target(tmp_path / "b", tmp_path / "state.json")
    assert (elsewhere.landing_dir, elsewhere.state_path) == (
        tmp_path / "b",
        tmp_path / "state.json",
    )


def test_the_lakehouse_and_the_asset_metadata_name_the_same_folders(tmp_path: Path) -> None:
    deployment = LocalDeployment(Settings(data_dir=tmp_path))
    lakehouse = deployment.lakehouse
    assert isinstance(lakehouse, LocalLakehouse)
    assert lakehouse.landing_location() == str(tmp_path / "landing" / "trades")
    assert deployment.landing_metadata() == {"landing_location": tmp_path / "landing" / "trades"}
    assert deployment.table_metadata("price_alerts") == {
        "table_location": tmp_path / "delta" / "price_alerts"
    }
    assert lakehouse.table_location("price_alerts") == str(tmp_path / "delta" / "price_alerts")


def test_crypto_deployment_names_the_deployment_built(tmp_path: Path) -> None:
    local = build_deployment(Settings(data_dir=tmp_path))
    databricks = build_deployment(Settings(data_dir=tmp_path, deployment="databricks"))
    assert (type(local).__name__, local.name, local.compute) == (
        "LocalDeployment",
        "local",
        "local",
    )
    assert (type(databricks).__name__, databricks.name) == ("DatabricksDeployment", "databricks")
    assert databricks.compute == Settings().databricks_compute
