"""The code location the freshness test's daemon loads: the project's definitions, 1-minute windows.

Without sensors or schedules, so that the daemon only judges freshness and starts no run itself.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from crypto_assets.orchestration.definitions import build_definitions
from crypto_assets.orchestration.freshness import FreshnessWindows
from crypto_assets.settings import Settings

# The shortest windows Dagster accepts.
ONE_MINUTE = FreshnessWindows(
    landing_warn=None,
    landing_fail=dt.timedelta(minutes=1),
    tables_warn=None,
    tables_fail=dt.timedelta(minutes=1),
)


@dg.definitions
def defs() -> dg.Definitions:
    """Assets, jobs and resources of the local deployment with one-minute freshness windows."""
    full = build_definitions(Settings.from_env(), ONE_MINUTE)
    return dg.Definitions(assets=full.assets, jobs=full.jobs, resources=full.resources)
