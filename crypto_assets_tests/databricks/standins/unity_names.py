"""A stand-in for Unity Catalog's three-part names on open-source Spark 4.0 with Delta (tests only).

Each Unity Catalog catalog name is registered as a Spark catalog,
``spark.sql.catalog.<catalog>=crypto_assets_tests.standins.NamedDeltaCatalog`` (the Java class in
``catalog/``, compiled here with javac against PySpark's and Delta's jars). The folders keep the
names: the schema ``<catalog>.<schema>`` is the folder ``<warehouse_dir>/<catalog>__<schema>.db``
(lower case, see `schema_dir`) and a table any folder in it with a ``_delta_log`` (see
`table_dir`), opened as a Delta path table. No metastore is involved (the session keeps its own
in-memory catalog), so the names survive from one Spark application to the next and several
applications may use the warehouse at once (Delta's optimistic concurrency decides between their
commits).

A session cannot gain jars or catalogs once started: `catalog_conf` goes to the builder of a new
application, merged into its own conf with `merge_conf`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from crypto_assets.analytics.delta_jars import delta_jar_paths, pyspark_jars_dir

CATALOG_CLASS = "crypto_assets_tests.standins.NamedDeltaCatalog"
SOURCE = Path(__file__).with_name("catalog") / "NamedDeltaCatalog.java"
# Between the catalog and the schema in a schema's folder name (NamedDeltaCatalog.SEPARATOR).
SEPARATOR = "__"
# The catalog option naming the warehouse folder (NamedDeltaCatalog.WAREHOUSE_OPTION).
WAREHOUSE_OPTION = "warehouse"
# Confs whose values are lists: `merge_conf` joins them instead of replacing them.
_LIST_CONFS = {"spark.jars": ",", "spark.driver.extraJavaOptions": " "}
_JAVAC_TIMEOUT_S = 300


class CatalogBuildError(RuntimeError):
    """javac could not compile the stand-in catalog."""


def default_classpath() -> list[Path]:
    """PySpark's jars and the installed Delta-Spark jars: what the catalog is compiled against."""
    return sorted(pyspark_jars_dir().glob("*.jar")) + delta_jar_paths()


def build_catalog_jar(out_dir: Path, classpath: list[Path]) -> Path:
    """The catalog's jar in `out_dir`, compiled with javac unless a jar of this source is there.

    The jar's name carries a hash of the source, so an edited source is compiled again and a
    jar of the same source is reused; the jar is written whole (renamed into place) or not at all.
    """
    source = SOURCE.read_bytes()
    jar = out_dir / f"named-delta-catalog-{hashlib.sha256(source).hexdigest()[:16]}.jar"
    if jar.is_file():
        return jar
    out_dir.mkdir(parents=True, exist_ok=True)
    javac = shutil.which("javac")
    if javac is None:
        raise CatalogBuildError("no javac on PATH: the stand-in catalog needs a JDK 17+")
    with tempfile.TemporaryDirectory(dir=out_dir) as work:
        classes = Path(work) / "classes"
        command = [
            javac,
            "--release",
            "17",
            "-proc:none",
            "-nowarn",
            "-cp",
            os.pathsep.join(str(path) for path in classpath),
            "-d",
            str(classes),
            str(SOURCE),
        ]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=_JAVAC_TIMEOUT_S, check=False
        )
        if result.returncode != 0:
            raise CatalogBuildError(f"javac failed:\n{result.stderr or result.stdout}")
        partial = Path(work) / jar.name
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\r\n\r\n")
            for path in sorted(classes.rglob("*.class")):
                archive.write(path, path.relative_to(classes).as_posix())
        partial.replace(jar)
    return jar


def catalog_conf(jar: Path, catalogs: Iterable[str], warehouse_dir: Path) -> dict[str, str]:
    """The Spark conf that gives a new session the `catalogs`, kept as folders in `warehouse_dir`.

    ``spark.jars`` is a list: add it to a conf that has its own with `merge_conf`.
    """
    warehouse_dir.mkdir(parents=True, exist_ok=True)
    warehouse = str(warehouse_dir.resolve())
    conf = {"spark.jars": str(jar.resolve())}
    for catalog in catalogs:
        conf[f"spark.sql.catalog.{catalog}"] = CATALOG_CLASS
        conf[f"spark.sql.catalog.{catalog}.{WAREHOUSE_OPTION}"] = warehouse
    return conf


def merge_conf(base: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """`base` updated with `extra`; the list confs (jars, driver Java options) are joined."""
    merged = dict(base)
    for key, value in extra.items():
        joiner = _LIST_CONFS.get(key)
        merged[key] = joiner.join([merged[key], value]) if joiner and merged.get(key) else value
    return merged


def schema_dir(warehouse_dir: Path, catalog: str, schema: str) -> Path:
    """The folder that is the schema ``<catalog>.<schema>``: its tables are folders in it."""
    return warehouse_dir / f"{catalog}{SEPARATOR}{schema}.db".lower()


def table_dir(warehouse_dir: Path, catalog: str, schema: str, table: str) -> Path:
    """Where the files of the managed Delta table ``<catalog>.<schema>.<table>`` are."""
    return schema_dir(warehouse_dir, catalog, schema) / table.lower()
