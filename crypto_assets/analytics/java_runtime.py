"""The Java that PySpark will launch, and the check that it is 17 or newer, in one line."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from crypto_assets.errors import CryptoAssetsError

MIN_JAVA = 17
_VERSION = re.compile(r'version "(\d+)(?:\.(\d+))?')


class JavaNotFoundError(CryptoAssetsError):
    """No usable Java 17+ for Spark."""


def java_executable() -> Path | None:
    """The java PySpark will launch: ``$JAVA_HOME/bin/java`` if JAVA_HOME is set, else PATH's."""
    # PySpark itself reads JAVA_HOME and PATH, so the check must look where it will look.
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        return candidate if candidate.is_file() else None
    found = shutil.which("java")
    return Path(found) if found else None


def java_major_version(java: Path) -> int | None:
    """Major version printed by ``java -version`` (8 for ``1.8.0_x``), None if it cannot run."""
    try:
        result = subprocess.run(
            [str(java), "-version"], capture_output=True, text=True, timeout=60, check=False
        )
    except OSError:
        return None
    match = _VERSION.search(result.stderr + result.stdout)
    if result.returncode != 0 or not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def check_java() -> None:
    """Raise `JavaNotFoundError` (one line) unless a Java 17+ runtime is available to Spark."""
    hint = f"install a JDK {MIN_JAVA}+ and set JAVA_HOME to it (or put its bin/ on PATH)"
    java = java_executable()
    if java is None:
        where = os.environ.get("JAVA_HOME")
        place = f"JAVA_HOME={where} has no bin/java" if where else "no java on PATH"
        raise JavaNotFoundError(f"Spark needs Java {MIN_JAVA} or newer, but {place}: {hint}")
    major = java_major_version(java)
    if major is None:
        raise JavaNotFoundError(
            f"Spark needs Java {MIN_JAVA} or newer, but {java} does not run: {hint}"
        )
    if major < MIN_JAVA:
        raise JavaNotFoundError(
            f"Spark needs Java {MIN_JAVA} or newer, but {java} is Java {major}: {hint}"
        )
