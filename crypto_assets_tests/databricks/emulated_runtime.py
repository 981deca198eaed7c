"""The emulated Databricks Runtime the REST emulator's tasks run in, built under the virtualenv.

A task on a Databricks cluster runs on the runtime's own Python with what the runtime preinstalls,
plus the libraries its job declares, installed when the cluster starts. This module builds that,
under ``<virtualenv>/emulated-runtime/``, with the pip of the environments it builds:

- ``dbr-17.3/``, the base runtime: a virtualenv made with Python 3.12 (DBR 17.3 LTS runs Python
  3.12) holding :data:`RUNTIME_PACKAGES` and what they depend on, and nothing of this project.
- ``layers/<hash>/``, one per set of declared libraries: a virtualenv of the same Python whose
  ``dbr_runtime.pth`` puts the base runtime's site-packages on ``sys.path`` after its own, so
  pip sees the runtime's packages as installed and installs only what is missing, as a cluster
  does. Built once per set of requirements and reused.
- the shipped wheel, per run: ``pip install --no-deps --target <run dir>/wheels``.

``python -m crypto_assets_tests.databricks.emulated_runtime`` builds the base runtime
(``make install`` runs it).
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from email.parser import HeaderParser
from importlib import metadata
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

RUNTIME_NAME = "dbr-17.3"
RUNTIME_PYTHON = (3, 12)
# What DBR 17.3 LTS preinstalls that matters to the tasks run here, pinned. The versions are those
# of the release notes' "Installed Python libraries" as recalled, not read from the page (it could
# not be reached from here): check them there before relying on one. What they depend on (google-
# auth, python-dateutil...) is left to pip. pyspark and delta-spark are stand-ins: DBR 17.3 reports
# Apache Spark 4.0.0 and ships its own Spark and Delta builds; the emulated runtime uses the
# 4.0.1 maintenance release already cached for the project (the project's own pin) and the
# delta-spark release whose jars the project caches in <virtualenv>/delta-jars, for the runtime's
# built-in Delta Python module.
RUNTIME_PACKAGES = (
    "pip==25.0.1",
    "packaging==24.2",
    "requests==2.32.3",
    "numpy==2.1.3",
    "pandas==2.2.3",
    "pyarrow==19.0.1",
    # Spark Connect's client libraries, and zstandard, which the runtime has too.
    "grpcio==1.67.0",
    "grpcio-status==1.67.0",
    "googleapis-common-protos==1.65.0",
    "protobuf==5.29.4",
    "zstandard==0.23.0",
    "databricks-sdk==0.49.0",
    "py4j==0.10.9.9",
    "pyspark==4.0.1",
    "delta-spark==4.4.0",
)
STAMP = ".built"
PTH_NAME = "dbr_runtime.pth"
_PIP_FLAGS = ("--quiet", "--disable-pip-version-check", "--no-input")
# Variables that would change what the built environments' Python imports or where pip installs.
_UNSET = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PIP_TARGET", "PIP_PREFIX", "PIP_USER")


class LibraryInstallError(Exception):
    """A declared library could not be installed: ``library`` is the one to blame, if known."""

    def __init__(self, message: str, library: Library | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.library = library


@dataclass(frozen=True)
class Interpreter:
    """The Python the emulated runtime is built with."""

    path: Path
    version: tuple[int, int]
    full_version: str


@dataclass(frozen=True)
class Library:
    """A library a job declares: ``pypi`` (``spec`` is a requirement) or ``whl`` (``path``)."""

    kind: str
    spec: str
    path: Path | None = None


@dataclass(frozen=True)
class TaskRuntime:
    """What a task runs with: the interpreter, the folders to put first on its ``sys.path``, and
    the runtime packages its libraries upgraded or downgraded (warnings, as a cluster logs them).
    """

    python: Path
    sys_path: tuple[str, ...]
    warnings: tuple[str, ...] = ()


# The runtime's own Spark binding: Databricks builds these into the runtime, and a library that
# brings another copy (a PyPI pyspark, delta-spark or py4j, or a package with their files, such
# as pyspark-client) breaks it. Any other preinstalled package may be replaced by a job library,
# as on a cluster (databricks-sdk, grpcio, protobuf...): the run gets a warning naming it.
RUNTIME_BOUND = frozenset({"pyspark", "delta-spark", "py4j"})


@dataclass(frozen=True)
class Environment:
    """A virtualenv this module built (the base runtime or a library layer)."""

    root: Path
    version: tuple[int, int]

    @property
    def python(self) -> Path:
        """The environment's interpreter."""
        return self.root / "bin" / "python"

    @property
    def site_packages(self) -> Path:
        """The environment's site-packages folder."""
        major, minor = self.version
        return self.root / "lib" / f"python{major}.{minor}" / "site-packages"

    def stamp(self) -> dict | None:
        """What the environment was built from, or None if it is not (completely) built."""
        try:
            return json.loads((self.root / STAMP).read_text())
        except (OSError, ValueError):
            return None


def runtime_root() -> Path:
    """Where the emulated runtime is kept: ``<virtualenv>/emulated-runtime``."""
    return Path(sys.prefix) / "emulated-runtime"


def _python_version(python: Path) -> tuple[tuple[int, int], str] | None:
    try:
        done = subprocess.run(
            [str(python), "-I", "-c", "import sys; print(*sys.version_info[:3], sep='.')"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except OSError:
        return None
    if done.returncode != 0:
        return None
    full = done.stdout.strip()
    major, minor = (int(part) for part in full.split(".")[:2])
    return (major, minor), full


def _candidates() -> Iterator[Path]:
    """Python 3.12 interpreters: pyenv's, then ~/.pyenv/versions, then python3.12 on PATH."""
    pyenv = shutil.which("pyenv")
    if pyenv:
        try:
            done = subprocess.run(
                [pyenv, "prefix", "3.12"], capture_output=True, text=True, timeout=60, check=False
            )
        except OSError:
            done = None
        if done is not None and done.returncode == 0:
            for prefix in done.stdout.strip().split(os.pathsep):
                if prefix:
                    yield Path(prefix) / "bin" / "python3.12"
    yield from sorted(Path.home().glob(".pyenv/versions/3.12*/bin/python3.12"), reverse=True)
    on_path = shutil.which("python3.12")
    if on_path:
        yield Path(on_path)


@functools.cache
def runtime_python() -> Interpreter:
    """The Python the runtime is built with: a 3.12 if there is one, else this machine's own.

    The fallback is warned about once (see :func:`python_mismatch`).
    """
    for candidate in _candidates():
        found = _python_version(candidate) if candidate.is_file() else None
        if found and found[0] == RUNTIME_PYTHON:
            return Interpreter(candidate, *found)
    own = Interpreter(
        Path(sys.executable),
        (sys.version_info.major, sys.version_info.minor),
        ".".join(str(part) for part in sys.version_info[:3]),
    )
    warnings.warn(_mismatch_text(own), stacklevel=2)
    return own


def _mismatch_text(interpreter: Interpreter) -> str:
    wanted = ".".join(str(part) for part in RUNTIME_PYTHON)
    return (
        f"no Python {wanted} found (pyenv, ~/.pyenv/versions, python{wanted} on PATH): the "
        f"emulated runtime runs Python {interpreter.full_version} instead of {wanted}"
    )


def python_mismatch() -> str | None:
    """Why the emulated runtime's Python is not DBR 17.3's 3.12, or None when it is."""
    interpreter = runtime_python()
    return None if interpreter.version == RUNTIME_PYTHON else _mismatch_text(interpreter)


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """An exclusive fcntl lock: pytest-xdist workers may build the same environment at once."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _clean_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key not in _UNSET}


def _run(command: Sequence[str | Path], what: str) -> None:
    """Run a venv or pip command; its failure is a LibraryInstallError with pip's own text."""
    done = subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        env=_clean_env(),
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if done.returncode != 0:
        text = (done.stderr.strip() or done.stdout.strip()) or f"exit code {done.returncode}"
        raise LibraryInstallError(f"{what} failed:\n{text}" if what else text)


def _make_venv(interpreter: Interpreter, root: Path, *, with_pip: bool) -> None:
    command: list[str | Path] = [interpreter.path, "-m", "venv"]
    if not with_pip:
        command.append("--without-pip")
    _run([*command, root], f"creating the virtualenv {root}")


def _runtime_env() -> tuple[Environment, dict]:
    """The base runtime's environment and the stamp it has once built as RUNTIME_PACKAGES say."""
    interpreter = runtime_python()
    env = Environment(runtime_root() / RUNTIME_NAME, interpreter.version)
    return env, {"python": interpreter.full_version, "packages": list(RUNTIME_PACKAGES)}


def build_runtime() -> Environment:
    """The base runtime, built on first use (and again when RUNTIME_PACKAGES changes)."""
    env, wanted = _runtime_env()
    if env.stamp() == wanted:
        return env
    with _locked(runtime_root() / f"{RUNTIME_NAME}.lock"):
        if env.stamp() == wanted:
            return env
        shutil.rmtree(env.root, ignore_errors=True)
        _make_venv(runtime_python(), env.root, with_pip=True)
        _run(
            [env.python, "-m", "pip", "install", *_PIP_FLAGS, *RUNTIME_PACKAGES],
            f"installing the emulated runtime's packages into {env.root}",
        )
        (env.root / STAMP).write_text(json.dumps(wanted, indent=1))
    return env


def _distributions(site_packages: Path) -> dict[str, metadata.Distribution]:
    found: dict[str, metadata.Distribution] = {}
    for dist in metadata.distributions(path=[str(site_packages)]):
        name = dist.metadata["Name"]
        if name:
            found.setdefault(canonicalize_name(name), dist)
    return found


def _own_files(dist: metadata.Distribution) -> set[str]:
    """The importable files a distribution installs (no metadata, caches or scripts)."""
    return {
        str(file)
        for file in dist.files or []
        if not str(file).startswith("..")
        and ".dist-info/" not in str(file)
        and "__pycache__" not in str(file)
        and str(file).endswith((".py", ".so", ".pyd"))
    }


def _dependency_names(dist: metadata.Distribution) -> set[str]:
    names = set()
    for line in dist.requires or []:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if requirement.marker is None or "extra" not in str(requirement.marker):
            names.add(canonicalize_name(requirement.name))
    return names


def _replacements(layer: Environment, base: Environment, requirements: Sequence[str]) -> list:
    """The layer's distributions that replace one of the runtime's, each with who pulled it in.

    Replacing means the same distribution (a pin that upgraded or downgraded the runtime's) or
    another one installing the same module files (``pyspark-client`` over ``pyspark``): either
    is found first on ``sys.path``, before the runtime's own.
    """
    base_dists = _distributions(base.site_packages)
    layer_dists = _distributions(layer.site_packages)
    base_files = {file: name for name, dist in base_dists.items() for file in _own_files(dist)}
    replaced = []
    for name, dist in sorted(layer_dists.items()):
        shadowed = {name} & base_dists.keys() or {
            base_files[file] for file in _own_files(dist) if file in base_files
        }
        for runtime_name in sorted(shadowed):
            replaced.append(
                {
                    "name": base_dists[runtime_name].metadata["Name"],
                    "runtime_version": base_dists[runtime_name].version,
                    "by": f"{dist.metadata['Name']} {dist.version}",
                    "via": _pulled_in_by(name, layer_dists, requirements),
                }
            )
    return replaced


def _pulled_in_by(
    name: str, layer_dists: dict[str, metadata.Distribution], requirements: Sequence[str]
) -> str:
    """The requirement with the shortest chain of dependencies in the layer to ``name``."""
    best, best_depth = requirements[0], None
    for requirement in requirements:
        seen: set[str] = set()
        level = {canonicalize_name(Requirement(requirement).name)}
        depth = 0
        while level and (best_depth is None or depth < best_depth):
            if name in level:
                best, best_depth = requirement, depth
                break
            seen |= level
            level = {
                dependency
                for current in level & layer_dists.keys()
                for dependency in _dependency_names(layer_dists[current])
            } - seen
            depth += 1
    return best


def _normalized(requirements: Sequence[str]) -> list[str]:
    return sorted({str(Requirement(r)) for r in requirements})


def build_layer(requirements: Sequence[str]) -> tuple[Environment, list[dict]]:
    """The layer of ``requirements`` over the base runtime, and what in it replaces the runtime's.

    Keyed by a hash of the sorted requirements, the Python version and RUNTIME_PACKAGES (a layer
    is built over one base runtime); built once under a file lock, then reused. A requirement
    that does not resolve raises LibraryInstallError with pip's error text; nothing is kept then.
    """
    base = build_runtime()
    wanted = {
        "python": runtime_python().full_version,
        "runtime": list(RUNTIME_PACKAGES),
        "requirements": _normalized(requirements),
    }
    key = hashlib.sha256(json.dumps(wanted, sort_keys=True).encode()).hexdigest()[:16]
    layer = Environment(runtime_root() / "layers" / key, base.version)
    with _locked(runtime_root() / "layers" / f"{key}.lock"):
        stamp = layer.stamp()
        if stamp is None or {k: stamp.get(k) for k in wanted} != wanted:
            shutil.rmtree(layer.root, ignore_errors=True)
            try:
                _make_venv(runtime_python(), layer.root, with_pip=False)
                layer.site_packages.mkdir(parents=True, exist_ok=True)
                (layer.site_packages / PTH_NAME).write_text(f"{base.site_packages}\n")
                # pip itself comes from the base runtime, through dbr_runtime.pth.
                _run(
                    [layer.python, "-m", "pip", "install", *_PIP_FLAGS, *wanted["requirements"]],
                    "",
                )
                stamp = {
                    **wanted,
                    "replaced": _replacements(layer, base, wanted["requirements"]),
                }
            except BaseException:
                shutil.rmtree(layer.root, ignore_errors=True)
                raise
            (layer.root / STAMP).write_text(json.dumps(stamp, indent=1))
    return layer, stamp["replaced"]


def wheel_requirements(wheel: Path) -> list[str]:
    """A wheel's ``Requires-Dist`` from its METADATA, without those of its extras."""
    with zipfile.ZipFile(wheel) as archive:
        names = [n for n in archive.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)]
        if len(names) != 1:
            raise LibraryInstallError(f"{wheel.name} is not a valid wheel: no single METADATA")
        headers = HeaderParser().parsestr(archive.read(names[0]).decode("utf-8"))
    kept = []
    for line in headers.get_all("Requires-Dist") or []:
        requirement = Requirement(line)
        if requirement.marker is None or "extra" not in str(requirement.marker):
            kept.append(str(requirement))
    return kept


def install_wheel(python: Path, wheel: Path, target: Path) -> None:
    """The shipped wheel alone (``--no-deps``) into ``target``: its dependencies are the layer's."""
    target.mkdir(parents=True, exist_ok=True)
    _run(
        [python, "-m", "pip", "install", *_PIP_FLAGS, "--no-deps", "--target", target, wheel],
        "",
    )


def prepare_task(libraries: Sequence[Library], run_dir: Path) -> TaskRuntime:
    """Install a task's libraries as a cluster does at start: the interpreter and sys.path to use.

    A cluster runs ``pip install`` of each PyPI library and each wheel (which brings the wheel's
    own dependencies). Here that is split in two: everything that can be cached (the PyPI
    libraries and the wheels' ``Requires-Dist``) is one layer, built once for that set; only the
    wheels themselves are installed per run, with ``--no-deps`` into ``<run dir>/wheels``.
    Raises LibraryInstallError naming the library to blame.
    """
    origin: dict[str, Library] = {}
    for library in libraries:
        if library.kind == "pypi":
            try:
                origin.setdefault(str(Requirement(library.spec)), library)
            except InvalidRequirement as error:
                raise LibraryInstallError(
                    f"Invalid requirement: {library.spec!r}: {error}", library
                ) from None
        else:
            if library.path is None or not library.path.is_file():
                raise LibraryInstallError(
                    f"ERROR: Could not install {library.spec}: no such file", library
                )
            try:
                for requirement in wheel_requirements(library.path):
                    origin.setdefault(requirement, library)
            except (zipfile.BadZipFile, InvalidRequirement) as error:
                raise LibraryInstallError(f"{library.spec}: {error}", library) from None
    wheels = [library for library in libraries if library.kind == "whl"]
    if origin:
        try:
            layer, replaced = build_layer(list(origin))
        except LibraryInstallError as error:
            raise LibraryInstallError(error.message, _blame(error.message, origin)) from None
        blamed = [origin.get(entry["via"]) or next(iter(origin.values())) for entry in replaced]
        lines = [
            f"library {library.spec if library.kind == 'pypi' else library.path.name} "  # type: ignore[union-attr]
            f"replaces the runtime's preinstalled {entry['name']} {entry['runtime_version']} "
            f"(it installs {entry['by']})"
            for library, entry in zip(blamed, replaced, strict=True)
        ]
        bound = [
            (library, line)
            for library, line, entry in zip(blamed, lines, replaced, strict=True)
            if canonicalize_name(entry["name"]) in RUNTIME_BOUND
        ]
        if bound:
            raise LibraryInstallError("\n".join(line for _, line in bound), bound[0][0])
        warnings = tuple(lines)
        python = layer.python
    else:
        python, warnings = build_runtime().python, ()
    target = run_dir / "wheels"
    for library in wheels:
        try:
            install_wheel(python, library.path, target)  # type: ignore[arg-type]
        except LibraryInstallError as error:
            raise LibraryInstallError(error.message, library) from None
    return TaskRuntime(python, (str(target),) if wheels else (), warnings)


def _blame(pip_error: str, origin: dict[str, Library]) -> Library | None:
    """The library whose requirement pip's error names (the whole set fails together)."""
    named = re.findall(r"(?:the requirement|found for) (\S+)", pip_error)
    for text in named:
        try:
            requirement = str(Requirement(text))
        except InvalidRequirement:
            continue
        if requirement in origin:
            return origin[requirement]
    return next(iter(origin.values()), None)


def main() -> int:
    """Build the base runtime (or find it built) and say which in one line."""
    started = time.monotonic()
    env, wanted = _runtime_env()
    cached = env.stamp() == wanted
    try:
        build_runtime()
    except LibraryInstallError as error:
        print(f"emulated runtime: {error.message}", file=sys.stderr)
        return 1
    (env.root / STAMP).touch()  # make's target: up to date even when nothing was rebuilt
    note = python_mismatch()
    print(
        f"emulated Databricks runtime {RUNTIME_NAME}: "
        f"{'found cached' if cached else 'built'} {env.root} (Python "
        f"{runtime_python().full_version}, {len(RUNTIME_PACKAGES)} pinned packages) in "
        f"{time.monotonic() - started:.1f} s" + (f"; {note}" if note else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
