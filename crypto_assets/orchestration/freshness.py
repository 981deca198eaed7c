"""Freshness policies: how long each asset may go without a new materialization.

Dagster's freshness daemon (one of the daemons `dagster dev` and `dagster-daemon run` start)
judges them on its own clock, apart from the runs that materialize the assets, so an asset turns
WARN and then FAIL when its producer stops landing files or the analytics stop running, and
turns PASS again with the next materialization. The UI shows the state on each asset.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import dagster as dg

from crypto_assets.analytics.lakehouse import TABLES
from crypto_assets.orchestration.checks import LANDING_TRADES


@dataclass(frozen=True)
class FreshnessWindows:
    """Warn and fail windows (Dagster allows 1 minute at least) of landing and of the tables."""

    # The producer reports landing_trades every 30 s while files land.
    landing_warn: dt.timedelta | None = dt.timedelta(minutes=2)
    landing_fail: dt.timedelta = dt.timedelta(minutes=10)
    # landing_files_sensor starts an analytics run within a minute or two of new files.
    tables_warn: dt.timedelta | None = dt.timedelta(minutes=5)
    tables_fail: dt.timedelta = dt.timedelta(minutes=10)

    def landing_policy(self) -> dg.FreshnessPolicy:
        """The policy of landing_trades."""
        return dg.FreshnessPolicy.time_window(
            fail_window=self.landing_fail, warn_window=self.landing_warn
        )

    def tables_policy(self) -> dg.FreshnessPolicy:
        """The policy of trades_raw, trades_analytics and price_alerts."""
        return dg.FreshnessPolicy.time_window(
            fail_window=self.tables_fail, warn_window=self.tables_warn
        )


DEFAULT_FRESHNESS = FreshnessWindows()


def with_freshness(
    assets: Sequence[dg.AssetSpec | dg.AssetsDefinition], windows: FreshnessWindows
) -> list[dg.AssetSpec | dg.AssetsDefinition]:
    """`assets` with the landing policy on landing_trades and the tables' on the Delta tables."""
    policies = {
        dg.AssetKey(LANDING_TRADES): windows.landing_policy(),
        **{dg.AssetKey(table): windows.tables_policy() for table in TABLES},
    }

    def attach(spec: dg.AssetSpec) -> dg.AssetSpec:
        if spec.key not in policies:
            return spec
        return spec.replace_attributes(freshness_policy=policies[spec.key])

    return list(dg.map_asset_specs(attach, assets))
