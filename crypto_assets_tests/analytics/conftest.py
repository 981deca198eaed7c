"""Analytics fixtures: landing records of the real recording, one shared full run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from crypto_assets.local.sql_engine import SqlEngine
from crypto_assets_tests.analytics.landing_files import recording_trades, write_landing_files
from crypto_assets_tests.analytics.runs import run_local
from crypto_assets_tests.analytics.settings_for_tests import analytics_settings
from crypto_assets_tests.analytics.sql_engines import Engine, SparkEngine


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
    summary = run_local(spark, analytics_settings(data_dir))
    return FullRun(data_dir, summary)


@pytest.fixture(params=["spark", "duckdb"])
def engine(request: pytest.FixtureRequest) -> Engine:
    """Each engine the transforms run on: Spark (Databricks) and DuckDB (the local deployment)."""
    if request.param == "spark":
        return SparkEngine(request.getfixturevalue("spark"))
    return SqlEngine()
