"""Operational alerts through a real Dagster daemon: a failed producer run reaches a real webhook
receiver once, and a daemon killed and restarted sends nothing again.

The webserver and daemon run as `dagster dev` runs them (`DagsterServices`), with ALERT_WEBHOOK_URL
pointing at a loopback `Receiver`; the producer run fails at once on a websocket URL where
nothing listens.
"""

import json
import time

import pytest

from crypto_assets.orchestration.alert_sensors import DELIVERY_SENSOR, RUN_FAILURE_SENSOR
from crypto_assets_tests.dagster_services import (
    FINISHED,
    LOCATION,
    REPOSITORY,
    DagsterServices,
    free_port,
)
from crypto_assets_tests.notifications.receiver import Receiver

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

WEBSERVER = "http://dagster.test:3000"


class Services(DagsterServices):
    """The webserver and daemon, and the ticks of a sensor."""

    def tick_times(self, sensor: str) -> list[float]:
        """When each of the sensor's latest ticks happened (epoch seconds), newest first."""
        data = self.graphql(
            "query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) { ... on Sensor { "
            "sensorState { ticks(limit: 50) { timestamp } } } } }",
            {
                "s": {
                    "repositoryLocationName": LOCATION,
                    "repositoryName": REPOSITORY,
                    "sensorName": sensor,
                }
            },
        )
        return [tick["timestamp"] for tick in data["sensorOrError"]["sensorState"]["ticks"]]

    def wait_for_ticks(self, sensor: str, count: int, after: float, timeout: float) -> None:
        """Until `sensor` has ticked `count` times since `after` (epoch seconds)."""
        deadline = time.monotonic() + timeout
        while sum(t > after for t in self.tick_times(sensor)) < count:
            if time.monotonic() > deadline:
                pytest.fail(f"{sensor} ticked fewer than {count} times in {timeout} s")
            time.sleep(1)


def test_a_failed_run_is_notified_once_through_the_daemon_and_after_its_restart(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with Receiver() as receiver:
        services = Services(
            tmp_path_factory.mktemp("alerts"),
            env={
                "ALERT_WEBHOOK_URL": receiver.url,
                "DAGSTER_WEBSERVER_URL": WEBSERVER,
                "SLACK_TOKEN": "",  # blank is unset: the webhook alone
                "SLACK_CHANNEL": "",
            },
        )
        try:
            services.start()
            # Its first tick starts the sensor after the newest run event: a failure before it
            # would not be seen, as for any run-status sensor.
            services.wait_for_ticks(RUN_FAILURE_SENSOR, 1, after=0, timeout=60)
            closed = free_port()
            config = {"ws_url": f"ws://127.0.0.1:{closed}", "source": "replay"}
            run_id = services.launch(
                "binance_producer_job", {"ops": {"produce_trades": {"config": config}}}
            )
            assert services.wait_for(run_id, FINISHED, 60) == "FAILURE"
            (post,) = receiver.wait_for(1, timeout_s=45)
            body = dict(post.body)  # type: ignore[call-overload]
            message = body.pop("message")
            assert message.startswith(f"cannot reach ws://127.0.0.1:{closed}: connection refused")
            assert body == {
                "key": f"run_failure|{run_id}",
                "kind": "run_failure",
                "subject": f"binance_producer_job run {run_id[:8]} failed",
                "metadata": {"job": "binance_producer_job", "run_id": run_id},
                "run_url": f"http://dagster.test:3000/runs/{run_id}",
            }

            restarted = time.time()
            services.restart_daemon()
            services.wait_for_ticks(RUN_FAILURE_SENSOR, 2, after=restarted, timeout=90)
            services.wait_for_ticks(DELIVERY_SENSOR, 1, after=restarted, timeout=60)
            assert len(receiver.received) == 1
            ledger = services.home / "crypto_assets" / "notifications" / "ledger.jsonl"
            events = [json.loads(line)["event"] for line in ledger.read_text().splitlines()]
            assert events == ["attempt", "sent"]
        finally:
            services.stop()
