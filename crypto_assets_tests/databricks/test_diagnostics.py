"""`check_workspace`: a refused token and a workspace without DBFS are told apart, one line each."""

from __future__ import annotations

from pathlib import Path

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import PermissionDenied

from crypto_assets.databricks.diagnostics import check_workspace
from crypto_assets.databricks.workspace import WorkspaceError
from crypto_assets_tests.databricks.emulator import running_emulator

TOKEN = "dapi-diagnostics-test-0123456789"


def refusal(client: WorkspaceClient, *, dbfs: bool) -> str:
    """The one line `check_workspace` raises."""
    with pytest.raises(WorkspaceError) as caught:
        check_workspace(client, dbfs=dbfs)
    line = str(caught.value)
    assert "\n" not in line
    return line


def test_a_workspace_without_dbfs_names_the_launcher_setting(tmp_path: Path) -> None:
    with running_emulator(tmp_path / "workspace", TOKEN, dbfs_disabled=True) as emulator:
        client = WorkspaceClient(host=emulator.host, token=TOKEN)
        line = refusal(client, dbfs=True)
        check_workspace(client)  # Pipes needs no DBFS: the token alone is checked
    assert "accepts DATABRICKS_TOKEN but refuses DBFS" in line
    assert "[DBFS_DISABLED] Public DBFS root is disabled" in line
    assert "set DATABRICKS_LAUNCHER=pipes" in line
    assert "valid personal access token" not in line


def test_a_bad_token_is_the_token_line_whether_dbfs_is_there_or_not(tmp_path: Path) -> None:
    for disabled in (True, False):
        root = tmp_path / f"workspace-{disabled}"
        with running_emulator(root, TOKEN, dbfs_disabled=disabled) as emulator:
            client = WorkspaceClient(host=emulator.host, token="dapi-not-the-token")
            line = refusal(client, dbfs=True)
        assert "PermissionDenied (403): Invalid access token." in line
        assert "check that DATABRICKS_TOKEN is a valid personal access token" in line
        assert "DATABRICKS_LAUNCHER" not in line


def test_a_workspace_with_dbfs_passes_both_checks(tmp_path: Path) -> None:
    with running_emulator(tmp_path / "workspace", TOKEN) as emulator:
        check_workspace(WorkspaceClient(host=emulator.host, token=TOKEN), dbfs=True)


def test_the_emulator_without_dbfs_refuses_every_dbfs_call(tmp_path: Path) -> None:
    with running_emulator(tmp_path / "workspace", TOKEN, dbfs_disabled=True) as emulator:
        client = WorkspaceClient(host=emulator.host, token=TOKEN)
        calls = (
            lambda: client.dbfs.mkdirs("/dagster_staging"),
            lambda: client.dbfs.put("/x.txt", contents="eA==", overwrite=True),
            lambda: client.dbfs.create("/y.txt", overwrite=True),
            lambda: client.dbfs.read("/x.txt"),
            lambda: list(client.dbfs.list("/")),
        )
        for call in calls:
            with pytest.raises(PermissionDenied, match=r"^\[DBFS_DISABLED\] Public DBFS root"):
                call()
        assert not (emulator.dbfs_root / "dagster_staging").exists()
