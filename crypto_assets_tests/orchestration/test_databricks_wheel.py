"""The package's wheel for Databricks: built once per content, versioned by it, nothing private."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from databricks.sdk import WorkspaceClient

import crypto_assets
from crypto_assets.databricks.layout import VolumeLayout
from crypto_assets.orchestration.databricks.libraries import (
    PROVIDED_OR_LOCAL_ONLY,
    requirement_name,
)
from crypto_assets.orchestration.databricks.wheel import (
    build_inputs,
    build_wheel,
    content_hash,
    project_folder,
    upload_wheel,
    wheels_dir,
)
from crypto_assets_tests.databricks.emulator import running_emulator

CHECKOUT = Path(__file__).resolve().parents[2]
PACKAGE = Path(crypto_assets.__file__).parent
TOKEN = "dapi-wheel-test-0123456789abcdef"
LAYOUT = VolumeLayout("takamol_demo", "crypto_streaming")


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel cache of this module's own."""
    return tmp_path_factory.mktemp("wheels")


@pytest.fixture(scope="module")
def wheel(cache: Path) -> Path:
    """The package's wheel, built with a token in the environment (that must not reach it)."""
    with pytest.MonkeyPatch.context() as environ:
        environ.setenv("DATABRICKS_TOKEN", TOKEN)
        return build_wheel(cache)


def members(wheel: Path) -> dict[str, bytes]:
    """Every file of `wheel` with its content."""
    with zipfile.ZipFile(wheel) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def metadata(wheel: Path) -> list[str]:
    """The header lines of the wheel's METADATA."""
    (name,) = [n for n in members(wheel) if n.endswith(".dist-info/METADATA")]
    return members(wheel)[name].decode().partition("\n\n")[0].splitlines()


def test_the_wheel_is_built_once_and_reused(cache: Path, wheel: Path) -> None:
    built = wheel.stat().st_mtime_ns
    assert build_wheel(cache) == wheel
    assert wheel.stat().st_mtime_ns == built
    assert sorted(cache.glob("*.whl")) == [wheel]


def test_its_version_carries_the_hash_of_what_it_was_built_from(wheel: Path) -> None:
    project = project_folder()
    label = content_hash(project, build_inputs(project))[:12]
    assert wheel.name == f"crypto_assets-0.1.0+{label}-py3-none-any.whl"
    assert f"Version: 0.1.0+{label}" in metadata(wheel)
    assert f"crypto_assets-0.1.0+{label}.dist-info/RECORD" in members(wheel)


def test_a_changed_file_is_a_new_version(tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(CHECKOUT / "crypto_assets" / "binance", project / "crypto_assets" / "binance")
    inputs = [p.relative_to(project) for p in sorted(project.rglob("*.py"))]
    before = content_hash(project, inputs)
    first = project / inputs[0]
    first.write_text(first.read_text() + "\n# changed\n")
    assert content_hash(project, inputs) != before


def test_its_record_matches_its_files(wheel: Path) -> None:
    files = members(wheel)
    (record_name,) = [n for n in files if n.endswith(".dist-info/RECORD")]
    rows = [line.split(",") for line in files[record_name].decode().splitlines()]
    assert sorted(row[0] for row in rows) == sorted(files)
    for name, digest, size in rows:
        if name == record_name:
            assert (digest, size) == ("", "")
            continue
        expected = base64.urlsafe_b64encode(hashlib.sha256(files[name]).digest()).rstrip(b"=")
        assert (digest, size) == (f"sha256={expected.decode()}", str(len(files[name])))


def test_it_holds_the_package(wheel: Path) -> None:
    shipped = {name for name in members(wheel) if name.startswith("crypto_assets/")}
    source = {
        p.relative_to(PACKAGE.parent).as_posix()
        for p in PACKAGE.rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert source <= shipped
    assert "crypto_assets/orchestration/databricks/pipes_task.py" in shipped


def test_it_holds_no_token_and_no_path_of_the_checkout(wheel: Path) -> None:
    for name, data in members(wheel).items():
        assert TOKEN.encode() not in data, name
        assert str(CHECKOUT).encode() not in data, name


def test_it_requires_nothing_the_runtime_has_or_only_the_local_side_needs(wheel: Path) -> None:
    required = {
        requirement_name(line.removeprefix("Requires-Dist:"))
        for line in metadata(wheel)
        if line.startswith("Requires-Dist:") and "extra ==" not in line
    }
    # A cluster installs a wheel with its requirements: none may replace the runtime's Spark.
    assert required.isdisjoint(PROVIDED_OR_LOCAL_ONLY)
    assert {"deltalake", "orjson", "pydantic-settings", "websocket-client"} <= required


def test_it_is_uploaded_once_to_the_volumes_wheels_folder(tmp_path: Path, wheel: Path) -> None:
    volume = {"volumes": (LAYOUT.full_volume_name,)}
    with running_emulator(tmp_path / "workspace", TOKEN, **volume) as emulator:
        client = WorkspaceClient(host=emulator.host, token=TOKEN)
        shipped = upload_wheel(client, LAYOUT, wheel)
        again = upload_wheel(client, LAYOUT, wheel)
        puts = [path for method, path in emulator.requests if method == "PUT" and ".whl" in path]
        on_volume = emulator.volumes_root / shipped.removeprefix("/Volumes/")
        assert on_volume.read_bytes() == wheel.read_bytes()
    assert shipped == again == f"{wheels_dir(LAYOUT)}/{wheel.name}"
    assert shipped.startswith("/Volumes/takamol_demo/crypto_streaming/crypto_landing/_dagster/")
    assert len(puts) == 1  # the second time the same name and size were there already


def test_a_package_outside_a_source_tree_is_one_line(tmp_path: Path) -> None:
    # The package copied without its project folder, as an install into site-packages has it.
    shutil.copytree(
        PACKAGE, tmp_path / "crypto_assets", ignore=shutil.ignore_patterns("__pycache__")
    )
    script = (
        "from crypto_assets.orchestration.databricks.wheel import project_folder\n"
        "project_folder()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert re.match(
        r"^crypto_assets\.errors\.CryptoAssetsError: crypto_assets is imported from ", last
    )
    assert "not from a source tree" in last
