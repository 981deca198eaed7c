"""The Dagster entry point (`dagster dev`, workspace.yaml): assembles the definitions only.

The environment is read when Dagster loads the definitions, not when this module is imported.
"""

from __future__ import annotations

import dagster as dg

from crypto_assets.orchestration.definitions import build_definitions
from crypto_assets.settings import Settings


@dg.definitions
def defs() -> dg.Definitions:
    """Definitions for the deployment named by CRYPTO_DEPLOYMENT (default: local)."""
    return build_definitions(Settings.from_env())
