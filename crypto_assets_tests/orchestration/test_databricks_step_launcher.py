"""The step launcher's configuration: what reaches the cluster, and what never does."""

from __future__ import annotations

import importlib.metadata
import os
import pickle
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import dagster as dg
import pytest
from dagster_pyspark.utils import build_pyspark_zip
from databricks.sdk import WorkspaceClient

import crypto_assets
from crypto_assets.databricks.layout import VolumeLayout
from crypto_assets.errors import CryptoAssetsError
from crypto_assets.orchestration.databricks.libraries import cluster_libraries, pypi_pins
from crypto_assets.orchestration.databricks.remote_environment import remote_environment
from crypto_assets.orchestration.databricks.step_launcher import (
    NO_CODE_FOLDER,
    cluster_spec,
    databricks_step_launcher,
    launch_run_config,
    launcher_config,
)
from crypto_assets.orchestration.databricks.wheel import build_wheel, wheels_dir
from crypto_assets.settings import Settings
from crypto_assets_tests.databricks.emulator import USER_NAME, Emulator, running_emulator

HOST = "https://example.cloud.databricks.com"
LAYOUT = VolumeLayout("takamol_demo", "crypto_streaming")
VOLUME = {"volumes": (LAYOUT.full_volume_name,)}


def test_the_token_is_given_by_its_name_only(monkeypatch):
    monkeypatch.setenv("DATABRICKS_TOKEN", "dapi-secret-value")
    config = launcher_config(Settings(databricks_host=HOST, databricks_cluster_id="0101-abc"))
    assert config["databricks_token"] == {"env": "DATABRICKS_TOKEN"}
    assert b"dapi-secret-value" not in pickle.dumps(config)
    assert "DATABRICKS_TOKEN" not in config["env_variables"]


def test_the_required_fields_without_defaults_are_given():
    config = launcher_config(Settings(databricks_host=HOST, databricks_cluster_id="0101-abc"))
    assert config["permissions"] == {}
    assert config["secrets_to_env_variables"] == []
    assert config["databricks_host"] == HOST


def test_an_existing_cluster_or_a_new_one():
    assert cluster_spec(Settings(databricks_cluster_id="0101-abc")) == {"existing": "0101-abc"}
    new = cluster_spec(Settings(databricks_node_type="i3.xlarge", databricks_num_workers=2))["new"]
    assert new["size"] == {"num_workers": 2}
    assert new["nodes"] == {"node_types": {"node_type_id": "i3.xlarge"}}
    assert new["spark_version"] == "17.3.x-scala2.13"
    single = cluster_spec(Settings(databricks_node_type="i3.xlarge", databricks_num_workers=0))
    assert single["new"]["spark_conf"]["spark.databricks.cluster.profile"] == "singleNode"
    # Dedicated access, without which a new cluster has no Unity Catalog.
    assert new["data_security_mode"] == single["new"]["data_security_mode"] == "SINGLE_USER"


def volume_file(emulator: Emulator, path: str) -> Path:
    """Where a `/Volumes/...` path of the emulated workspace is on this machine."""
    return emulator.volumes_root / path.removeprefix("/Volumes/")


def test_at_launch_a_new_cluster_gets_the_tokens_user_the_wheel_and_the_pins(tmp_path: Path):
    settings = Settings(databricks_host=HOST, databricks_node_type="i3.xlarge")
    with running_emulator(tmp_path / "workspace", "dapi-launch-test", **VOLUME) as emulator:
        client = WorkspaceClient(host=emulator.host, token="dapi-launch-test")
        built = launcher_config(settings)["run_config"]
        launched = launch_run_config(built, client, LAYOUT)
        wheel = build_wheel()
        shipped = f"{wheels_dir(LAYOUT)}/{wheel.name}"
        assert volume_file(emulator, shipped).read_bytes() == wheel.read_bytes()
    assert built["libraries"] == []  # what a cluster that rebuilds the definitions computes
    assert launched["libraries"] == cluster_libraries(shipped, pypi_pins())
    assert launched["libraries"][-1] == {"whl": shipped}
    packages = [lib["pypi"]["package"] for lib in launched["libraries"] if "pypi" in lib]
    assert not [p for p in packages if p.startswith("crypto")]  # the package is the wheel
    assert launched["cluster"]["new"]["single_user_name"] == USER_NAME
    assert launched["cluster"]["new"]["data_security_mode"] == "SINGLE_USER"


@pytest.mark.parametrize(
    ("runtime", "access_mode", "problems"),
    [
        ("17.3.x-scala2.13", "SINGLE_USER", []),
        ("17.3.x-scala2.13", "USER_ISOLATION", ["has access mode USER_ISOLATION"]),
        ("15.4.x-scala2.12", "SINGLE_USER", ["runs Databricks Runtime 15.4.x-scala2.12"]),
        ("15.4.x-scala2.12", "NONE", ["has access mode NONE", "runs Databricks Runtime 15.4"]),
    ],
)
def test_an_existing_cluster_is_checked_before_launch(
    tmp_path: Path, runtime: str, access_mode: str, problems: list[str]
):
    settings = Settings(databricks_host=HOST, databricks_cluster_id="0101-abc")
    options = {"clusters": {"0101-abc": runtime}, "cluster_access_mode": access_mode, **VOLUME}
    with running_emulator(tmp_path / "workspace", "dapi-check", **options) as emulator:
        client = WorkspaceClient(host=emulator.host, token="dapi-check")
        run_config = launcher_config(settings)["run_config"]
        if not problems:
            launched = launch_run_config(run_config, client, LAYOUT)
            assert launched["cluster"] == {"existing": "0101-abc"}
            return
        with pytest.raises(CryptoAssetsError) as refused:
            launch_run_config(run_config, client, LAYOUT)
        # Refused before anything was uploaded.
        assert not [r for r in emulator.requests if r[0] == "PUT"]
    line = str(refused.value)
    assert "\n" not in line
    for problem in problems:
        assert f"cluster 0101-abc {problem}" in line
    assert ("DATABRICKS_COMPUTE=serverless" in line) == ("access mode" in line)


def test_a_cluster_needs_an_id_or_a_node_type():
    with pytest.raises(CryptoAssetsError, match="DATABRICKS_NODE_TYPE"):
        cluster_spec(Settings())


def test_the_cluster_gets_what_its_runtime_lacks_at_the_local_versions():
    packages = set(pypi_pins())
    names = {package.split("==")[0] for package in packages}
    # The runtime has Spark, Delta and Arrow; the launcher adds Dagster's own at its versions.
    assert names.isdisjoint({"pyspark", "delta-spark", "pyarrow", "dagster", "databricks-sdk"})
    # What the package imports and a runtime does not have.
    assert {"deltalake", "orjson", "pydantic-settings", "websocket-client"} <= names
    for package in packages:
        name, version = package.split("==")
        assert importlib.metadata.version(name) == version
    # Never a development tool, a local UI, or the package itself (it is the wheel).
    assert names.isdisjoint({"pytest", "ruff", "duckdb", "dagster-webserver", "dagster-dg-cli"})
    assert "crypto-assets" not in names


def test_the_code_zip_the_launcher_ships_holds_nothing(tmp_path: Path):
    # dagster-databricks always zips local_pipeline_package_path into code.zip and its step main
    # puts it on the cluster's sys.path: empty, so the installed wheel is the only copy there.
    NO_CODE_FOLDER.mkdir(parents=True, exist_ok=True)
    config = launcher_config(Settings(databricks_host=HOST, databricks_cluster_id="0101-abc"))
    assert config["local_pipeline_package_path"] == str(NO_CODE_FOLDER)
    code_zip = tmp_path / "code.zip"
    build_pyspark_zip(str(code_zip), config["local_pipeline_package_path"])
    with zipfile.ZipFile(code_zip) as archive:
        assert archive.namelist() == []


@pytest.mark.filterwarnings("ignore:StepLauncher is superseded")  # expected: see step_launcher.py
def test_a_workspace_without_dbfs_fails_the_step_before_anything_is_submitted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    token = "dapi-no-dbfs-test"
    monkeypatch.setenv("DATABRICKS_TOKEN", token)
    options = {"clusters": {"0101-abc": "17.3.x-scala2.13"}, "dbfs_disabled": True, **VOLUME}
    with running_emulator(tmp_path / "workspace", token, **options) as emulator:
        settings = Settings(databricks_host=emulator.host, databricks_cluster_id="0101-abc")

        @dg.asset(required_resource_keys={"pyspark_step_launcher"})
        def on_the_cluster() -> None:
            """Never runs: the launcher refuses the workspace first."""

        result = dg.materialize(
            [on_the_cluster],
            resources={"pyspark_step_launcher": databricks_step_launcher(settings)},
            raise_on_error=False,
        )
        requests = list(emulator.requests)
        assert emulator.runs == {}
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    line = failure.step_failure_data.user_failure_data.description
    assert "\n" not in line
    assert "refuses DBFS" in line
    assert "Public DBFS root is disabled" in line
    assert "set DATABRICKS_LAUNCHER=pipes" in line
    # Nothing was uploaded or submitted: one refused DBFS read after the token's check.
    assert [r for r in requests if r[0] != "GET"] == []
    assert ("GET", "/api/2.0/dbfs/get-status") in requests


def test_the_cluster_reads_back_the_same_settings(monkeypatch):
    settings = Settings(
        deployment="databricks",
        databricks_host=HOST,
        trading_pairs="btcusdt,solusdt",
        run_duration_minutes="none",
        volume_spike_factor=2.5,
        catalog="main",
        schema_name="crypto",
    )
    for name in list(os.environ):
        if name.startswith(("DATABRICKS_", "CRYPTO_", "DAGSTER_")):
            monkeypatch.delenv(name)
    for name, value in remote_environment(settings).items():
        monkeypatch.setenv(name, value)
    again = Settings.from_env()
    assert again.replace(data_dir=settings.data_dir) == settings


def _plain_package_environment(tmp_path: Path) -> dict[str, str]:
    """PYTHONPATH as a cluster's step sees it: a plain copy of the package, no distribution.

    The harshest case of what a cluster has: the package's code without its distribution
    metadata (no `crypto_assets` dist-info, no editable finder; the installed wheel has metadata,
    but nothing that runs there may depend on it). The virtualenv's other libraries stand in for
    the cluster's (they are reached without `site`, so no .pth file runs).
    """
    code = tmp_path / "code"
    shutil.copytree(
        Path(crypto_assets.__file__).parent,
        code / "crypto_assets",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    site_packages = Path(sysconfig.get_paths()["purelib"])
    libraries = tmp_path / "site-packages"
    libraries.mkdir()
    for entry in site_packages.iterdir():
        if "crypto_assets" not in entry.name:
            (libraries / entry.name).symlink_to(entry)
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "PYTHONPATH": f"{code}{os.pathsep}{libraries}",
        # What the launcher sends (remote_environment) and what the runtime sets itself.
        "CRYPTO_DEPLOYMENT": "databricks",
        "DATABRICKS_COMPUTE": "cluster",
        "DATABRICKS_HOST": HOST,
        "DATABRICKS_CLUSTER_ID": "0101-abc",
        "DATABRICKS_RUNTIME_VERSION": "17.3",
    }


def test_the_definitions_build_on_the_cluster_from_the_package_code_alone(tmp_path: Path):
    # The cluster's step main rebuilds the definitions to run the step: nothing in them may need
    # the package's distribution metadata, which exists only where the package was installed.
    script = (
        "import importlib.metadata, sys\n"
        "try:\n"
        "    importlib.metadata.distribution('crypto_assets')\n"
        "    sys.exit('the distribution is visible')\n"
        "except importlib.metadata.PackageNotFoundError:\n"
        "    pass\n"
        "import crypto_assets\n"
        "from crypto_assets.definitions import defs\n"
        "loaded = defs()\n"
        "print(crypto_assets.__file__)\n"
        "print(sorted(loaded.resources))\n"
    )
    result = subprocess.run(
        [sys.executable, "-S", "-c", script],
        check=False,
        cwd=tmp_path,  # not the checkout, whose folder is on the path of `python -c`
        env=_plain_package_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    package_file, resources = result.stdout.strip().splitlines()[-2:]
    assert package_file == str(tmp_path / "code" / "crypto_assets" / "__init__.py")
    assert "pyspark_step_launcher" in resources
