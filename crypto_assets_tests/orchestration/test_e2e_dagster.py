"""End to end: the real Dagster webserver and daemon run the producer and the analytics.

Started as `dagster dev` starts them (loopback, a temporary DAGSTER_HOME and CRYPTO_DATA_DIR); the
runs are launched and inspected through Dagster's GraphQL API, the producer reading a replay
server this test starts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster_graphql import DagsterGraphQLClient
from deltalake import DeltaTable

from crypto_assets_tests.dagster_services import LOCATION, REPOSITORY, DagsterServices
from crypto_assets_tests.lock_holder import lock_held_by_a_child
from crypto_assets_tests.orchestration.landing_for_tests import (
    landed_files,
    landed_trades,
    landing_records,
    write_landing_file,
)

pytestmark = [
    pytest.mark.e2e,
    # dagster_graphql's client calls gql in a way gql deprecates; not this project's code.
    pytest.mark.filterwarnings("ignore::DeprecationWarning:gql.*"),
]

RUN_SECONDS = 420


class Dagster(DagsterServices):
    """The shared webserver and daemon, with the GraphQL queries this test needs."""

    def materializations(self, asset: str, limit: int) -> list[dict]:
        """The newest materializations of `asset`: run id and metadata as a plain dict."""
        data = self.graphql(
            "query($key: AssetKeyInput!, $limit: Int!) { assetOrError(assetKey: $key) { "
            "... on Asset { assetMaterializations(limit: $limit) { runId metadataEntries { "
            "label __typename ... on IntMetadataEntry { intValue } "
            "... on FloatMetadataEntry { floatValue } ... on TextMetadataEntry { text } "
            "... on MarkdownMetadataEntry { mdStr } } } } } }",
            {"key": {"path": [asset]}, "limit": limit},
        )
        out = []
        for event in data["assetOrError"]["assetMaterializations"]:
            values = {}
            for entry in event["metadataEntries"]:
                values[entry["label"]] = next(
                    (entry[k] for k in ("intValue", "floatValue", "text", "mdStr") if k in entry),
                    None,
                )
            out.append({"run_id": event["runId"], **values})
        return out

    def run_times(self, run_id: str) -> tuple[float | None, float | None]:
        """When the run started and ended (epoch seconds; None until then)."""
        data = self.graphql(
            "query($id: ID!) { runOrError(runId: $id) { ... on Run { startTime endTime } } }",
            {"id": run_id},
        )
        return data["runOrError"]["startTime"], data["runOrError"]["endTime"]

    def run_events(self, run_id: str) -> tuple[dict[str, str], list[dict]]:
        """Each step's status, and the run's events: type name, message and level."""
        data = self.graphql(
            "query($id: ID!) { runOrError(runId: $id) { ... on Run { "
            "stepStats { stepKey status } eventConnection { events { __typename "
            "... on MessageEvent { message level } } } } } }",
            {"id": run_id},
        )
        run = data["runOrError"]
        steps = {step["stepKey"]: step["status"] for step in run["stepStats"]}
        return steps, run["eventConnection"]["events"]

    def step_failures(self, run_id: str) -> list[str]:
        """The error message of each failed step of the run."""
        data = self.graphql(
            "query($id: ID!) { runOrError(runId: $id) { ... on Run { eventConnection { events { "
            "... on ExecutionStepFailureEvent { error { message } } } } } } }",
            {"id": run_id},
        )
        events = data["runOrError"]["eventConnection"]["events"]
        return [e["error"]["message"] for e in events if e.get("error")]

    def latest_checks(self, asset: str) -> dict[str, str]:
        """Status of each check of `asset` for its latest materialization."""
        data = self.graphql(
            "query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) { ... on AssetNode { "
            "assetChecksOrError { ... on AssetChecks { checks { name "
            "executionForLatestMaterialization { status } } } } } } }",
            {"key": {"path": [asset]}},
        )
        checks = data["assetNodeOrError"]["assetChecksOrError"]["checks"]
        return {
            c["name"]: (c["executionForLatestMaterialization"] or {}).get("status") for c in checks
        }


@pytest.fixture(scope="module")
def dagster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dagster]:
    """One webserver and daemon for this module's tests; they share DAGSTER_HOME and data dir."""
    # On the instance `make ui` runs on: its run queue limits are part of what is tested here.
    server = Dagster(tmp_path_factory.mktemp("e2e"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


def _submit_producer(client: DagsterGraphQLClient, config: dict) -> str:
    """Launch binance_producer_job with `config` as the produce_trades op's config; the run id."""
    return client.submit_job_execution(
        "binance_producer_job",
        repository_location_name=LOCATION,
        repository_name=REPOSITORY,
        run_config={"ops": {"produce_trades": {"config": config}}},
    )


def _wait_for_run(client: DagsterGraphQLClient, run_id: str, log_dir: Path) -> dg.DagsterRunStatus:
    deadline = time.monotonic() + RUN_SECONDS
    finished = {
        dg.DagsterRunStatus.SUCCESS,
        dg.DagsterRunStatus.FAILURE,
        dg.DagsterRunStatus.CANCELED,
    }
    while time.monotonic() < deadline:
        status = client.get_run_status(run_id)
        if status in finished:
            return status
        time.sleep(2)
    pytest.fail(f"run {run_id} did not finish within {RUN_SECONDS} s; see {log_dir}")


def test_producer_then_analytics_through_the_webserver_and_daemon(
    dagster: Dagster, replay_server_factory, recorded_trades
):
    # The test launches the analytics itself: the sensor must not start a run of its own.
    assert dagster.stop_sensor("landing_files_sensor") == "STOPPED"
    replay = replay_server_factory(speed=None)
    client = DagsterGraphQLClient("127.0.0.1", port_number=dagster.port)
    producer_config = {
        "ws_url": replay.url,
        "source": "replay",
        "duration_seconds": 8.0,
        "batch_interval_seconds": 1.0,
        "report_interval_seconds": 3.0,
    }
    producer_run = _submit_producer(client, producer_config)
    assert _wait_for_run(client, producer_run, dagster.log_dir) == dg.DagsterRunStatus.SUCCESS
    landed = landed_trades(dagster.landing_dir)
    assert landed == recorded_trades

    analytics_run = client.submit_job_execution(
        "streaming_analytics_job", repository_location_name=LOCATION, repository_name=REPOSITORY
    )
    assert _wait_for_run(client, analytics_run, dagster.log_dir) == dg.DagsterRunStatus.SUCCESS

    reports = dagster.materializations("landing_trades", limit=50)
    assert reports
    assert {r["run_id"] for r in reports} == {producer_run}
    assert sum(r["trades"] for r in reports) == sum(recorded_trades.values())
    newest = reports[0]
    for key in ("files", "trades_per_second", "quarantined", "gaps_unfilled", "reconnects"):
        assert key in newest
    assert newest["source"] == "replay"
    assert newest["trades_btcusdt"] >= 0

    total = sum(recorded_trades.values())
    (raw,) = dagster.materializations("trades_raw", limit=5)
    assert raw["run_id"] == analytics_run
    assert raw["dagster/row_count"] == raw["rows_written"] == total
    assert raw["files_processed"] == len(landed_files(dagster.landing_dir))
    assert raw["bad_rows_quarantined"] == 0
    assert raw["processing_seconds"] > 0
    (analytics,) = dagster.materializations("trades_analytics", limit=5)
    assert analytics["late_rows"] >= 0
    assert "| BTCUSDT |" in analytics["latest_windows"]
    assert analytics["vwap_btcusdt"] > 0
    assert analytics["vwap_ethusdt"] > 0
    (alerts,) = dagster.materializations("price_alerts", limit=5)
    assert "newest_alerts" in alerts

    # The recording's trades are from August 2024: their lag is years, which the lag check flags.
    assert dagster.latest_checks("trades_raw") == {
        "check_trades_raw_unique_trade_ids": "SUCCEEDED",
        "check_landing_to_table_lag": "SUCCEEDED",
        "check_checkpoint_bounded": "SUCCEEDED",
        "check_trade_lag_p95": "FAILED",
    }
    assert set(dagster.latest_checks("trades_analytics").values()) == {"SUCCEEDED"}


def test_terminating_a_producer_run_lands_its_current_batch(
    dagster: Dagster, replay_server_factory
):
    # The next lap of the market: trade ids that earlier runs on this instance landed are
    # duplicates the producer drops, and then nothing would be in the batch.
    replay = replay_server_factory(speed=None, first_lap=1)
    client = DagsterGraphQLClient("127.0.0.1", port_number=dagster.port)
    before = set(dagster.landing_dir.glob("trades_*.json"))
    config = {
        "ws_url": replay.url,
        "source": "replay",
        "continuous": True,
        # Nothing lands on its own: the batch is neither old nor full when the run is terminated.
        "batch_interval_seconds": 3600.0,
        "max_trades_per_batch": 1_000_000,
    }
    run_id = _submit_producer(client, config)
    deadline = time.monotonic() + RUN_SECONDS
    while client.get_run_status(run_id) != dg.DagsterRunStatus.STARTED:
        assert time.monotonic() < deadline, f"run {run_id} never started; see {dagster.log_dir}"
        time.sleep(1)
    # The op has to connect and receive before there is a batch to land.
    time.sleep(10)
    assert set(dagster.landing_dir.glob("trades_*.json")) == before
    client.terminate_run(run_id)  # what the UI's Terminate button calls
    # A stop, not a failure: the producer landed its batch and the run succeeded.
    assert _wait_for_run(client, run_id, dagster.log_dir) == dg.DagsterRunStatus.SUCCESS

    new_files = set(dagster.landing_dir.glob("trades_*.json")) - before
    assert new_files
    landed = sum(len(path.read_text().splitlines()) for path in new_files)
    reports = [r for r in dagster.materializations("landing_trades", 100) if r["run_id"] == run_id]
    assert reports
    assert reports[0]["run_trades"] == landed > 0

    # A clean stop: the step succeeded, said what it landed, and nothing reads as an error.
    steps, events = dagster.run_events(run_id)
    assert steps == {"produce_trades": "SUCCESS"}
    kinds = {event["__typename"] for event in events}
    assert "ExecutionStepFailureEvent" not in kinds
    assert "ExecutionStepSuccessEvent" in kinds
    messages = [event.get("message", "") for event in events]
    files = len(new_files)
    line = f"stopped on request (run terminated): landed {landed} trades in {files} files"
    assert line in messages
    assert not [e for e in events if e.get("level") == "ERROR"], "an error event after a stop"


def _assert_second_waits_for_first(
    client: DagsterGraphQLClient, dagster: Dagster, submit: Callable[[], str]
) -> None:
    """Submit two runs: the second stays QUEUED while the first runs and starts after it ended."""
    first = submit()
    deadline = time.monotonic() + RUN_SECONDS
    while client.get_run_status(first) != dg.DagsterRunStatus.STARTED:
        assert time.monotonic() < deadline, f"run {first} never started; see {dagster.log_dir}"
        time.sleep(1)
    second = submit()
    # While the first runs, the daemon's queue (several dequeue passes) holds the second back.
    checks = 0
    while True:
        second_status = client.get_run_status(second)
        if client.get_run_status(first) != dg.DagsterRunStatus.STARTED:
            break
        assert second_status == dg.DagsterRunStatus.QUEUED, second_status
        checks += 1
        time.sleep(1)
    assert checks >= 3, "the first run ended before the queue was observed"

    assert _wait_for_run(client, first, dagster.log_dir) == dg.DagsterRunStatus.SUCCESS
    assert _wait_for_run(client, second, dagster.log_dir) == dg.DagsterRunStatus.SUCCESS
    _, first_ended = dagster.run_times(first)
    second_started, _ = dagster.run_times(second)
    assert first_ended is not None
    assert second_started is not None
    assert second_started >= first_ended


def test_a_second_producer_run_waits_queued_until_the_first_has_ended(
    dagster: Dagster, replay_server_factory
):
    # Laps no earlier test replayed, so the first run has trades to land (the second: duplicates).
    replay = replay_server_factory(speed=None, first_lap=2)
    client = DagsterGraphQLClient("127.0.0.1", port_number=dagster.port)
    config = {
        "ws_url": replay.url,
        "source": "replay",
        "duration_seconds": 8.0,  # long enough to watch the second run wait several passes
        "batch_interval_seconds": 1.0,
    }

    def submit() -> str:
        return _submit_producer(client, config)

    _assert_second_waits_for_first(client, dagster, submit)


@pytest.mark.slow  # a minute: a continuous analytics run held while a second one waits
def test_a_manual_analytics_run_waits_queued_behind_the_running_one(dagster: Dagster):
    # Whether the running one came from the sensor, the schedule or a launch: one at a time.
    # The sensor is turned off so that the two runs are this test's own.
    assert dagster.stop_sensor("landing_files_sensor") == "STOPPED"
    dagster.landing_dir.mkdir(parents=True, exist_ok=True)
    client = DagsterGraphQLClient("127.0.0.1", port_number=dagster.port)

    def submit() -> str:
        return client.submit_job_execution(
            "streaming_analytics_job", repository_location_name=LOCATION, repository_name=REPOSITORY
        )

    _assert_second_waits_for_first(client, dagster, submit)


def test_a_producer_run_on_a_folder_another_process_holds_fails_in_one_line(
    dagster: Dagster, replay_server_factory
):
    # The run queue cannot see a producer started outside Dagster: the folder lock stops it.
    replay = replay_server_factory(speed=None, first_lap=3)
    client = DagsterGraphQLClient("127.0.0.1", port_number=dagster.port)
    config = {"ws_url": replay.url, "source": "replay", "duration_seconds": 5.0}
    lock = dagster.landing_dir.parent / "_state" / "producer_state.lock"
    before = set(dagster.landing_dir.glob("trades_*.json"))
    with lock_held_by_a_child(lock, dagster.landing_dir) as holder:
        run_id = _submit_producer(client, config)
        status = _wait_for_run(client, run_id, dagster.log_dir)
    assert status == dg.DagsterRunStatus.FAILURE
    expected = (
        f"landing folder {dagster.landing_dir} is in use by another producer (pid {holder.pid}, "
        f"lock {lock}): stop that producer first, or give this one another landing folder"
    )
    (failure,) = dagster.step_failures(run_id)
    assert expected in failure
    assert set(dagster.landing_dir.glob("trades_*.json")) == before


def test_terminating_a_continuous_analytics_run_is_a_clean_stop(dagster: Dagster, recording):
    assert dagster.stop_sensor("landing_files_sensor") == "STOPPED"  # this test's runs only
    client = DagsterGraphQLClient("127.0.0.1", port_number=dagster.port)
    config = {"mode": "continuous", "trigger_seconds": 2.0, "report_interval_seconds": 2.0}
    run_id = client.submit_job_execution(
        "streaming_analytics_job",
        repository_location_name=LOCATION,
        repository_name=REPOSITORY,
        run_config={"ops": {"streaming_analytics": {"config": config}}},
    )
    deadline = time.monotonic() + RUN_SECONDS
    while client.get_run_status(run_id) != dg.DagsterRunStatus.STARTED:
        assert time.monotonic() < deadline, f"run {run_id} never started; see {dagster.log_dir}"
        time.sleep(1)
    # A file landed while the query runs: trades of a market lap no earlier test landed.
    new = [{**r, "trade_id": r["trade_id"] + 10**9} for r in landing_records(recording, 50)]
    write_landing_file(
        dagster.landing_dir,
        "trades_20240809_000000_c0ffee.json",
        [json.dumps(r) for r in new],
    )
    landed = sum(landed_trades(dagster.landing_dir).values())
    raw = dagster.landing_dir.parent.parent / "delta" / "trades_raw"
    while not (raw.exists() and DeltaTable(str(raw)).to_pyarrow_table().num_rows == landed):
        assert client.get_run_status(run_id) == dg.DagsterRunStatus.STARTED, (
            f"the continuous run ended by itself; see {dagster.log_dir}"
        )
        assert time.monotonic() < deadline, f"trades_raw never caught up; see {dagster.log_dir}"
        time.sleep(1)
    client.terminate_run(run_id)  # what the UI's Terminate button calls
    assert _wait_for_run(client, run_id, dagster.log_dir) == dg.DagsterRunStatus.SUCCESS

    steps, events = dagster.run_events(run_id)
    assert steps == {"streaming_analytics": "SUCCESS"}
    kinds = {event["__typename"] for event in events}
    assert "ExecutionStepFailureEvent" not in kinds
    messages = [event.get("message", "") for event in events]
    assert any(m.startswith("stopped on request (run terminated): analytics: ") for m in messages)
    assert not [e for e in events if e.get("level") == "ERROR"], "an error event after a stop"
