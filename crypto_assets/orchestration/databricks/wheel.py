"""The package as a wheel on the Volume: the code Databricks compute installs and imports.

`upload_wheel(client, layout)` builds the package's wheel with `pip wheel --no-deps` from a copy
of the project folder (pyproject.toml beside the package, as a source checkout has it) and
uploads it to `/Volumes/<catalog>/<schema>/crypto_landing/_dagster/wheels/`, where a classic
cluster installs it as a `whl` library and a serverless task as an environment dependency. A
build is cached under the content hash of its inputs (the package's files, pyproject.toml and
its readme), so an unchanged package is built once and uploaded once.

The shipped wheel differs from `pip wheel`'s in two ways, both in its METADATA, rewritten in
the zip after the build (its dist-info folder renamed and RECORD's hashes recomputed, as the
wheel format asks; the `wheel` package's `unpack`/`pack` would do the same, but it is not
installed here):

- its version carries the build's hash as a PEP 440 local label, ``0.1.0+<hash12>``: pip skips a
  wheel whose name and version are already installed, so a cluster with an older build would
  keep the older code; a new label installs the new one. (Building with the version set would
  mean editing pyproject.toml's copy; renaming after the build keeps pyproject.toml the one
  place of the base version.)
- its ``Requires-Dist`` leaves out `PROVIDED_OR_LOCAL_ONLY`. A cluster installs a `whl` library
  with its dependencies: `delta-spark` 4.4 itself requires ``pyspark>=4.0.1``, which would install
  PyPI's PySpark over Databricks Runtime 17.3's own Spark 4.0.0, and on serverless a PyPI pyspark
  conflicts with the Databricks Connect client. What the compute lacks stays required, and is
  pinned beside the wheel (`libraries.py`).
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import NotFound

import crypto_assets
from crypto_assets.databricks.layout import VolumeLayout
from crypto_assets.databricks.workspace import TOKEN_VARIABLE
from crypto_assets.errors import CryptoAssetsError
from crypto_assets.orchestration.databricks.libraries import (
    PROVIDED_OR_LOCAL_ONLY,
    requirement_name,
)

# Built wheels, one per content hash (a build takes seconds: pip fetches the build backend).
CACHE_DIR = Path(tempfile.gettempdir()) / "crypto_assets_wheels"
HASH_LENGTH = 12
_BUILD_TIMEOUT_SECONDS = 600


def wheels_dir(layout: VolumeLayout) -> str:
    """Where the wheels are on the Volume: ``<staging_dir>/wheels``."""
    return f"{layout.staging_dir}/wheels"


def project_folder() -> Path:
    """The source tree the package is imported from: pyproject.toml beside the package.

    A `CryptoAssetsError` in one line when there is none (the package installed from a wheel or
    an sdist into site-packages): the wheel Databricks installs is built from the source tree.
    """
    package = Path(crypto_assets.__file__).resolve().parent
    pyproject = package.parent / "pyproject.toml"
    name = _project(pyproject).get("name") if pyproject.is_file() else None
    if name is None or name.replace("-", "_") != package.name:
        raise CryptoAssetsError(
            f"crypto_assets is imported from {package}, not from a source tree (no pyproject.toml "
            f"of crypto_assets in {package.parent}): the Databricks deployment builds the wheel "
            "it installs there from a checkout; install the project with pip install -e <checkout>"
        )
    return package.parent


def build_inputs(project: Path) -> list[Path]:
    """The files a build reads, relative to `project`: the package's, pyproject.toml, readme."""
    package = Path(crypto_assets.__file__).resolve().parent.relative_to(project)
    readme = _project(project / "pyproject.toml").get("readme")
    if isinstance(readme, dict):
        readme = readme.get("file")
    inputs = [Path("pyproject.toml"), *([Path(readme)] if isinstance(readme, str) else [])]
    for path in sorted((project / package).rglob("*")):
        relative = path.relative_to(project)
        if path.is_file() and "__pycache__" not in relative.parts and path.suffix != ".pyc":
            inputs.append(relative)
    return inputs


def content_hash(project: Path, inputs: list[Path]) -> str:
    """The sha256 of the inputs' names and contents (hex)."""
    digest = hashlib.sha256()
    for relative in inputs:
        digest.update(relative.as_posix().encode() + b"\0")
        digest.update((project / relative).read_bytes() + b"\0")
    return digest.hexdigest()


def build_wheel(cache_dir: Path = CACHE_DIR) -> Path:
    """The package's wheel, versioned ``<version>+<hash12>``: from `cache_dir`, else built there."""
    project = project_folder()
    inputs = build_inputs(project)
    label = content_hash(project, inputs)[:HASH_LENGTH]
    version = f"{_project(project / 'pyproject.toml')['version']}+{label}"
    cached = sorted(cache_dir.glob(f"*-{version}-*.whl"))
    if cached:
        return cached[0]
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="crypto_assets_wheel_") as scratch:
        # A copy: setuptools writes build/ and *.egg-info into the tree it builds, and a stale
        # build/lib would ship files the checkout no longer has.
        source, out = Path(scratch) / "source", Path(scratch) / "dist"
        for relative in inputs:
            (source / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(project / relative, source / relative)
        built = _pip_wheel(source, out)
        target = cache_dir / built.name.replace(f"-{_wheel_version(built)}-", f"-{version}-", 1)
        _rewrite(built, target, version)
    return target


def upload_wheel(client: WorkspaceClient, layout: VolumeLayout, wheel: Path | None = None) -> str:
    """Upload `wheel` (default: `build_wheel()`) to `wheels_dir`; its path on the Volume.

    Skipped when a file of the same name and size is there already: the name holds the hash.
    """
    wheel = wheel or build_wheel()
    folder = wheels_dir(layout)
    remote = f"{folder}/{wheel.name}"
    try:
        if client.files.get_metadata(remote).content_length == wheel.stat().st_size:
            return remote
    except NotFound:
        pass
    client.files.create_directory(folder)
    with wheel.open("rb") as data:
        client.files.upload(remote, data, overwrite=True)
    return remote


def _project(pyproject: Path) -> dict:
    """pyproject.toml's ``[project]`` table."""
    return tomllib.loads(pyproject.read_text()).get("project", {})


def _pip_wheel(source: Path, out: Path) -> Path:
    """`pip wheel --no-deps` of `source` into `out`; the wheel, or one line saying why not."""
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check"]
    done = subprocess.run(
        [*command, "--wheel-dir", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=_BUILD_TIMEOUT_SECONDS,
        check=False,
        # The build needs no credential: the workspace token stays out of it.
        env={key: value for key, value in os.environ.items() if key != TOKEN_VARIABLE},
    )
    wheels = sorted(out.glob("*.whl"))
    if done.returncode != 0 or len(wheels) != 1:
        lines = [line.strip() for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit status {done.returncode}"
        raise CryptoAssetsError(f"pip wheel could not build crypto_assets: {reason}")
    return wheels[0]


def _wheel_version(wheel: Path) -> str:
    """The version part of a wheel's file name (``name-version-python-abi-platform.whl``)."""
    return wheel.name.split("-")[1]


def _rewrite(built: Path, target: Path, version: str) -> None:
    """`built` with `version` and `_trimmed_metadata`, written atomically as `target`."""
    with zipfile.ZipFile(built) as source:
        names = source.namelist()
        old_info = next(n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info"))
        distribution = old_info.removesuffix(".dist-info").rsplit("-", 1)[0]
        new_info = f"{distribution}-{version}.dist-info"
        record = []
        # Unique per process: two launches may build the same wheel at once.
        partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as wheel:
            for item in source.infolist():
                if item.filename == f"{old_info}/RECORD":
                    continue
                data = source.read(item)
                name = item.filename
                if name.startswith(f"{old_info}/"):
                    name = new_info + name.removeprefix(old_info)
                if name == f"{new_info}/METADATA":
                    data = _trimmed_metadata(data, version)
                entry = zipfile.ZipInfo(name, date_time=item.date_time)
                entry.external_attr, entry.compress_type = item.external_attr, zipfile.ZIP_DEFLATED
                wheel.writestr(entry, data)
                digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
                record.append(f"{name},sha256={digest.decode()},{len(data)}")
            record.append(f"{new_info}/RECORD,,")
            wheel.writestr(f"{new_info}/RECORD", "\n".join(record) + "\n")
    partial.replace(target)


def _trimmed_metadata(metadata: bytes, version: str) -> bytes:
    """METADATA with `version` and without the requirements of `PROVIDED_OR_LOCAL_ONLY`.

    Only the header is read (up to the first blank line); the description after it is kept.
    """
    header, separator, body = metadata.decode().partition("\n\n")
    lines = []
    for line in header.splitlines():
        if line.startswith("Version:"):
            lines.append(f"Version: {version}")
            continue
        requirement = line.removeprefix("Requires-Dist:").strip()
        if (
            line.startswith("Requires-Dist:")
            and "extra ==" not in requirement
            and requirement_name(requirement) in PROVIDED_OR_LOCAL_ONLY
        ):
            continue
        lines.append(line)
    return ("\n".join(lines) + separator + body).encode()
