"""Analytics fixtures: landing records of the real recording, test settings, one shared full run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from crypto_assets.analytics.pipeline import run_analytics
from crypto_assets.settings import Settings
from crypto_assets_tests.analytics.landing_files import recording_trades, write_landing_files
from crypto_assets_tests.analytics.reference import Rules

# Low enough that both alert types fire on the real ten minutes of data.
RULES = Rules(
    price_change_threshold_pct=0.05,
    volume_spike_min_trades=10,
    volume_spike_factor=1.5,
    volume_spike_lookback=10,
)
WINDOW_MS = 60_000


def analytics_settings(data_dir: Path) -> Settings:
    """Settings of the analytics tests: 1-minute windows, 30 s watermark, the low RULES."""
    return Settings(
        data_dir=data_dir,
        analytics_window="1 minute",
        watermark_delay="30 seconds",
        price_change_threshold_pct=RULES.price_change_threshold_pct,
        volume_spike_min_trades=RULES.volume_spike_min_trades,
        volume_spike_factor=RULES.volume_spike_factor,
        volume_spike_lookback=RULES.volume_spike_lookback,
    )


@pytest.fixture(scope="session")
def landing_records(recording: Path) -> list[dict]:
    """All 34,419 trades of the recording as landing records, in receive order."""
    return recording_trades(recording)


@dataclass(frozen=True)
class FullRun:
    """The whole recording processed by one --once run."""

    data_dir: Path
    summary: object


@pytest.fixture(scope="session")
def full_run(
    spark, landing_records: list[dict], tmp_path_factory: pytest.TempPathFactory
) -> FullRun:
    """The recording in 12 landing files, processed by a single run (shared, read-only)."""
    data_dir = tmp_path_factory.mktemp("full_run")
    write_landing_files(data_dir / "landing" / "trades", landing_records, 12)
    summary = run_analytics(spark, analytics_settings(data_dir))
    return FullRun(data_dir, summary)
