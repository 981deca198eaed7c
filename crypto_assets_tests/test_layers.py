"""The package's import arrows point down (DESIGN "Layout and layering"), read with `ast`.

Every ``crypto_assets`` import of every module counts, those inside functions and under
``TYPE_CHECKING`` too: a lazy import is still an arrow. A folder (``producer/``) or a top-level
module (``settings.py``) is one unit; the layers, top first:

    entry points   cli/, definitions.py
    Dagster        orchestration/
    deployments    local/, databricks/
    the work       producer/, analytics/, replay/, notifications/
    foundations    binance/, settings, errors, trade validation, ...

A unit imports only units of its own layer or below, never the other deployment, and neither the
units nor the modules import each other in a circle.
"""

from __future__ import annotations

import ast
import graphlib
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import crypto_assets

PACKAGE = Path(crypto_assets.__file__).parent
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"cli", "definitions"}),
    frozenset({"orchestration"}),
    frozenset({"local", "databricks"}),
    frozenset({"producer", "analytics", "replay", "notifications"}),
    frozenset(
        {
            "binance",
            "backoff",
            "durable_files",
            "errors",
            "folder_lock",
            "landing_files",
            "landing_record",
            "recording",
            "settings",
            "trade_validation",
        }
    ),
)
DEPLOYMENTS = frozenset({"local", "databricks"})
WORK = frozenset({"producer", "analytics", "binance"})


def unit_of(module: str) -> str:
    """The unit of a dotted module name: its folder under the package, or the top module."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def package_imports(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Each module's dotted name and the ``crypto_assets`` modules it imports, anywhere in it."""
    imports: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root.parent).with_suffix("")
        name = ".".join(p for p in relative.parts if p != "__init__")
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets.add(node.module)
                # `from crypto_assets.x import y` may import the module x.y
                targets.update(f"{node.module}.{alias.name}" for alias in node.names)
        imports[name] = {t for t in targets if t.split(".")[0] == "crypto_assets"}
    return imports


def unit_arrows(imports: Mapping[str, Iterable[str]]) -> dict[tuple[str, str], list[str]]:
    """Arrows between units, each with the imports (``a -> b``) that draw it."""
    arrows: dict[tuple[str, str], list[str]] = {}
    for module, targets in imports.items():
        for target in targets:
            source, dest = unit_of(module), unit_of(target)
            if source and dest and source != dest and dest in _UNITS:
                arrows.setdefault((source, dest), []).append(f"{module} -> {target}")
    return arrows


_UNITS = frozenset().union(*LAYERS)


def layer(unit: str) -> int:
    """0 for the entry points, growing downwards."""
    return next(index for index, units in enumerate(LAYERS) if unit in units)


def wrong_arrows(arrows: Mapping[tuple[str, str], list[str]]) -> list[str]:
    """The arrows that point up, or from one deployment to the other, or from the work to one."""
    wrong = []
    for (source, dest), why in sorted(arrows.items()):
        if layer(dest) < layer(source):
            wrong.append(f"{source} -> {dest} points up: {why[0]}")
        elif source in DEPLOYMENTS and dest in DEPLOYMENTS:
            wrong.append(f"{source} -> {dest} joins two deployments: {why[0]}")
        elif source in WORK and dest in DEPLOYMENTS:
            wrong.append(f"{source} -> {dest} reaches a deployment: {why[0]}")
    return wrong


def circles(arrows: Iterable[tuple[str, str]]) -> list[list[str]]:
    """Every circle of units (each once, from its smallest unit), by depth-first search."""
    graph: dict[str, set[str]] = {}
    for source, dest in arrows:
        graph.setdefault(source, set()).add(dest)
    found: set[tuple[str, ...]] = set()

    def walk(path: list[str]) -> None:
        for nxt in sorted(graph.get(path[-1], ())):
            if nxt == path[0]:
                found.add(tuple(path))
            elif nxt not in path and nxt > path[0]:
                walk([*path, nxt])

    for start in sorted(graph):
        walk([start])
    return [list(circle) for circle in sorted(found)]


def module_circle(imports: Mapping[str, Iterable[str]]) -> list[str]:
    """One circle of modules importing each other (a module repeated at its end), or []."""
    graph = {module: {t for t in targets if t in imports} for module, targets in imports.items()}
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as error:
        return list(error.args[1])
    return []


def test_every_unit_has_a_layer() -> None:
    top_level = {path.stem for path in PACKAGE.glob("*.py") if path.stem != "__init__"}
    folders = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    assert (top_level | folders) - _UNITS == set()


def test_arrows_point_down_and_no_work_reaches_a_deployment() -> None:
    assert wrong_arrows(unit_arrows(package_imports())) == []


def test_no_circle_between_folders() -> None:
    assert circles(unit_arrows(package_imports())) == []


def test_no_circle_between_modules() -> None:
    assert module_circle(package_imports()) == []


def test_the_checks_catch_an_arrow_up_a_deployment_arrow_and_a_circle() -> None:
    imports = {
        "crypto_assets.analytics.pipeline": {"crypto_assets.databricks.layout"},
        "crypto_assets.databricks.layout": {"crypto_assets.local.layout"},
        "crypto_assets.producer.source": {"crypto_assets.replay.continuation"},
        "crypto_assets.replay.continuation": {"crypto_assets.producer.producer_state"},
    }
    arrows = unit_arrows(imports)
    assert wrong_arrows(arrows) == [
        "analytics -> databricks points up: "
        "crypto_assets.analytics.pipeline -> crypto_assets.databricks.layout",
        "databricks -> local joins two deployments: "
        "crypto_assets.databricks.layout -> crypto_assets.local.layout",
    ]
    assert circles(arrows) == [["producer", "replay"]]
    within_a_unit = {
        "crypto_assets.analytics.spark_session": {"crypto_assets.analytics.delta_jars"},
        "crypto_assets.analytics.delta_jars": {"crypto_assets.analytics.spark_session"},
    }
    assert sorted(module_circle(within_a_unit)[1:]) == sorted(within_a_unit)


def test_one_module_reads_which_deployment_the_settings_name() -> None:
    readers = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "deployment":
                readers.add(str(path.relative_to(PACKAGE)))
    assert readers == {"orchestration/deployments.py"}


def test_the_local_definitions_load_neither_databricks_nor_spark() -> None:
    # A fresh interpreter: what building the local definitions imports, and nothing before it.
    code = (
        "import sys\n"
        "from crypto_assets.orchestration.definitions import build_definitions\n"
        "from crypto_assets.settings import Settings\n"
        "build_definitions(Settings())\n"
        "loaded = ('databricks.sdk', 'dagster_databricks', 'pyspark')\n"
        "print(sorted(m for m in loaded if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"
