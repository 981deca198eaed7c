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
    env = {**os.environ, "DAGSTER_HOME": str(home), "NO_COLOR": "1"}
    # Both at once: each loads the definitions in its own interpreter.
    check, listing = (
        subprocess.Popen(
            [DG, *args],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in (("check", "defs"), ("list", "defs", "--json"))
    )
    checked, check_errors = check.communicate(timeout=120)
    listed, list_errors = listing.communicate(timeout=120)

    assert check.returncode == 0, check_errors
    assert "All definitions loaded successfully." in checked + check_errors
    assert listing.returncode == 0, list_errors
    defs = json.loads(listed)
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
