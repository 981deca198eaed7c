"""The Dagster definitions load, validate, and hold the names other tools rely on."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from crypto_assets.definitions import defs
from crypto_assets.errors import CryptoAssetsError
from crypto_assets.orchestration.resources import STEP_LAUNCHER_KEY

ASSETS = ("landing_trades", "trades_raw", "trades_analytics", "price_alerts")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def loaded(monkeypatch, tmp_path) -> dg.Definitions:
    monkeypatch.setenv("CRYPTO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("CRYPTO_DEPLOYMENT", raising=False)
    return defs()


def test_definitions_validate_and_resolve_by_name(loaded):
    dg.Definitions.validate_loadable(loaded)
    for job in ("binance_producer_job", "streaming_analytics_job"):
        assert loaded.resolve_job_def(job).name == job
    for sensor in ("binance_producer_sensor", "landing_files_sensor"):
        assert loaded.resolve_sensor_def(sensor).name == sensor
    assert loaded.resolve_schedule_def("streaming_analytics_schedule").cron_schedule == "* * * * *"


def test_four_assets_with_lineage(loaded):
    graph = loaded.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys == set(ASSETS)
    for upstream, downstream in itertools.pairwise(ASSETS):
        parents = graph.get(dg.AssetKey(downstream)).parent_keys
        assert parents == {dg.AssetKey(upstream)}
    checks = {key.name for key in graph.asset_check_keys}
    assert all(name.startswith("check_") for name in checks)
    assert len(checks) == 4


def test_spark_assets_require_the_step_launcher_which_is_nothing_locally(loaded):
    job = loaded.resolve_job_def("streaming_analytics_job")
    node = job.graph.node_named("streaming_analytics")
    assert STEP_LAUNCHER_KEY in node.definition.required_resource_keys
    launcher = loaded.resources[STEP_LAUNCHER_KEY]
    assert isinstance(launcher, dg.ResourceDefinition)
    assert launcher.resource_fn(dg.build_init_resource_context()) is None


def test_environment_is_read_when_definitions_are_built(monkeypatch, tmp_path):
    monkeypatch.setenv("CRYPTO_DATA_DIR", str(tmp_path / "one"))
    first = defs()
    monkeypatch.setenv("CRYPTO_DATA_DIR", str(tmp_path / "two"))
    second = defs()
    assert first.resources["lakehouse"].data_dir == str(tmp_path / "one")
    assert second.resources["lakehouse"].data_dir == str(tmp_path / "two")
    assert second.resources["settings"].data_dir == str(tmp_path / "two")


def test_unknown_deployment_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv("CRYPTO_DEPLOYMENT", "kubernetes")
    with pytest.raises(CryptoAssetsError, match="CRYPTO_DEPLOYMENT='kubernetes'"):
        defs()


def test_databricks_deployment_is_not_there_yet(monkeypatch):
    monkeypatch.setenv("CRYPTO_DEPLOYMENT", "databricks")
    with pytest.raises(CryptoAssetsError, match="not available yet"):
        defs()


def test_loading_raises_no_warnings(tmp_path):
    # A fresh interpreter, so every import happens under "all warnings are errors".
    code = (
        "import dagster as dg\n"
        "from crypto_assets.definitions import defs\n"
        "loaded = defs()\n"
        "dg.Definitions.validate_loadable(loaded)\n"
        "for name in ('binance_producer_job', 'streaming_analytics_job'):\n"
        "    loaded.resolve_job_def(name)\n"
    )
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        cwd=REPO,
        env={"CRYPTO_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
