"""Operational alerts from the sensors, on a real Dagster instance, to real loopback receivers.

Failed runs and check evaluations come from jobs executed in process on the instance; the
sensors are evaluated with Dagster's test helpers, as the daemon evaluates them, and send to
`Receiver`s (webhook, Slack stand-in) over HTTP.
"""

import json
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from crypto_assets.analytics.lakehouse import TRADES_RAW, CheckpointSize, LandingFile
from crypto_assets.definitions import defs as load_definitions
from crypto_assets.errors import CryptoAssetsError
from crypto_assets.notifications.channels import WebhookChannel
from crypto_assets.orchestration.alert_sensors import (
    CHECK_SENSOR,
    DELIVERY_SENSOR,
    RUN_FAILURE_SENSOR,
    DeliveryCursor,
    Notifier,
    build_notification_sensors,
    delivery_decision,
    failure_line,
    outbox_folder,
)
from crypto_assets.orchestration.analytics_assets import ANALYTICS_JOB
from crypto_assets.orchestration.checks import (
    ANALYTICS_CHECK_SPECS,
    CHECK_TRADE_LAG_P95,
    check_checkpoint_bounded,
    check_landing_to_table_lag,
    check_unique_trade_ids,
)
from crypto_assets.orchestration.definitions import build_definitions
from crypto_assets.settings import Settings
from crypto_assets_tests.lock_holder import lock_held_by_a_child
from crypto_assets_tests.notifications.receiver import Receiver

WEBSERVER = "http://dagster.test:3000"
SENSOR_NAMES = {RUN_FAILURE_SENSOR, CHECK_SENSOR, DELIVERY_SENSOR}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on 127.0.0.1, answering 200 until told otherwise."""
    with Receiver() as started:
        yield started


def notifying(tmp_path: Path, **fields: object) -> Settings:
    """Settings with notifications on (the fields given) and runs linked to `WEBSERVER`."""
    return Settings(
        data_dir=tmp_path / "data",
        trading_pairs=("btcusdt", "ethusdt"),
        dagster_webserver_url=WEBSERVER,
        **fields,
    )


# A failing job standing in for the producer: its run fails as the producer's op fails.


class FailConfig(dg.Config):
    bug: bool = False


@dg.op
def produce_trades(config: FailConfig) -> None:
    """Fails the way the project's ops fail on a `CryptoAssetsError`, or with a plain bug."""
    if config.bug:
        raise ValueError("could not convert string to float: 'abc'\nsecond line of detail")
    raise dg.Failure(description="landing folder /data/landing/trades is not writable: fix it")


@dg.job(name="binance_producer_job")
def failing_producer_job() -> None:
    produce_trades()


def run_failure_sensor(settings: Settings) -> dg.SensorDefinition:
    sensors = {s.name: s for s in build_notification_sensors(settings, failing_producer_job)}
    return sensors[RUN_FAILURE_SENSOR]


def fail_a_run(instance: dg.DagsterInstance, bug: bool = False) -> dg.RunFailureSensorContext:
    """Execute the failing job on `instance`; the context the daemon gives the failure sensor."""
    result = failing_producer_job.execute_in_process(
        instance=instance,
        raise_on_error=False,
        run_config={"ops": {"produce_trades": {"config": {"bug": bug}}}},
    )
    assert not result.success
    run = instance.get_run_by_id(result.run_id)
    assert run is not None
    return dg.build_run_status_sensor_context(
        sensor_name=RUN_FAILURE_SENSOR,
        dagster_event=result.get_run_failure_event(),
        dagster_instance=instance,
        dagster_run=run,
    ).for_run_failure()


def expected_failure(run_id: str, message: str) -> dict[str, object]:
    return {
        "key": f"run_failure|{run_id}",
        "kind": "run_failure",
        "subject": f"binance_producer_job run {run_id[:8]} failed",
        "message": message,
        "metadata": {"job": "binance_producer_job", "run_id": run_id},
        "run_url": f"http://dagster.test:3000/runs/{run_id}",
    }


def test_a_failed_run_is_notified_once_even_after_a_restart(
    tmp_path: Path, instance: dg.DagsterInstance, receiver: Receiver
) -> None:
    sensor = run_failure_sensor(notifying(tmp_path, alert_webhook_url=receiver.url))
    context = fail_a_run(instance)
    run_id = context.dagster_run.run_id
    sensor(context)
    (post,) = receiver.accepted()
    assert post.body == expected_failure(
        run_id, "landing folder /data/landing/trades is not writable: fix it"
    )
    assert post.headers["idempotency-key"] == f"run_failure|{run_id}"
    # The same failure seen again (a tick repeated after a daemon restart), in a new process.
    sensor(context)
    Notifier.of(instance, [WebhookChannel(receiver.url)]).deliver()
    assert len(receiver.received) == 1
    folder = Path(instance.root_directory) / "crypto_assets" / "notifications"
    assert outbox_folder(instance) == folder
    assert list((folder / "ready").iterdir()) == []


def test_a_bug_is_told_by_its_exception_line(
    tmp_path: Path, instance: dg.DagsterInstance, receiver: Receiver
) -> None:
    sensor = run_failure_sensor(notifying(tmp_path, alert_webhook_url=receiver.url))
    context = fail_a_run(instance, bug=True)
    sensor(context)
    (post,) = receiver.accepted()
    assert post.body == expected_failure(
        context.dagster_run.run_id, "ValueError: could not convert string to float: 'abc'"
    )
    # Without a failed step (the run's process died), the run's own failure message.
    assert failure_line(context.failure_event, []) == (
        "Execution of run for \"binance_producer_job\" failed. Steps failed: ['produce_trades']."
    )


def test_webhook_and_slack_each_get_the_failure(
    tmp_path: Path, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_TOKEN", "xoxb-test-token")
    with Receiver() as webhook, Receiver(slack=True) as slack:
        settings = notifying(
            tmp_path,
            alert_webhook_url=webhook.url,
            slack_channel="#pipeline-ops",
            slack_api_url=slack.url,
        )
        context = fail_a_run(instance)
        run_failure_sensor(settings)(context)
        run_id = context.dagster_run.run_id
        assert webhook.accepted_keys() == [f"run_failure|{run_id}"]
        (post,) = slack.accepted()
    assert post.body["channel"] == "#pipeline-ops"
    assert post.body["text"] == (
        f"[run_failure] binance_producer_job run {run_id[:8]} failed: landing folder "
        "/data/landing/trades is not writable: fix it "
        f"<http://dagster.test:3000/runs/{run_id}|run>"
    )


def test_receiver_down_nothing_is_lost_and_it_arrives_later_once(
    tmp_path: Path, instance: dg.DagsterInstance, receiver: Receiver
) -> None:
    settings = notifying(tmp_path, alert_webhook_url=receiver.url)
    sensors = {s.name: s for s in build_notification_sensors(settings, failing_producer_job)}
    receiver.stop()
    context = fail_a_run(instance)
    sensors[RUN_FAILURE_SENSOR](context)
    # The delivery sensor's tick: still down, so it backs off (30 s after the first failed try).
    tick = sensors[DELIVERY_SENSOR](dg.build_sensor_context(instance=instance))
    assert isinstance(tick, dg.SensorResult)
    backoff = DeliveryCursor.parse(tick.cursor)
    assert backoff.failures == 1
    assert len(Notifier.of(instance, []).outbox.ready()) == 1
    receiver.start()  # the same port
    notifier = Notifier.of(instance, [WebhookChannel(receiver.url)])
    # Up again, but the delay is not over: nothing is tried.
    waiting = delivery_decision(notifier, tick.cursor, backoff.retry_at - 1)
    assert isinstance(waiting, dg.SkipReason)
    assert receiver.received == []
    sent = delivery_decision(notifier, tick.cursor, backoff.retry_at)
    assert isinstance(sent, dg.SensorResult)
    assert DeliveryCursor.parse(sent.cursor) == DeliveryCursor(0, 0.0)
    assert receiver.accepted_keys() == [f"run_failure|{context.dagster_run.run_id}"]
    assert receiver.accepted()[0].body == expected_failure(
        context.dagster_run.run_id, "landing folder /data/landing/trades is not writable: fix it"
    )
    # Later ticks, and the failure sensor seeing the run again, send nothing more.
    sensors[DELIVERY_SENSOR](dg.build_sensor_context(instance=instance, cursor=sent.cursor))
    sensors[RUN_FAILURE_SENSOR](context)
    assert len(receiver.received) == 1


def test_backoff_doubles_while_the_receiver_stays_down(
    tmp_path: Path, instance: dg.DagsterInstance, receiver: Receiver
) -> None:
    notifier = Notifier.of(instance, [WebhookChannel(receiver.url)])
    settings = notifying(tmp_path, alert_webhook_url=receiver.url)
    receiver.stop()
    run_failure_sensor(settings)(fail_a_run(instance))
    cursor, now, delays = None, 1_000.0, []
    for _ in range(6):
        result = delivery_decision(notifier, cursor, now)
        assert isinstance(result, dg.SensorResult)
        cursor = result.cursor
        delays.append(DeliveryCursor.parse(cursor).retry_at - now)
        now = DeliveryCursor.parse(cursor).retry_at
    assert delays == [30.0, 60.0, 120.0, 240.0, 300.0, 300.0]


def test_one_deliverer_at_a_time_another_one_leaves_the_sending_to_it(
    tmp_path: Path, instance: dg.DagsterInstance, receiver: Receiver
) -> None:
    settings = notifying(tmp_path, alert_webhook_url=receiver.url)
    sensors = {s.name: s for s in build_notification_sensors(settings, failing_producer_job)}
    folder = outbox_folder(instance)
    # Another process (a second code server, a tick in another thread) is sending.
    with lock_held_by_a_child(folder.parent / "notifications.lock", folder):
        context = fail_a_run(instance)
        sensors[RUN_FAILURE_SENSOR](context)
        tick = sensors[DELIVERY_SENSOR](dg.build_sensor_context(instance=instance))
        assert isinstance(tick, dg.SkipReason)
        assert receiver.received == []
    sensors[DELIVERY_SENSOR](dg.build_sensor_context(instance=instance))
    assert receiver.accepted_keys() == [f"run_failure|{context.dagster_run.run_id}"]


# Check evaluations: a stand-in for streaming_analytics_job whose trades_raw reports the real
# checks' results (the lag p95 one written out, as the query's numbers are not needed here).


class ChecksConfig(dg.Config):
    p95_lag_s: float = 2.0
    landing_waiting_s: float = 0.0


def analytics_job() -> dg.JobDefinition:
    specs = [spec for spec in ANALYTICS_CHECK_SPECS if spec.asset_key == dg.AssetKey(TRADES_RAW)]

    @dg.asset(name=TRADES_RAW, check_specs=specs)
    def trades_raw(config: ChecksConfig) -> dg.MaterializeResult:
        p95 = config.p95_lag_s
        over = f"trade → trades_raw p95 {p95:.1f} s" if p95 > 30 else "none"
        return dg.MaterializeResult(
            check_results=[
                check_unique_trade_ids(None),
                check_landing_to_table_lag(
                    [LandingFile("trades_20240808_235500_abc123.json", 1_000.0)],
                    [LandingFile("trades_20240808_235500_abc123.json", 1_000.0)],  # waiting
                    1_000.0 + config.landing_waiting_s,
                    300.0,
                ),
                dg.AssetCheckResult(
                    check_name=CHECK_TRADE_LAG_P95,
                    asset_key=TRADES_RAW,
                    passed=p95 <= 30,
                    severity=dg.AssetCheckSeverity.WARN,
                    metadata={
                        "batches_judged": 12,
                        "lag_trade_to_raw_p95_s": p95,
                        "max_p95_lag": "30 s",
                        "over_bound": over,
                    },
                ),
                check_checkpoint_bounded(CheckpointSize(4096, 40, 20), 2_000, 256 * 1024**2),
            ]
        )

    job = dg.define_asset_job(ANALYTICS_JOB, selection=[TRADES_RAW])
    return dg.Definitions(assets=[trades_raw], jobs=[job]).resolve_job_def(ANALYTICS_JOB)


class Checks:
    """Analytics runs on the instance and ticks of the check sensor, its cursor kept between."""

    def __init__(self, instance: dg.DagsterInstance, settings: Settings) -> None:
        self.instance = instance
        self.job = analytics_job()
        sensors = {s.name: s for s in build_notification_sensors(settings, failing_producer_job)}
        self.sensor = sensors[CHECK_SENSOR]
        self.cursor: str | None = None
        self.tick()  # the first tick starts after the newest run: history is not replayed

    def run(self, **config: float) -> str:
        result = self.job.execute_in_process(
            instance=self.instance, run_config={"ops": {TRADES_RAW: {"config": config}}}
        )
        return result.run_id

    def tick(self) -> dg.SensorResult:
        result = self.sensor(dg.build_sensor_context(instance=self.instance, cursor=self.cursor))
        assert isinstance(result, dg.SensorResult)
        self.cursor = result.cursor
        return result


def test_a_lag_check_is_told_when_it_fails_not_while_it_keeps_failing_then_when_it_recovers(
    tmp_path: Path, instance: dg.DagsterInstance, receiver: Receiver
) -> None:
    checks = Checks(instance, notifying(tmp_path, alert_webhook_url=receiver.url))
    checks.run(p95_lag_s=2.0)
    checks.tick()
    assert receiver.received == []  # first evaluations passing: nothing to tell
    failing = checks.run(p95_lag_s=41.5)
    checks.tick()
    (post,) = receiver.accepted()
    assert post.body == {
        "key": f"check|check_trade_lag_p95|{failing}",
        "kind": "check_failure",
        "subject": "check_trade_lag_p95 on trades_raw failed",
        "message": (
            "batches_judged=12, lag_trade_to_raw_p95_s=41.5, max_p95_lag=30 s, "
            "over_bound=trade → trades_raw p95 41.5 s"
        ),
        "metadata": {
            "check": "check_trade_lag_p95",
            "asset": "trades_raw",
            "run_id": failing,
            "severity": "WARN",
            "batches_judged": "12",
            "lag_trade_to_raw_p95_s": "41.5",
            "max_p95_lag": "30 s",
            "over_bound": "trade → trades_raw p95 41.5 s",
        },
        "run_url": f"http://dagster.test:3000/runs/{failing}",
    }
    # Still failing, two more runs (one tick for both): nothing new.
    checks.run(p95_lag_s=55.0)
    checks.run(p95_lag_s=48.0)
    checks.tick()
    assert len(receiver.received) == 1
    recovered = checks.run(p95_lag_s=3.0)
    checks.tick()
    assert len(receiver.received) == 2
    body = receiver.accepted()[1].body
    assert body["key"] == f"check|check_trade_lag_p95|{recovered}"
    assert body["kind"] == "check_recovered"
    assert body["subject"] == "check_trade_lag_p95 on trades_raw passes again"
    assert body["message"] == (
        f"failing since run {failing[:8]}; batches_judged=12, lag_trade_to_raw_p95_s=3.0, "
        "max_p95_lag=30 s, over_bound=none"
    )
    assert body["run_url"] == f"http://dagster.test:3000/runs/{recovered}"
    # Passing again: quiet.
    checks.run(p95_lag_s=2.5)
    checks.tick()
    assert len(receiver.received) == 2


def test_a_first_evaluation_that_fails_is_told_and_a_repeated_tick_tells_nothing_twice(
    tmp_path: Path, instance: dg.DagsterInstance, receiver: Receiver
) -> None:
    checks = Checks(instance, notifying(tmp_path, alert_webhook_url=receiver.url))
    before = checks.cursor
    run_id = checks.run(landing_waiting_s=600.0)
    checks.tick()
    (post,) = receiver.accepted()
    assert post.body["key"] == f"check|check_landing_to_table_lag|{run_id}"
    assert post.body["subject"] == "check_landing_to_table_lag on trades_raw failed"
    assert post.body["metadata"] == {
        "check": "check_landing_to_table_lag",
        "asset": "trades_raw",
        "run_id": run_id,
        "severity": "WARN",
        "landing_files": "1",
        "files_waiting": "1",
        "oldest_waiting_seconds": "600.0",
        "max_lag": "300 s",
    }
    # The daemon died before storing that tick's cursor: the tick is evaluated again.
    checks.cursor = before
    checks.tick()
    assert len(receiver.received) == 1
    states = json.loads(checks.cursor or "")["checks"]
    assert states == {
        "check_landing_to_table_lag": [False, run_id],
        "check_trade_lag_p95": [True, run_id],  # first evaluations passing: known, not told
        "check_checkpoint_bounded": [True, run_id],
    }


def test_no_sensor_without_notifications_and_three_with_them(tmp_path: Path) -> None:
    quiet = build_definitions(Settings(data_dir=tmp_path / "data"))
    names = {sensor.name for sensor in quiet.sensors or []}
    assert names.isdisjoint(SENSOR_NAMES)
    loud = build_definitions(notifying(tmp_path, alert_webhook_url="https://hooks.example.com/a"))
    registered = {sensor.name: sensor for sensor in loud.sensors or []}
    assert set(registered) >= SENSOR_NAMES
    for name in SENSOR_NAMES:
        assert registered[name].default_status == dg.DefaultSensorStatus.RUNNING
    monitored = registered[RUN_FAILURE_SENSOR]
    assert isinstance(monitored, dg.RunStatusSensorDefinition)
    dg.Definitions.validate_loadable(loud)


def test_slack_token_without_channel_fails_the_load_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRYPTO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("CRYPTO_DEPLOYMENT", raising=False)
    monkeypatch.delenv("SLACK_CHANNEL", raising=False)
    monkeypatch.delenv("ALERT_WEBHOOK_URL", raising=False)
    monkeypatch.setenv("SLACK_TOKEN", "xoxb-test-token")
    with pytest.raises(CryptoAssetsError) as raised:
        load_definitions()
    assert str(raised.value) == "SLACK_TOKEN is set but SLACK_CHANNEL is not: set both, or neither"
