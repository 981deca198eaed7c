"""The console script imports only the module of the command it runs."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

import pytest

from crypto_assets.cli import COMMAND_MODULES, build_parser, command_modules


@pytest.mark.parametrize("module", COMMAND_MODULES)
def test_each_module_registers_the_commands_listed_for_it(module: str) -> None:
    subparsers = argparse.ArgumentParser().add_subparsers()
    importlib.import_module(module).register(subparsers)
    assert tuple(subparsers.choices) == COMMAND_MODULES[module]


def test_a_command_imports_its_module_and_help_imports_all() -> None:
    assert command_modules(["-v", "analytics", "--once"]) == ["crypto_assets.cli.analytics"]
    assert command_modules(["show", "--data-dir", "x"]) == ["crypto_assets.cli.analytics"]
    assert command_modules(["--help"]) == list(COMMAND_MODULES)
    assert command_modules(["no-such-command"]) == list(COMMAND_MODULES)
    every = {name for names in COMMAND_MODULES.values() for name in names}
    assert set(build_parser()._subparsers._group_actions[0].choices) == every


def test_the_producer_command_loads_neither_dagster_nor_spark() -> None:
    # In a fresh interpreter: what parsing `produce` imports (the tests' own process has all).
    code = (
        "import sys; from crypto_assets.cli import build_parser; "
        "build_parser(['produce', '--help-not-given']); "
        "print(sorted(m for m in ('dagster', 'pyspark', 'databricks.sdk') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
