"""Freshness policies, judged by a real Dagster daemon apart from the runs that materialize.

The daemon loads `freshness_location` (the project's definitions with one-minute windows) and
shares a DAGSTER_HOME on disk with this test, which runs the producer job in process.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import pytest

from crypto_assets.orchestration.definitions import build_definitions
from crypto_assets.orchestration.ingestion import PRODUCER_JOB, PRODUCER_OP
from crypto_assets.settings import Settings

REPO = Path(__file__).resolve().parents[2]
LANDING = dg.AssetKey("landing_trades")
TABLES = ("trades_raw", "trades_analytics", "price_alerts")
FAIL_WINDOW_SECONDS = 60.0  # freshness_location.ONE_MINUTE
DAEMON_INTERVAL_SECONDS = 2
# How late the daemon may notice a change: its interval, plus a loaded machine's delays.
NOTICE_SECONDS = 30.0
STARTUP_SECONDS = 120.0


def test_default_policies_on_the_four_assets(settings: Settings) -> None:
    graph = build_definitions(settings).resolve_asset_graph()
    landing = graph.get(LANDING).freshness_policy
    assert landing == dg.FreshnessPolicy.time_window(
        fail_window=dt.timedelta(minutes=10), warn_window=dt.timedelta(minutes=2)
    )
    for table in TABLES:
        assert graph.get(dg.AssetKey(table)).freshness_policy == dg.FreshnessPolicy.time_window(
            fail_window=dt.timedelta(minutes=10), warn_window=dt.timedelta(minutes=5)
        )


@pytest.fixture
def freshness_daemon(instance: dg.DagsterInstance, settings: Settings, tmp_path: Path) -> Iterator:
    """`dagster-daemon run` on the test's DAGSTER_HOME, judging freshness every 2 s."""
    home = Path(instance.root_directory)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        "load_from:\n"
        "  - python_module:\n"
        "      module_name: crypto_assets_tests.orchestration.freshness_location\n"
        f"      working_directory: {REPO}\n"
        "      location_name: freshness_test\n"
    )
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "CRYPTO_DATA_DIR": str(settings.data_dir),
        "TRADING_PAIRS": ",".join(settings.trading_pairs),
        "FRESHNESS_DAEMON_INTERVAL_SECONDS": str(DAEMON_INTERVAL_SECONDS),
    }
    log = (tmp_path / "daemon.log").open("w")
    daemon = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(workspace)],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield daemon
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait(timeout=30)
        log.close()


def _state(instance: dg.DagsterInstance) -> tuple[str, float] | None:
    """landing_trades' freshness state as the daemon last recorded it, and since when."""
    record = instance.get_freshness_state_records([LANDING]).get(LANDING)
    if record is None:
        return None
    return record.freshness_state.value, record.updated_at.timestamp()


def _wait_for(instance: dg.DagsterInstance, state: str, deadline: float) -> float:
    """When the daemon recorded `state` for landing_trades; fails the test after `deadline`."""
    while time.time() < deadline:
        current = _state(instance)
        if current is not None and current[0] == state:
            return current[1]
        time.sleep(0.5)
    pytest.fail(f"landing_trades never became {state}; last state {_state(instance)}")


def _last_materialized(instance: dg.DagsterInstance) -> float:
    event = instance.get_latest_materialization_event(LANDING)
    assert event is not None
    return event.timestamp


@pytest.mark.e2e
@pytest.mark.slow  # a minute and a half: a producer run, a stop and a second run under a daemon
def test_landing_goes_stale_when_the_producer_stops_and_recovers_when_it_lands_again(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    freshness_daemon: subprocess.Popen,
    replay_server_factory: Callable[..., object],
) -> None:
    def produce(pair: str) -> None:
        # A fresh replay each time; a different pair each time, so that the second run has
        # trades its predecessor never landed (the producer state skips ids landed before).
        server = replay_server_factory(speed=None)
        config = {
            "ws_url": server.url,  # type: ignore[attr-defined]
            "source": "replay",
            "pairs": [pair],
            "duration_seconds": 3.0,
            "batch_interval_seconds": 0.5,
            "report_interval_seconds": 1.0,
        }
        result = defs.resolve_job_def(PRODUCER_JOB).execute_in_process(
            run_config={"ops": {PRODUCER_OP: {"config": config}}}, instance=instance
        )
        assert result.success

    produce("btcusdt")
    landed = _last_materialized(instance)
    _wait_for(instance, "PASS", time.time() + STARTUP_SECONDS)

    # The producer has stopped: nothing lands, the state turns FAIL once the window is over.
    stale = _wait_for(instance, "FAIL", landed + FAIL_WINDOW_SECONDS + NOTICE_SECONDS)
    assert stale >= landed + FAIL_WINDOW_SECONDS - 1.0  # not before the window ended
    assert _last_materialized(instance) == landed  # nothing new was reported meanwhile
    assert freshness_daemon.poll() is None

    produce("ethusdt")
    relanded = _last_materialized(instance)
    assert relanded > stale
    assert _wait_for(instance, "PASS", time.time() + NOTICE_SECONDS) > stale
