"""End to end: `CRYPTO_DEPLOYMENT=databricks` materializes the three Spark assets on "Databricks".

Dagster's own CLI (`dagster asset materialize`) runs the definitions of `crypto_assets.definitions`
in a fresh process, from a working directory that is not the checkout, against the REST emulator:

- `DATABRICKS_COMPUTE=cluster`: dagster-databricks' step launcher stages the step on DBFS and
  submits it with the package's wheel (uploaded to the Volume) as a library; the emulator runs it
  in a subprocess that can import `crypto_assets` only from that installed wheel (the launcher's
  own `code.zip` is empty), with real Delta-Spark writing the tables on the Volume.
- `DATABRICKS_COMPUTE=cluster` with `DATABRICKS_LAUNCHER=pipes`, on a workspace with DBFS
  disabled: the asset submits the same analytics as a Pipes task on the cluster, through the
  Volume.
- `DATABRICKS_COMPUTE=serverless`: the same Pipes task as a serverless one (no DBFS).

The tables are then compared with a local run's on the same landing files and with the plain-Python
reference; the run's events must carry the remote logs and metadata; the token must appear nowhere
the emulator or Dagster stored anything.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from crypto_assets.analytics.delta_jars import delta_jar_paths
from crypto_assets.analytics.spark_session import DELTA_CONF
from crypto_assets.databricks.layout import VolumeLayout
from crypto_assets_tests.analytics.expectations import assert_matches_reference
from crypto_assets_tests.analytics.landing_files import recording_trades, write_landing_files
from crypto_assets_tests.analytics.runs import run_local
from crypto_assets_tests.analytics.settings_for_tests import analytics_settings, rules_env
from crypto_assets_tests.analytics.tables import snapshot
from crypto_assets_tests.databricks.emulator import (
    Emulator,
    Run,
    needs_mount_namespace,
    running_emulator,
)

pytestmark = [pytest.mark.e2e, pytest.mark.spark, pytest.mark.databricks, needs_mount_namespace]

CATALOG, SCHEMA = "takamol_demo", "crypto_streaming"
LAYOUT = VolumeLayout(CATALOG, SCHEMA)
CLUSTER_ID = "0101-000000-emulated"
ASSETS = "trades_raw,trades_analytics,price_alerts"
CHECKOUT = Path(__file__).resolve().parents[2]
# One landing file per this many records: a handful of files, like a few producer batches.
FILES = 6


@pytest.fixture(scope="module")
def records(recording: Path) -> list[dict]:
    """The first ten thousand trades of the recording: a few minutes of both symbols."""
    return recording_trades(recording)[:10_000]


@pytest.fixture(scope="module")
def local_tables(spark, records: list[dict], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The local deployment's tables of the same landing files (delta-rs), as a data dir."""
    data_dir = tmp_path_factory.mktemp("local_deployment")
    write_landing_files(data_dir / "landing" / "trades", records, FILES)
    run_local(spark, analytics_settings(data_dir))
    return data_dir


def emulator_options() -> dict:
    """The emulated workspace: the catalog, the deployment's Volume, Delta-Spark on its clusters."""
    jars = ",".join(str(path) for path in delta_jar_paths())
    return {
        "catalogs": (CATALOG,),
        "clusters": {CLUSTER_ID: "17.3.x-scala2.13"},
        "volumes": (f"{CATALOG}.{SCHEMA}.{LAYOUT.volume}",),
        "spark_conf": {"spark.jars": jars, **DELTA_CONF},
    }


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Emulator]:
    """A fresh emulated workspace with its own token."""
    token = f"dapi{secrets.token_hex(16)}"
    with running_emulator(tmp_path / "workspace", token, **emulator_options()) as emulator:
        yield emulator


def volume_folder(emulator: Emulator, path: str) -> Path:
    """Where a `/Volumes/...` path of the emulated workspace is on this machine."""
    return emulator.volumes_root / path.removeprefix("/Volumes/")


def land(emulator: Emulator, records: list[dict]) -> None:
    """The landing files on the emulated Volume, as the producer would have uploaded them."""
    write_landing_files(volume_folder(emulator, LAYOUT.landing_dir), records, FILES)


def workspace_env(emulator: Emulator, token: str, **settings: str) -> dict[str, str]:
    """This process's environment without its own Databricks, project or Dagster settings, plus
    the emulated workspace's and `settings` (as environment variables)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABRICKS_", "CRYPTO_", "DAGSTER_"))
    }
    return {
        **env,
        "CRYPTO_DEPLOYMENT": "databricks",
        "DATABRICKS_HOST": emulator.host,
        "DATABRICKS_TOKEN": token,
        "DATABRICKS_CLUSTER_ID": CLUSTER_ID,
        "CATALOG": CATALOG,
        "SCHEMA": SCHEMA,
        **settings,
    }


def materialize(
    emulator: Emulator,
    tmp_path: Path,
    compute: str,
    token: str | None = None,
    launcher: str = "step_launcher",
) -> tuple[subprocess.CompletedProcess, dg.DagsterInstance]:
    """`dagster asset materialize` of the three Spark assets, from a folder outside the checkout."""
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    cwd = tmp_path / "elsewhere"
    cwd.mkdir(exist_ok=True)
    env = workspace_env(
        emulator,
        token or emulator.token,
        **rules_env(),
        DATABRICKS_COMPUTE=compute,
        DATABRICKS_LAUNCHER=launcher,
        ANALYTICS_WINDOW="1 minute",
        WATERMARK_DELAY="30 seconds",
        DAGSTER_HOME=str(home),
    )
    command = [
        str(Path(sys.executable).with_name("dagster")),
        "asset",
        "materialize",
        "-m",
        "crypto_assets.definitions",
        "--select",
        ASSETS,
    ]
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    (tmp_path / "materialize.log").write_text(done.stdout + done.stderr)
    return done, dg.DagsterInstance.from_config(str(home))


def events(instance: dg.DagsterInstance) -> list:
    """Every event of the (only) run in `instance`."""
    (run,) = instance.get_runs()
    return list(instance.all_logs(run.run_id))


def materialized(instance: dg.DagsterInstance) -> dict[str, dict]:
    """The metadata of each asset materialized by the run."""
    out = {}
    for entry in events(instance):
        event = entry.dagster_event
        if event is not None and event.is_step_materialization:
            materialization = event.step_materialization_data.materialization
            out[materialization.asset_key.to_user_string()] = materialization.metadata
    return out


def messages(instance: dg.DagsterInstance) -> str:
    """Every log and event message of the run, one per line."""
    lines = []
    for entry in events(instance):
        lines.append(entry.user_message or "")
        event = entry.dagster_event
        if event is not None and event.is_step_failure:
            lines.append(str(event.step_failure_data.error))
    return "\n".join(lines)


def stored_bytes(*roots: Path) -> Iterator[tuple[Path, bytes]]:
    """Every file under `roots` with its content."""
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file():
                yield path, path.read_bytes()


def shipped_wheel(run: Run) -> str:
    """The wheel a run installs: its task's `whl` library, or its environment's dependency."""
    (task,) = run.tasks
    shipped = [lib["whl"] for lib in task.spec.get("libraries") or [] if "whl" in lib]
    for environment in run.spec.get("environments") or []:
        shipped += [d for d in environment["spec"]["dependencies"] if d.endswith(".whl")]
    (wheel,) = shipped
    return wheel


def assert_tables_equal_local(
    emulator: Emulator, local: Path, records: list[dict], tmp: Path
) -> None:
    """The Unity Catalog tables equal the local deployment's and the reference.

    They are the managed tables of ``catalog.schema`` (the stand-in catalog's folders): the
    Databricks branch wrote them by their three-part names, not as path tables on the Volume.
    """
    view = tmp / "unity_catalog_tables"
    view.mkdir()
    (view / "delta").symlink_to(emulator.unity_tables_dir(CATALOG, SCHEMA))
    assert not (volume_folder(emulator, LAYOUT.folder("_tables"))).exists()
    assert snapshot(view) == snapshot(local)
    assert_matches_reference(view, records)


# (compute, launcher, DBFS disabled): the step launcher, Pipes on a cluster without DBFS, and
# serverless.
COMPUTES = {
    "cluster": ("cluster", "step_launcher", False),
    "cluster pipes without dbfs": ("cluster", "pipes", True),
    "serverless": ("serverless", "step_launcher", False),
}


@pytest.mark.slow  # two to three minutes each: Delta-Spark on an emulated cluster
@pytest.mark.parametrize("variant", sorted(COMPUTES))
def test_the_spark_assets_run_on_databricks_and_write_the_local_tables(
    tmp_path: Path, records: list[dict], local_tables: Path, variant: str
) -> None:
    compute, launcher, dbfs_disabled = COMPUTES[variant]
    token = f"dapi{secrets.token_hex(16)}"
    options = {**emulator_options(), "dbfs_disabled": dbfs_disabled}
    with running_emulator(tmp_path / "workspace", token, **options) as workspace:
        land(workspace, records)
        done, instance = materialize(workspace, tmp_path, compute, launcher=launcher)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

        # The step ran in the emulator's cluster process, from the installed wheel.
        (run,) = workspace.runs.values()
        assert run.result_state == "SUCCESS"
        (task,) = run.tasks
        wheel = shipped_wheel(run)
        assert wheel.startswith(f"{LAYOUT.staging_dir}/wheels/crypto_assets-0.1.0+")
        if launcher == "step_launcher" and compute == "cluster":
            # dagster-databricks' own code.zip is empty: the wheel is the only copy of the code.
            (code_zip,) = (workspace.dbfs_root / "dagster_staging").rglob("code.zip")
            with zipfile.ZipFile(code_zip) as archive:
                assert archive.namelist() == []
        else:
            assert task.spec["spark_python_task"]["python_file"].endswith("/pipes_main.py")
        if dbfs_disabled:
            assert not [path for _, path in workspace.requests if "/dbfs/" in path]
        text = messages(instance)
        shipped = next(line for line in text.splitlines() if "crypto_assets imported from" in line)
        assert str(CHECKOUT) not in shipped, shipped
        assert ".whl" not in shipped, shipped  # installed, not imported from the zip itself
        # On a Databricks runtime: Auto Loader (its stand-in) listed the landing files, keeping
        # its file log beside the schema location on the Volume.
        assert list(volume_folder(workspace, LAYOUT.folder("_schemas")).rglob("files.jsonl"))
        # Its events, logs and metadata reached the Dagster run.
        assert "analytics (once)" in text
        if compute == "serverless":  # serverless is Spark Connect: foreachBatch out of process
            assert "Spark Connect 4.0" in text
        tables = materialized(instance)
        assert sorted(tables) == sorted(ASSETS.split(","))
        assert tables["trades_raw"]["dagster/row_count"].value == len(
            {(r["symbol"], r["trade_id"]) for r in records}
        )
        assert_tables_equal_local(workspace, local_tables, records, tmp_path)

    # The token is nowhere the emulator or Dagster stored anything (staged step, pickles, the
    # wheel and code.zip, the Volume, event log, compute logs).
    leaks = [
        path
        for path, data in stored_bytes(tmp_path / "workspace", tmp_path / "dagster_home")
        if token.encode() in data
    ]
    assert leaks == []


def test_the_step_launcher_on_a_workspace_without_dbfs_fails_in_one_line(
    tmp_path: Path, records: list[dict]
) -> None:
    options = {**emulator_options(), "dbfs_disabled": True}
    with running_emulator(tmp_path / "workspace", "dapi-no-dbfs", **options) as emulator:
        land(emulator, records)
        done, instance = materialize(emulator, tmp_path, "cluster")
        assert emulator.runs == {}  # nothing was submitted
        uploads = [r for r in emulator.requests if r[0] in ("PUT", "POST")]
    assert done.returncode != 0
    failure = next(line for line in messages(instance).splitlines() if "refuses DBFS" in line)
    assert "set DATABRICKS_LAUNCHER=pipes" in failure
    assert uploads == []


def test_a_token_the_workspace_refuses_fails_the_run_in_one_line(
    workspace: Emulator, tmp_path: Path, records: list[dict]
) -> None:
    land(workspace, records)
    done, instance = materialize(workspace, tmp_path, "cluster", token="dapi-not-a-valid-token")
    assert done.returncode != 0
    text = messages(instance)
    assert "Invalid access token" in text
    assert "DATABRICKS_TOKEN" in text
    assert workspace.runs == {}  # nothing was submitted


@pytest.mark.slow  # a minute each: Spark starts on the emulated compute before the failure
def test_a_failure_on_the_cluster_reaches_the_run_with_its_message(
    workspace: Emulator, tmp_path: Path
) -> None:
    # No landing folder on the Volume: the analytics fail on the cluster with their own message.
    shutil.rmtree(volume_folder(workspace, LAYOUT.landing_dir), ignore_errors=True)
    done, instance = materialize(workspace, tmp_path, "cluster")
    assert done.returncode != 0
    text = messages(instance)
    expected = f"no landing directory {LAYOUT.landing_dir}: run crypto-assets databricks-setup"
    assert expected in text, text[-3000:]


def test_a_run_that_fails_before_the_step_says_why_with_its_page(
    tmp_path: Path, records: list[dict]
) -> None:
    # A cluster whose environment breaks the definitions: the bootstrap itself fails, which the
    # Jobs service reports only as "Workload failed, see run output for details".
    options = {**emulator_options(), "cluster_env": {"CRYPTO_DATA_DIR": " "}}
    with running_emulator(tmp_path / "workspace", "dapi-test-token", **options) as emulator:
        land(emulator, records)
        done, instance = materialize(emulator, tmp_path, "cluster")
        (run,) = emulator.runs.values()
    assert done.returncode != 0
    assert run.result_state == "FAILED"
    assert "Workload failed" in run.state_message
    prefix = f"Databricks run {run.run_id} failed: "
    failure = next(line for line in messages(instance).splitlines() if prefix in line)
    assert "SettingsError: CRYPTO_DATA_DIR=' ': expected a directory path" in failure
    assert f"(run page: {emulator.host}/#job/0/run/{run.run_id})" in failure


@pytest.mark.slow  # a minute each: Spark starts on the emulated compute before the failure
def test_a_failure_of_the_serverless_task_says_why_with_its_page(
    workspace: Emulator, tmp_path: Path
) -> None:
    # No landing folder on the Volume: the Pipes task raises, the serverless run fails.
    shutil.rmtree(volume_folder(workspace, LAYOUT.landing_dir), ignore_errors=True)
    done, instance = materialize(workspace, tmp_path, "serverless")
    (run,) = workspace.runs.values()
    assert done.returncode != 0
    assert run.result_state == "FAILED"
    prefix = f"Databricks run {run.run_id} failed: "
    failure = next(line for line in messages(instance).splitlines() if prefix in line)
    assert f"no landing directory {LAYOUT.landing_dir}" in failure
    assert f"(run page: {workspace.host}/#job/0/run/{run.run_id})" in failure
