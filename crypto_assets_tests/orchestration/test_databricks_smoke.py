"""`crypto-assets databricks-smoke` against the REST emulator, as a user runs it on a workspace."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from crypto_assets.orchestration.databricks.smoke import SMOKE_TRADES
from crypto_assets_tests.databricks.emulator import (
    Emulator,
    needs_mount_namespace,
    running_emulator,
)
from crypto_assets_tests.databricks.test_databricks_deployment import (
    CATALOG,
    SCHEMA,
    emulator_options,
    workspace_env,
)

pytestmark = [pytest.mark.databricks]


def smoke(
    emulator: Emulator, tmp_path: Path, token: str, *extra: str
) -> subprocess.CompletedProcess:
    """The command, from a folder outside the checkout, with the workspace's settings only."""
    env = workspace_env(emulator, token, DATABRICKS_COMPUTE="serverless")
    cwd = tmp_path / "elsewhere"
    cwd.mkdir(exist_ok=True)
    command = [str(Path(sys.executable).with_name("crypto-assets")), "databricks-smoke", *extra]
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900, check=False
    )


def test_a_refused_token_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with running_emulator(tmp_path / "workspace", "dapi-good", catalogs=(CATALOG,)) as emulator:
        done = smoke(emulator, tmp_path, "dapi-not-the-token")
        assert emulator.runs == {}
        assert emulator.schema_names() == []
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = done.stdout.splitlines()
    assert line.startswith("workspace  FAILED")
    assert "Invalid access token" in line
    assert "DATABRICKS_TOKEN" in line
    assert "dapi-not-the-token" not in done.stdout + done.stderr


@pytest.mark.slow  # one analytics run on the emulated serverless compute
@pytest.mark.spark
@pytest.mark.e2e
@needs_mount_namespace
def test_the_smoke_passes_on_a_workspace_and_leaves_nothing_behind(tmp_path: Path) -> None:
    token = "dapi-smoke-test"
    with running_emulator(tmp_path / "workspace", token, **emulator_options()) as emulator:
        done = smoke(emulator, tmp_path, token)
        schemas = emulator.schema_names()
        runs = list(emulator.runs.values())
        unity_tables = emulator.unity_tables_root
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    steps = [line.split()[0] for line in lines[:-1]]
    assert steps == ["workspace", "setup", "landing", "analytics", "tables", "cleanup"], lines
    assert all(line.split()[1] == "ok" for line in lines[:-1]), lines
    tables = next(line for line in lines if line.startswith("tables"))
    assert f"trades_raw {SMOKE_TRADES} rows" in tables
    assert lines[-1] == "smoke passed: this workspace runs the pipeline"
    # One run, ended; the scratch schema is gone with its tables, the workspace's own is as it was.
    assert [run.result_state for run in runs] == ["SUCCESS"]
    assert schemas == [f"{CATALOG}.{SCHEMA}"]
    assert [path.name for path in unity_tables.iterdir()] == [f"{CATALOG}__{SCHEMA}.db"]
