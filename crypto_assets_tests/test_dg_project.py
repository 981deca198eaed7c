"""`dg`, Dagster's project CLI, sees this checkout as one project ([tool.dg] in pyproject.toml)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from crypto_assets.orchestration.instance_config import instance_yaml
from crypto_assets_tests.dagster_services import REPO

pytestmark = pytest.mark.e2e

DG = str(Path(sys.executable).parent / "dg")


def test_dg_checks_and_lists_the_definitions(tmp_path: Path) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(instance_yaml())  # no telemetry, as `make ui`'s instance
    # As a user runs it: the checkout's .venv/bin/dg, no environment activated.
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env |= {"DAGSTER_HOME": str(home), "NO_COLOR": "1"}

    def dg(*args: str) -> subprocess.CompletedProcess[str]:
        # One after the other: two at once raced to create the fresh instance's tables.
        return subprocess.run(
            [DG, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False
        )

    check = dg("check", "defs")
    assert check.returncode == 0, check.stderr
    assert "All definitions loaded successfully." in check.stdout + check.stderr
    listing = dg("list", "defs", "--json")
    assert listing.returncode == 0, listing.stderr
    # No warning about the environment ([tool.dg.cli] suppress_warnings), nothing else either.
    assert "virtual environment" not in check.stderr + listing.stderr
    defs = json.loads(listing.stdout)
    assert sorted(a["asset_key"] for a in defs["assets"]) == [
        "landing_trades",
        "price_alerts",
        "trades_analytics",
        "trades_raw",
    ]
    assert sorted(j["name"] for j in defs["jobs"]) == [
        "binance_producer_job",
        "streaming_analytics_job",
    ]
    assert sorted(s["name"] for s in defs["sensors"]) == [
        "binance_producer_sensor",
        "continuous_analytics_sensor",
        "landing_files_sensor",
    ]
    assert [s["name"] for s in defs["schedules"]] == ["streaming_analytics_schedule"]
    assert sorted(c["key"] for c in defs["asset_checks"]) == [
        "trades_analytics:check_trades_analytics_key_columns_not_null",
        "trades_analytics:check_vwap_within_low_high",
        "trades_raw:check_checkpoint_bounded",
        "trades_raw:check_landing_to_table_lag",
        "trades_raw:check_trade_lag_p95",
        "trades_raw:check_trades_raw_unique_trade_ids",
    ]
