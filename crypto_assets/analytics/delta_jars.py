"""The Delta-Spark jars, fetched once at install time into the virtualenv, never at run time.

`python -m crypto_assets.analytics.delta_jars` (run by `make install` after pip) resolves
io.delta:delta-spark_4.0_2.13 (which brings io.delta:delta-storage) with the Ivy that PySpark
ships, the resolver behind Spark's own ``spark.jars.packages``: it needs only Java 17 and knows
the public Maven repository by default, so no Maven install and no repository URL are needed.
Ivy checks every download against the repository's sha1 (``ivy.checksums`` is set to require it).
Of what it resolves, the jars whose artifact PySpark's own ``jars/`` already holds (Scala,
Hadoop, Parquet, log4j...) are left out: Spark provides them and two versions would clash.
A session then loads the cached jars with ``spark.jars``, offline.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import sys
from pathlib import Path

from crypto_assets.analytics.java_runtime import check_java, java_executable
from crypto_assets.errors import CryptoAssetsError

logger = logging.getLogger(__name__)

DELTA_VERSION = "4.4.0"
# The Delta-Spark build for Spark 4.0 / Scala 2.13; it depends on io.delta:delta-storage.
DELTA_SPARK = ("io.delta", "delta-spark_4.0_2.13", DELTA_VERSION)
MANIFEST = "jars.txt"
_RETRIEVE_PATTERN = "[organisation]__[artifact]-[revision](-[classifier]).[ext]"
# `artifact-1.2.3.jar` or `artifact-1.5.6-9.jar`: the artifact name is what precedes the version.
_ARTIFACT = re.compile(r"^(?P<artifact>.+?)-\d[\w.]*(?:-\d+)?\.jar$")
_RESOLVE_TIMEOUT_S = 900


class DeltaJarsMissingError(CryptoAssetsError):
    """The Delta-Spark jars are not in the virtualenv's cache."""


def jar_cache_dir() -> Path:
    """Where the jars are kept: ``<virtualenv>/delta-jars``."""
    return Path(sys.prefix) / "delta-jars"


def pyspark_jars_dir() -> Path:
    """PySpark's own ``jars/`` folder (Spark's classpath and its Ivy)."""
    import pyspark  # noqa: PLC0415 - only needed to locate the folder

    return Path(pyspark.__file__).parent / "jars"


def artifact_name(jar_name: str) -> str:
    """A jar file's artifact: ``delta-storage`` of ``io.delta__delta-storage-4.4.0.jar``."""
    name = jar_name.split("__", 1)[-1]
    match = _ARTIFACT.match(name)
    return match.group("artifact") if match else name.removesuffix(".jar")


def delta_jar_paths(cache: Path | None = None) -> list[Path]:
    """The cached jars, or `DeltaJarsMissingError` (one line) when they were not fetched."""
    cache = cache or jar_cache_dir()
    manifest = cache / MANIFEST
    hint = f"Delta-Spark jars missing in {cache}: run make install"
    if not manifest.is_file():
        raise DeltaJarsMissingError(hint)
    paths = [cache / name for name in manifest.read_text().split()]
    if not paths or not all(path.is_file() for path in paths):
        raise DeltaJarsMissingError(hint)
    return paths


def _ivy_jar() -> Path:
    found = sorted(pyspark_jars_dir().glob("ivy-*.jar"))
    if not found:
        raise DeltaJarsMissingError(f"no Ivy jar in {pyspark_jars_dir()}: reinstall pyspark")
    return found[-1]


def _resolve(staging: Path, ivy_cache: Path) -> None:
    """Resolve DELTA_SPARK's runtime jars with PySpark's Ivy into `staging`."""
    check_java()  # the JAVA_HOME or PATH java Spark will use, 17 or newer
    org, artifact, version = DELTA_SPARK
    command = [
        str(java_executable()),
        "-Divy.checksums=sha1",  # a download whose sha1 does not match fails the resolve
        "-jar",
        str(_ivy_jar()),
        "-dependency",
        org,
        artifact,
        version,
        "-confs",
        "default",  # compile + runtime scopes: not provided (Spark) and not test
        "-types",
        "jar",
        "-cache",
        str(ivy_cache),
        "-retrieve",
        str(staging / _RETRIEVE_PATTERN),
        "-warn",
    ]
    logger.info("resolving %s with %s", ":".join(DELTA_SPARK), command[3])
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=_RESOLVE_TIMEOUT_S, check=False
    )
    if result.returncode != 0:
        lines = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
        tail = " | ".join(lines[-5:]) or f"exit code {result.returncode}"
        raise DeltaJarsMissingError(f"could not resolve {':'.join(DELTA_SPARK)}: {tail}")


def fetch_delta_jars(cache: Path | None = None) -> list[Path]:
    """Fetch the jars into `cache` unless it already holds them (idempotent); their paths."""
    cache = cache or jar_cache_dir()
    try:
        paths = delta_jar_paths(cache)
    except DeltaJarsMissingError:
        pass
    else:
        logger.info("Delta-Spark jars already in %s (%s jars)", cache, len(paths))
        return paths
    staging, ivy_cache = cache / ".staging", cache / ".ivy-cache"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    _resolve(staging, ivy_cache)
    provided = {artifact_name(jar.name) for jar in pyspark_jars_dir().glob("*.jar")}
    kept = sorted(
        jar.name for jar in staging.glob("*.jar") if artifact_name(jar.name) not in provided
    )
    for name in kept:
        (staging / name).replace(cache / name)
    # The manifest is written last, so an interrupted fetch is fetched again, not half used.
    (cache / (MANIFEST + ".tmp")).write_text("\n".join(kept) + "\n")
    (cache / (MANIFEST + ".tmp")).replace(cache / MANIFEST)
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(ivy_cache, ignore_errors=True)
    logger.info("Delta-Spark jars fetched into %s: %s", cache, ", ".join(kept))
    return delta_jar_paths(cache)


def main() -> int:
    """Fetch the jars (the install step); exit 1 with one line when that is impossible."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        fetch_delta_jars()
    except (CryptoAssetsError, OSError, subprocess.TimeoutExpired) as exc:
        logger.error("delta_jars: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
