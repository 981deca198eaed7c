"""Fixtures of the Databricks deployment's tests.

They compare with the analytics tests' full local run; the SDK tests see no ambient Databricks
configuration.
"""

import os
from pathlib import Path

import pytest

from crypto_assets_tests.analytics.conftest import full_run, landing_records

__all__ = ["full_run", "landing_records", "no_ambient_databricks_config"]


@pytest.fixture
def no_ambient_databricks_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The SDK sees only what a test passes: no ambient DATABRICKS_* or ~/.databrickscfg."""
    for key in list(os.environ):
        if key.startswith(("DATABRICKS_", "ARM_", "AZURE_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "no-databrickscfg"))
