"""Which reader, sink and checkpoint a run uses, and the session on a Databricks runtime."""

from __future__ import annotations

from pathlib import Path

import pytest

from crypto_assets.analytics.autoloader_reader import AutoLoaderReader
from crypto_assets.analytics.delta_sink import DeltaSink
from crypto_assets.analytics.flavour import build_flavour, default_flavour
from crypto_assets.analytics.landing_reader import LocalLandingReader
from crypto_assets.analytics.spark_delta_sink import SparkDeltaSink
from crypto_assets.analytics.spark_session import get_spark_session
from crypto_assets.settings import Settings

pytestmark = pytest.mark.spark


def test_default_flavour_follows_the_databricks_runtime(monkeypatch) -> None:
    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION", raising=False)
    assert default_flavour() == "local"
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "17.3")
    assert default_flavour() == "databricks"


def test_local_flavour_is_todays_layout(spark, tmp_path: Path) -> None:
    flavour = build_flavour("local", spark, Settings(data_dir=tmp_path))
    assert isinstance(flavour.reader, LocalLandingReader)
    assert isinstance(flavour.sink, DeltaSink)
    assert flavour.landing_dir == tmp_path / "landing" / "trades"
    assert flavour.checkpoint == tmp_path / "checkpoints" / "landing_trades_to_delta"
    assert flavour.sink.path("trades_raw") == str(tmp_path / "delta" / "trades_raw")


def test_databricks_flavour_off_databricks_uses_the_volume_paths(spark, monkeypatch) -> None:
    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION", raising=False)
    settings = Settings(catalog="main", schema_name="crypto")
    flavour = build_flavour("databricks", spark, settings, max_files_per_trigger=3)
    volume = "/Volumes/main/crypto/crypto_landing"
    assert flavour.landing_dir == Path(f"{volume}/trades")
    assert flavour.checkpoint == Path(f"{volume}/_checkpoints/landing_trades_to_delta")
    assert isinstance(flavour.reader, AutoLoaderReader)
    assert not flavour.reader.on_databricks  # the JSON file source, not cloudFiles
    assert flavour.reader.schema_location == f"{volume}/_schemas/landing_trades_to_delta"
    assert flavour.reader.max_files_per_trigger == 3
    assert isinstance(flavour.sink, SparkDeltaSink)
    assert flavour.sink.identifier("trades_raw") == f"delta.`{volume}/_tables/trades_raw`"


def test_databricks_flavour_on_databricks_names_unity_catalog_tables(spark, monkeypatch) -> None:
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "17.3")
    settings = Settings(catalog="main", schema_name="crypto")
    flavour = build_flavour(None, spark, settings)
    assert flavour.name == "databricks"
    assert flavour.reader.on_databricks
    assert flavour.sink.identifier("price_alerts") == "`main`.`crypto`.`price_alerts`"


def test_databricks_flavour_under_a_given_root(spark, tmp_path: Path) -> None:
    flavour = build_flavour("databricks", spark, Settings(), volume_root=tmp_path)
    assert flavour.landing_dir == tmp_path / "trades"
    assert flavour.sink.identifier("trades_raw") == f"delta.`{tmp_path}/_tables/trades_raw`"


def test_unknown_flavour_is_refused(spark) -> None:
    with pytest.raises(ValueError, match="unknown analytics flavour 'cloud'"):
        build_flavour("cloud", spark, Settings())  # type: ignore[arg-type]


def test_on_databricks_the_session_is_the_runtimes(spark, monkeypatch) -> None:
    # The runtime's session is active in the driver; nothing is built or configured.
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "17.3")
    assert get_spark_session(app_name="ignored", delta=True) is spark
