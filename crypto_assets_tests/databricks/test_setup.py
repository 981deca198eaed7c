"""`crypto-assets databricks-setup` as a real subprocess against the Databricks emulator."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from crypto_assets_tests.databricks.emulator import Emulator, running_emulator

TOKEN = "dapi-setup-test-0123456789abcdef"
CATALOG = "takamol_demo"
SCHEMA = "crypto_streaming"
VOLUME_DIR = f"/Volumes/{CATALOG}/{SCHEMA}/crypto_landing"
# Written out here rather than taken from layout.FOLDERS: what the deployment's readers expect.
FOLDERS = ("trades", "_producer", "_checkpoints", "_schemas", "_tables", "_dagster")


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Emulator]:
    """An emulated workspace whose metastore has the catalog takamol_demo and nothing else."""
    with running_emulator(tmp_path / "workspace", TOKEN, catalogs=(CATALOG,)) as running:
        yield running


def setup_command(
    host: str, token: str | None = TOKEN, **extra: str
) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CRYPTO_", "DATABRICKS_")) and k not in ("CATALOG", "SCHEMA")
    }
    env["DATABRICKS_HOST"] = host
    if token is not None:
        env["DATABRICKS_TOKEN"] = token
    env.update(extra)
    return subprocess.run(
        [sys.executable, "-m", "crypto_assets.cli", "databricks-setup"],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def error_line(result: subprocess.CompletedProcess) -> str:
    """The one stderr line of a failed run (fails the test if there are more)."""
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("crypto-assets databricks-setup: error: ")
    return lines[0].removeprefix("crypto-assets databricks-setup: error: ")


def test_a_first_run_creates_schema_volume_and_folders_and_a_second_creates_nothing(
    emulator: Emulator,
) -> None:
    first = setup_command(emulator.host)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        f"catalog {CATALOG}: exists",
        f"schema {CATALOG}.{SCHEMA}: created",
        f"volume {CATALOG}.{SCHEMA}.crypto_landing: created (MANAGED)",
        *(f"folder {VOLUME_DIR}/{folder}: created" for folder in FOLDERS),
        f"{2 + len(FOLDERS)} created, 1 existed",
    ]
    volume = emulator.volumes_root / CATALOG / SCHEMA / "crypto_landing"
    assert sorted(p.name for p in volume.iterdir()) == sorted(FOLDERS)
    assert all((volume / folder).is_dir() for folder in FOLDERS)
    schema_posts = [r for r in emulator.requests if r == ("POST", "/api/2.1/unity-catalog/schemas")]
    assert len(schema_posts) == 1

    second = setup_command(emulator.host)
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines() == [
        f"catalog {CATALOG}: exists",
        f"schema {CATALOG}.{SCHEMA}: exists",
        f"volume {CATALOG}.{SCHEMA}.crypto_landing: exists (MANAGED)",
        *(f"folder {VOLUME_DIR}/{folder}: exists" for folder in FOLDERS),
        f"0 created, {3 + len(FOLDERS)} existed",
    ]
    posts = [r for r in emulator.requests if r[0] in ("POST", "PUT")]
    assert len(posts) == 2 + len(FOLDERS)  # the first run's creations only
    assert TOKEN not in first.stdout + first.stderr + second.stdout + second.stderr


def test_a_folder_removed_since_is_created_again_and_nothing_else(emulator: Emulator) -> None:
    assert setup_command(emulator.host).returncode == 0
    (emulator.volumes_root / CATALOG / SCHEMA / "crypto_landing" / "_schemas").rmdir()
    again = setup_command(emulator.host)
    assert again.returncode == 0, again.stderr
    created = [line for line in again.stdout.splitlines() if line.endswith(": created")]
    assert created == [f"folder {VOLUME_DIR}/_schemas: created"]


def test_a_missing_catalog_is_one_line_and_nothing_is_created(emulator: Emulator) -> None:
    result = setup_command(emulator.host, CATALOG="no_such_catalog")
    line = error_line(result)
    assert line.startswith(
        "catalog no_such_catalog does not exist: create it in Catalog Explorer or set CATALOG"
    )
    assert not any(emulator.volumes_root.iterdir())
    assert not [r for r in emulator.requests if r[0] in ("POST", "PUT")]


def test_no_permission_to_create_the_schema_is_one_line_naming_the_privileges(
    emulator: Emulator,
) -> None:
    emulator.deny("POST", "/api/2.1/unity-catalog/schemas")
    line = error_line(setup_command(emulator.host))
    assert line.startswith(
        f"no permission to create schema {CATALOG}.{SCHEMA}: ask for USE CATALOG and "
        f"CREATE SCHEMA on {CATALOG} (PERMISSION_DENIED"
    )


def test_no_permission_to_write_the_volume_is_one_line_naming_the_privileges(
    emulator: Emulator,
) -> None:
    emulator.deny("PUT", "/api/2.0/fs/directories/Volumes/")
    result = setup_command(emulator.host)
    line = error_line(result)
    volume = f"{CATALOG}.{SCHEMA}.crypto_landing"
    assert line.startswith(
        f"no permission to write to volume {volume}: ask for READ VOLUME and WRITE VOLUME "
        f"on {volume} (PERMISSION_DENIED"
    )
    # What it did before the denial is reported.
    assert f"volume {volume}: created (MANAGED)" in result.stdout.splitlines()


def test_a_token_the_workspace_rejects_is_one_line_that_never_shows_it(
    emulator: Emulator,
) -> None:
    wrong = "dapi-wrong-token-fedcba9876543210"
    result = setup_command(emulator.host, token=wrong)
    line = error_line(result)
    assert line.startswith(f"DATABRICKS_TOKEN is not accepted by {emulator.host} ")
    assert line.endswith(
        "create a new personal access token (Settings > Developer > Access "
        "tokens) and export DATABRICKS_TOKEN"
    )
    assert wrong not in result.stdout + result.stderr


def test_an_unreachable_host_is_one_line_within_seconds() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    line = error_line(setup_command(f"http://127.0.0.1:{port}"))
    assert time.monotonic() - started < 30  # the SDK alone would retry for 300 s
    assert line == (
        f"cannot reach http://127.0.0.1:{port}: connection refused: check DATABRICKS_HOST and "
        "the network"
    )


@pytest.mark.parametrize(
    ("host", "token", "fragment"),
    [
        ("", TOKEN, "DATABRICKS_HOST is not set: export DATABRICKS_HOST=https://"),
        ("https://example.invalid", None, "DATABRICKS_TOKEN is not set: create a personal"),
        ("https://example.invalid", "  ", "DATABRICKS_TOKEN is not set: create a personal"),
    ],
)
def test_a_missing_host_or_token_is_one_line(host: str, token: str | None, fragment: str) -> None:
    assert error_line(setup_command(host, token=token)).startswith(fragment)
