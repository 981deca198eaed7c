"""The UI demo's default path, through the real Dagster webserver and daemon on `make ui`'s
instance: a producer run is followed by one continuous analytics run that nobody launched, which
reports as its batches complete and ends by itself, SUCCESS, after the producer run."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import pytest

from crypto_assets_tests.dagster_services import FINISHED, DagsterServices
from crypto_assets_tests.orchestration.landing_for_tests import landed_trades

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PRODUCE_SECONDS = 60.0
# From the producer's launch: the sensor's tick (5 s), the run queue, a process and a JVM.
FOLLOW_START_SECONDS = 60.0
# From the producer's end: the run's next look (3 s), its last batch, the drain, its checks.
FOLLOW_END_SECONDS = 90.0
MAX_REPORT_GAP_SECONDS = 10.0


class Dagster(DagsterServices):
    """The webserver and daemon, with the check query this test reads."""

    def check_status(self, asset: str, check: str) -> str | None:
        """The status of `check` of `asset` for the asset's latest materialization."""
        data = self.graphql(
            "query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) { ... on AssetNode { "
            "assetChecksOrError { ... on AssetChecks { checks { name "
            "executionForLatestMaterialization { status } } } } } } }",
            {"key": {"path": [asset]}},
        )
        checks = data["assetNodeOrError"]["assetChecksOrError"]["checks"]
        found = {c["name"]: c["executionForLatestMaterialization"] for c in checks}
        return (found.get(check) or {}).get("status")


@pytest.fixture
def dagster(tmp_path) -> Iterator[Dagster]:
    """A fresh instance as `make ui` renders it: landing_files_sensor on, the others off."""
    server = Dagster(tmp_path)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def _wait(condition, timeout: float, what: str, log_dir) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {timeout:.0f} s; see {log_dir}"
        time.sleep(1)


def test_a_producer_run_is_followed_by_one_analytics_run_that_ends_by_itself(
    dagster: Dagster, replay_server_factory
):
    # At the market's pace, every trade's time moved to now: the lags are real.
    replay = replay_server_factory(speed=1.0, rebase_time=True)
    config = {
        "ws_url": replay.url,
        "source": "replay",
        "duration_seconds": PRODUCE_SECONDS,
        "batch_interval_seconds": 2.0,
    }
    run_config = {"ops": {"produce_trades": {"config": config}}}
    producer = dagster.launch("binance_producer_job", run_config)

    # Nobody launches the analytics: landing_files_sensor starts a run that follows the producer.
    _wait(
        lambda: dagster.runs("streaming_analytics_job"),
        FOLLOW_START_SECONDS,
        "no analytics run started",
        dagster.log_dir,
    )
    (follow,) = dagster.runs("streaming_analytics_job")
    tags = dagster.run_tags(follow["runId"])
    assert tags["crypto_assets/follows"] == producer
    assert tags["crypto_assets/trigger"] == "landing_files_sensor"

    assert dagster.wait_for(producer, FINISHED, PRODUCE_SECONDS + 120) == "SUCCESS"
    (producer_ended,) = [
        run["endTime"] for run in dagster.runs("binance_producer_job") if run["runId"] == producer
    ]
    # The follow run ends by itself once the producer has stopped and the folder is drained.
    assert dagster.wait_for(follow["runId"], FINISHED, FOLLOW_END_SECONDS) == "SUCCESS"
    time.sleep(12)  # two more ticks of the sensor: no run for files that are all processed
    runs = dagster.runs("streaming_analytics_job")
    assert [run["runId"] for run in runs] == [follow["runId"]]

    reports = [r for r in dagster.asset_reports("trades_raw") if r["run_id"] == follow["runId"]]
    assert reports, f"the follow run reported nothing; see {dagster.log_dir}"
    assert all(report["files_processed"] > 0 for report in reports)
    # While data flows (until the producer's end), a report at least every 10 s.
    flowing = [r["time"] for r in reports if r["time"] <= producer_ended]
    assert len(flowing) >= 3
    gaps = [later - earlier for earlier, later in itertools.pairwise(flowing)]
    assert max(gaps) <= MAX_REPORT_GAP_SECONDS, gaps
    # The run's end: every landed trade in trades_raw, and its lag within the check's bound.
    landed = sum(landed_trades(dagster.landing_dir).values())
    assert reports[-1]["dagster/row_count"] == reports[-1]["rows_written"] == landed > 0
    assert dagster.check_status("trades_raw", "check_trade_lag_p95") == "SUCCEEDED"
