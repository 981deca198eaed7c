"""The Dagster definitions load, validate, and hold the names other tools rely on."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from crypto_assets.analytics.schema import TABLE_SCHEMAS
from crypto_assets.definitions import defs
from crypto_assets.errors import CryptoAssetsError
from crypto_assets.orchestration.code_versions import source_version
from crypto_assets.orchestration.definitions import build_definitions, data_locations
from crypto_assets.orchestration.deployments import build_deployment
from crypto_assets.orchestration.resources import PIPES_KEY, STEP_LAUNCHER_KEY
from crypto_assets.settings import Settings
from crypto_assets_tests.recorded_trades import LANDING_FIELDS

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
    assert len(checks) == 6


def _node(loaded: dg.Definitions, key: str):
    return loaded.resolve_asset_graph().get(dg.AssetKey(key))


def _columns(node) -> list[tuple[str, str, bool]]:
    value = node.metadata["dagster/column_schema"]
    schema = getattr(value, "schema", value)  # a TableSchema, maybe wrapped in a metadata value
    return [(c.name, c.type, c.constraints.nullable) for c in schema.columns]


def test_every_asset_has_its_column_schema_from_the_arrow_schemas(loaded):
    for table, arrow in TABLE_SCHEMAS.items():
        if table == "trades_quarantine":
            continue  # a table of the query, not an asset
        expected = [(f.name, str(f.type), f.nullable) for f in arrow]
        assert _columns(_node(loaded, table)) == expected
    # Landing files hold DESIGN.md's ten landing fields, the first ten columns of trades_raw.
    landing = [name for name, _, _ in _columns(_node(loaded, "landing_trades"))]
    assert tuple(landing) == LANDING_FIELDS


def test_assets_say_where_their_data_lives(loaded, tmp_path):
    data = tmp_path / "data"
    landing = _node(loaded, "landing_trades").metadata["landing_location"]
    assert Path(landing.path) == data / "landing" / "trades"
    for table in ("trades_raw", "trades_analytics", "price_alerts"):
        location = _node(loaded, table).metadata["table_location"]
        assert Path(location.path) == data / "delta" / table


def test_on_databricks_tables_are_named_catalog_schema_table():
    settings = Settings(deployment="databricks", catalog="cat", schema_name="sch")
    locations = data_locations(build_deployment(settings))
    assert locations["trades_raw"] == {"dagster/table_name": "cat.sch.trades_raw"}
    assert locations["price_alerts"] == {"dagster/table_name": "cat.sch.price_alerts"}
    volume = locations["landing_trades"]["landing_location"].path
    assert volume == "/Volumes/cat/sch/crypto_landing/trades"


def test_code_versions_kinds_and_tags(loaded):
    versions = {key: _node(loaded, key).code_version for key in ASSETS}
    assert all(re.fullmatch(r"[0-9a-f]{12}", v or "") for v in versions.values()), versions
    # One query writes the three tables: one version; the producer's code has its own.
    assert len({versions[t] for t in ASSETS[1:]}) == 1
    assert versions["landing_trades"] != versions["trades_raw"]
    assert _node(loaded, "landing_trades").kinds == {"python", "websocket", "json"}
    layers = {key: _node(loaded, key).tags["layer"] for key in ASSETS}
    assert layers == {
        "landing_trades": "landing",
        "trades_raw": "bronze",
        "trades_analytics": "gold",
        "price_alerts": "gold",
    }
    for table in ASSETS[1:]:
        assert _node(loaded, table).kinds == {"spark", "delta"}


def test_a_code_version_is_a_digest_of_the_sources_it_names():
    first = source_version(("analytics/batch.py",))
    assert first == source_version(("analytics/batch.py",))
    assert first != source_version(("analytics/transforms.py",))


def test_landing_trades_names_the_job_and_sensor_that_produce_it(loaded):
    description = _node(loaded, "landing_trades").description
    assert "binance_producer_job" in description
    assert "binance_producer_sensor" in description
    assert loaded.resolve_sensor_def("binance_producer_sensor").job_name == "binance_producer_job"


def test_no_ui_text_points_outside_the_repository(loaded):
    graph = loaded.resolve_asset_graph()
    texts = [graph.get(key).description or "" for key in graph.get_all_asset_keys()]
    repository = loaded.get_repository_def()
    texts += [r.description or "" for r in repository.get_top_level_resources().values()]
    texts += [job.description or "" for job in repository.get_all_jobs()]
    texts += [sensor.description or "" for sensor in repository.sensor_defs]
    assert not [text for text in texts if "DESIGN.md" in text or "../shared" in text]


LOCAL_RESOURCES = {"settings", "spark", "lakehouse"}


def _analytics_resource_keys(loaded: dg.Definitions) -> set[str]:
    job = loaded.resolve_job_def("streaming_analytics_job")
    return set(job.graph.node_named("streaming_analytics").definition.required_resource_keys)


def test_the_local_deployment_has_no_databricks_resource(loaded):
    # Nothing to launch locally: the Launchpads and the resources page list no Databricks stand-in.
    assert set(loaded.resources) == LOCAL_RESOURCES
    assert _analytics_resource_keys(loaded) == LOCAL_RESOURCES


@pytest.mark.parametrize(
    ("compute", "launcher", "key"),
    [
        ("cluster", "step_launcher", STEP_LAUNCHER_KEY),
        ("cluster", "pipes", PIPES_KEY),
        # DATABRICKS_LAUNCHER chooses among a cluster's launchers only: serverless is Pipes.
        ("serverless", "step_launcher", PIPES_KEY),
        ("serverless", "pipes", PIPES_KEY),
    ],
)
def test_a_databricks_deployment_has_the_resource_of_its_compute_only(
    tmp_path, compute, launcher, key
):
    settings = Settings(
        deployment="databricks",
        databricks_compute=compute,
        databricks_launcher=launcher,
        databricks_host="https://example.cloud.databricks.com",
        databricks_node_type="i3.xlarge",
        data_dir=tmp_path,
    )
    loaded = build_definitions(settings)
    assert set(loaded.resources) == LOCAL_RESOURCES | {key}
    assert _analytics_resource_keys(loaded) == LOCAL_RESOURCES | {key}


def test_environment_is_read_when_definitions_are_built(monkeypatch, tmp_path):
    monkeypatch.setenv("CRYPTO_DATA_DIR", str(tmp_path / "one"))
    first = defs()
    monkeypatch.setenv("CRYPTO_DATA_DIR", str(tmp_path / "two"))
    second = defs()
    assert first.resources["lakehouse"].layout.data_dir == tmp_path / "one"
    assert second.resources["lakehouse"].layout.data_dir == tmp_path / "two"
    assert second.resources["settings"].data_dir == str(tmp_path / "two")


def test_unknown_deployment_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv("CRYPTO_DEPLOYMENT", "kubernetes")
    with pytest.raises(CryptoAssetsError, match="CRYPTO_DEPLOYMENT='kubernetes'"):
        defs()


def test_the_databricks_deployment_needs_its_workspace(monkeypatch):
    monkeypatch.setenv("CRYPTO_DEPLOYMENT", "databricks")
    monkeypatch.delenv("DATABRICKS_HOST", raising=False)
    monkeypatch.setenv("DATABRICKS_CLUSTER_ID", "0101-000000-abc")
    with pytest.raises(CryptoAssetsError, match="needs DATABRICKS_HOST"):
        defs()


@pytest.mark.parametrize("launcher", ["step_launcher", "pipes"])
def test_a_new_cluster_needs_its_node_type(monkeypatch, launcher):
    monkeypatch.setenv("CRYPTO_DEPLOYMENT", "databricks")
    monkeypatch.setenv("DATABRICKS_LAUNCHER", launcher)
    monkeypatch.setenv("DATABRICKS_HOST", "https://example.cloud.databricks.com")
    monkeypatch.delenv("DATABRICKS_CLUSTER_ID", raising=False)
    monkeypatch.delenv("DATABRICKS_NODE_TYPE", raising=False)
    with pytest.raises(CryptoAssetsError, match=r"CLUSTER_ID .* or DATABRICKS_NODE_TYPE"):
        defs()


DEPLOYMENT_ENVIRONMENTS = {
    "local": {},
    "databricks cluster": {
        "CRYPTO_DEPLOYMENT": "databricks",
        "DATABRICKS_HOST": "https://example.cloud.databricks.com",
        "DATABRICKS_NODE_TYPE": "i3.xlarge",
    },
    "databricks cluster through pipes": {
        "CRYPTO_DEPLOYMENT": "databricks",
        "DATABRICKS_LAUNCHER": "pipes",
        "DATABRICKS_HOST": "https://example.cloud.databricks.com",
        "DATABRICKS_NODE_TYPE": "i3.xlarge",
    },
    "databricks serverless": {
        "CRYPTO_DEPLOYMENT": "databricks",
        "DATABRICKS_COMPUTE": "serverless",
        "DATABRICKS_HOST": "https://example.cloud.databricks.com",
    },
}


@pytest.mark.parametrize("deployment", sorted(DEPLOYMENT_ENVIRONMENTS))
def test_loading_raises_no_warnings(tmp_path, deployment):
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
        env={
            "CRYPTO_DATA_DIR": str(tmp_path),
            "PATH": "/usr/bin:/bin",
            **DEPLOYMENT_ENVIRONMENTS[deployment],
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
