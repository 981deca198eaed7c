"""The Pipes runs (serverless, classic compute): their submission, and what they refuse up front."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster_databricks.pipes import (
    PipesUnityCatalogVolumesContextInjector,
    PipesUnityCatalogVolumesMessageReader,
)
from dagster_pipes import PipesCliArgsParamsLoader, PipesEnvVarParamsLoader
from databricks.sdk import WorkspaceClient

from crypto_assets.errors import CryptoAssetsError
from crypto_assets.orchestration.databricks import pipes_main
from crypto_assets.orchestration.databricks.libraries import pipes_pins
from crypto_assets.orchestration.databricks.pipes import (
    CONTINUOUS_REFUSED,
    ENVIRONMENT_VERSION,
    FOLLOW_REFUSED,
    PipesAnalytics,
    ReadableClassicClient,
    ReadableServerlessClient,
    pipes_client,
    submission,
)
from crypto_assets.orchestration.databricks.pipes_task import params_loader
from crypto_assets.settings import Settings
from crypto_assets_tests.databricks.emulator import USER_NAME, running_emulator

TOKEN = "dapi-pipes-test"
SCRIPT = "/Volumes/c/s/v/_dagster/code/pipes_main.py"
WHEEL = "/Volumes/c/s/v/_dagster/wheels/crypto_assets-0.1.0+0123456789ab-py3-none-any.whl"
CLUSTER = "0101-abc"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[WorkspaceClient]:
    """A client of an emulated workspace with one dedicated 17.3 cluster."""
    options = {"clusters": {CLUSTER: "17.3.x-scala2.13"}}
    with running_emulator(tmp_path / "workspace", TOKEN, **options) as emulator:
        yield WorkspaceClient(host=emulator.host, token=TOKEN)


def classic(**changes: object) -> Settings:
    """Settings of Pipes on classic compute."""
    return Settings(deployment="databricks", databricks_launcher="pipes", **changes)


def test_a_continuous_run_is_refused_on_serverless_in_one_line_before_any_upload() -> None:
    # No host is set: reaching the workspace would fail differently, so the refusal came first.
    settings = Settings(deployment="databricks", databricks_compute="serverless")
    with pytest.raises(dg.Failure) as refused:
        PipesAnalytics().run(dg.build_asset_context(), settings, {"mode": "continuous"})
    assert refused.value.description == CONTINUOUS_REFUSED
    assert "\n" not in CONTINUOUS_REFUSED
    assert "DATABRICKS_COMPUTE=cluster" in CONTINUOUS_REFUSED


def test_a_run_that_would_follow_the_producer_is_refused_in_one_line() -> None:
    # A Databricks task cannot watch the Dagster instance: refused before the workspace is reached.
    extras = {"mode": "continuous", "follow_producer": True}
    with pytest.raises(dg.Failure) as refused:
        PipesAnalytics().run(dg.build_asset_context(), classic(), extras)
    assert refused.value.description == FOLLOW_REFUSED
    assert "\n" not in FOLLOW_REFUSED


def test_a_continuous_run_goes_on_to_a_classic_cluster() -> None:
    # A classic cluster takes processingTime: the run gets as far as the (missing) workspace.
    with pytest.raises(dg.Failure) as failed:
        PipesAnalytics().run(dg.build_asset_context(), classic(), {"mode": "continuous"})
    assert failed.value.description.startswith("DATABRICKS_HOST is not set")


def test_serverless_asks_for_the_spark_4_client_and_installs_the_wheel(client) -> None:
    # Environment 3 is a Spark 3.5 client; the analytics use Spark 4's API (createDataFrame of an
    # Arrow table), which environment 4's Databricks Connect 17 client has.
    settings = Settings(deployment="databricks", databricks_compute="serverless")
    task, arguments = submission(client, settings, SCRIPT, WHEEL, "run")
    (environment,) = arguments["environments"]
    assert environment.spec.environment_version == ENVIRONMENT_VERSION == "4"
    assert environment.spec.dependencies == [*pipes_pins(), WHEEL]
    assert task.environment_key == environment.environment_key
    assert task.spark_python_task.python_file == SCRIPT
    assert (task.new_cluster, task.existing_cluster_id, task.libraries) == (None, None, [])


def test_the_pins_are_the_runtimes_missing_packages_and_dagsters_pipes_side() -> None:
    names = {pin.split("==")[0] for pin in pipes_pins()}
    assert {"dagster", "dagster-pipes", "deltalake", "orjson"} <= names
    assert names.isdisjoint({"pyspark", "delta-spark", "pyarrow", "crypto-assets"})


def test_a_new_cluster_is_dedicated_to_the_tokens_user_with_the_wheel(client) -> None:
    settings = classic(databricks_node_type="i3.xlarge", databricks_num_workers=0)
    task, arguments = submission(client, settings, SCRIPT, WHEEL, "run")
    cluster = task.new_cluster
    assert cluster.data_security_mode.value == "SINGLE_USER"
    assert cluster.single_user_name == USER_NAME
    assert (cluster.spark_version, cluster.node_type_id) == ("17.3.x-scala2.13", "i3.xlarge")
    assert cluster.num_workers == 0
    assert cluster.custom_tags == {"ResourceClass": "SingleNode"}
    assert [lib.as_dict() for lib in task.libraries] == [
        *({"pypi": {"package": pin}} for pin in pipes_pins()),
        {"whl": WHEEL},
    ]
    # The shared entry, as on serverless; Pipes adds its own parameters at submission.
    assert task.spark_python_task.python_file == SCRIPT
    assert task.environment_key is None
    assert arguments == {"run_name": "run"}


def test_an_existing_cluster_is_checked_then_gets_the_wheel(client, tmp_path: Path) -> None:
    task, _ = submission(client, classic(databricks_cluster_id=CLUSTER), SCRIPT, WHEEL, "run")
    assert task.existing_cluster_id == CLUSTER
    assert task.new_cluster is None
    assert task.libraries[-1].whl == WHEEL
    assert task.spark_python_task.python_file == SCRIPT
    options = {"clusters": {CLUSTER: "17.3.x-scala2.13"}, "cluster_access_mode": "USER_ISOLATION"}
    with running_emulator(tmp_path / "standard", TOKEN, **options) as emulator:
        standard = WorkspaceClient(host=emulator.host, token=TOKEN)
        with pytest.raises(CryptoAssetsError, match=r"^cluster 0101-abc has access mode USER_"):
            submission(standard, classic(databricks_cluster_id=CLUSTER), SCRIPT, WHEEL, "run")


def test_classic_compute_gets_the_volume_injector_and_reader(client) -> None:
    pipes = pipes_client(classic(), client, "/Volumes/c/s/v/_dagster/pipes", 1.0)
    assert isinstance(pipes, ReadableClassicClient)
    assert isinstance(pipes.context_injector, PipesUnityCatalogVolumesContextInjector)
    assert isinstance(pipes.message_reader, PipesUnityCatalogVolumesMessageReader)
    serverless = Settings(deployment="databricks", databricks_compute="serverless")
    assert isinstance(pipes_client(serverless, client, "/Volumes/x", 1.0), ReadableServerlessClient)


def test_the_task_reads_pipes_parameters_from_arguments_or_environment(monkeypatch) -> None:
    # An existing cluster and serverless pass them as arguments, a new cluster as variables.
    monkeypatch.setattr(sys, "argv", ["pipes_main.py", "--dagster-pipes-context", "e30="])
    assert isinstance(params_loader(), PipesCliArgsParamsLoader)
    monkeypatch.setattr(sys, "argv", ["pipes_main.py"])
    assert isinstance(params_loader(), PipesEnvVarParamsLoader)


def test_the_entry_script_imports_only_the_standard_library_at_its_top() -> None:
    tree = ast.parse(Path(pipes_main.__file__).read_text())
    top = [
        alias.name.split(".")[0]
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module)])
    ]
    assert set(top) <= sys.stdlib_module_names


def test_the_entry_script_without_the_wheel_says_so_in_one_line(tmp_path: Path) -> None:
    script = tmp_path / "pipes_main.py"
    script.write_bytes(Path(pipes_main.__file__).read_bytes())
    # -I -S: only the standard library, as a compute that did not install the wheel.
    done = subprocess.run(
        [sys.executable, "-I", "-S", str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip().startswith("crypto_assets is not installed on this compute")
    assert len(done.stderr.strip().splitlines()) == 1
