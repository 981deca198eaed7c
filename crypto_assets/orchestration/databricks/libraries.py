"""What Databricks compute installs beside the package's wheel: the PyPI pins a runtime lacks.

Derived from the installed package's own requirements (extras such as `dev` excluded), so a
dependency added to pyproject.toml reaches the compute without a second list to keep, pinned to
the versions installed here. Read where a run is launched only (the step launcher's
`launch_run_config`, the Pipes submission): what runs on Databricks never reads this machine's
package metadata.
"""

from __future__ import annotations

import importlib.metadata

# What a Databricks runtime already has (pyspark, Delta, pyarrow, numpy, requests; the Spark Connect
# client on serverless), what dagster-databricks' step launcher adds itself at the local versions
# (dagster, dagster-databricks, dagster-pyspark, databricks-sdk) and what only the local UI and
# tools need (dagster-webserver, the `dg` CLI, dagster-slack: on Databricks the analytics notify
# no one, `remote_environment`; DuckDB: the local sink's engine, where Databricks runs the
# transforms in Spark). Neither pinned here nor required by the shipped wheel (`wheel.py`):
# a compute that installed them from PyPI would replace its own.
PROVIDED_OR_LOCAL_ONLY = frozenset(
    {
        "pyspark",
        "delta-spark",
        "pyarrow",
        "numpy",
        "requests",
        "dagster",
        "dagster-databricks",
        "dagster-pyspark",
        "databricks-sdk",
        "dagster-webserver",
        "dagster-dg-cli",
        "dagster-slack",
        "duckdb",
    }
)
# What a Pipes task imports on top of the package's own needs (no step launcher adds it there).
PIPES_SIDE = ("dagster", "dagster-pipes")
PACKAGE = "crypto_assets"


def requirement_name(requirement: str) -> str:
    """The normalized project name of a requirement line (``Orjson>=3; ...`` -> ``orjson``)."""
    name = requirement.split(";", maxsplit=1)[0].strip()
    for stop in "<>=!~[ (":
        name = name.split(stop)[0]
    return name.strip().lower().replace("_", "-").replace(".", "-")


def pypi_pins() -> list[str]:
    """The package's runtime dependencies a Databricks runtime lacks, at the local versions."""
    requirements = importlib.metadata.requires(PACKAGE) or []
    names = sorted(
        {requirement_name(r) for r in requirements if "extra ==" not in r} - PROVIDED_OR_LOCAL_ONLY
    )
    return [f"{name}=={importlib.metadata.version(name)}" for name in names]


def pipes_pins() -> list[str]:
    """`pypi_pins` and what a Pipes task needs besides: Dagster and its Pipes side."""
    return [*pypi_pins(), *(f"{name}=={importlib.metadata.version(name)}" for name in PIPES_SIDE)]


def cluster_libraries(wheel: str, pins: list[str]) -> list[dict[str, object]]:
    """A classic cluster's job libraries: `pins` from PyPI, then the wheel on the Volume.

    The pins come first: the wheel's own requirements are then met by them, not resolved anew.
    """
    return [*({"pypi": {"package": pin}} for pin in pins), {"whl": wheel}]


def environment_dependencies(wheel: str, pins: list[str]) -> list[str]:
    """A serverless environment's dependencies: `pins`, then the wheel's Volume path."""
    return [*pins, wheel]
