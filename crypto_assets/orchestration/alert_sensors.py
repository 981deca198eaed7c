"""Operational alerts: a failed producer or analytics run, and a lag or checkpoint check that
starts failing (or passes again), told to people through the notifications' outbox.

Registered only when notifications are configured (`channels_for` gives a channel), all on by
default:
- `run_failure_notification_sensor` (Dagster's run-failure sensor): one notification per failed
  run of `binance_producer_job` or `streaming_analytics_job`, with the failed step's own line.
- `check_notification_sensor`: reads the check evaluations of every analytics run that succeeded
  (the runs that report checks) and notifies when `check_landing_to_table_lag`,
  `check_trade_lag_p95` or `check_checkpoint_bounded` turns failing, and when it passes again;
  the last state told per check is kept in the sensor's cursor.
- `notification_delivery_sensor`: sends what is still waiting in the outbox (a channel was down),
  trying again after a delay that doubles per failed try, from 30 s up to 5 min.

A notification is staged and released in the `Outbox` under the Dagster instance's folder
(`outbox_folder`), then sent at once by a `Deliverer` in the same tick. A channel that fails
leaves it in the outbox, so nothing is lost; the outbox's ledger sends each key once per channel,
across ticks and daemon restarts. One deliverer at a time per folder: a tick that finds another
one delivering leaves the sending to it (or to the delivery sensor's next tick).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from crypto_assets.backoff import RestartBackoff
from crypto_assets.folder_lock import FolderInUseError, FolderLock
from crypto_assets.notifications.channels import Channel, channels_for
from crypto_assets.notifications.deliverer import Deliverer, DeliveryStats
from crypto_assets.notifications.message import Notification
from crypto_assets.notifications.outbox import Outbox
from crypto_assets.orchestration.analytics_assets import (
    ANALYTICS_JOB,
    run_url,
    streaming_analytics_job,
)
from crypto_assets.orchestration.checks import (
    CHECK_CHECKPOINT_BOUNDED,
    CHECK_LANDING_TO_TABLE_LAG,
    CHECK_TRADE_LAG_P95,
)
from crypto_assets.settings import Settings

RUN_FAILURE_SENSOR = "run_failure_notification_sensor"
CHECK_SENSOR = "check_notification_sensor"
DELIVERY_SENSOR = "notification_delivery_sensor"
# The checks whose failing says the pipeline is behind or growing without bound; the data checks
# (duplicates, VWAP range, nulls) flag bugs, which the run's page shows.
WATCHED_CHECKS = (CHECK_LANDING_TO_TABLE_LAG, CHECK_TRADE_LAG_P95, CHECK_CHECKPOINT_BOUNDED)
# A failure is told within this many seconds (plus the sending), as the supervising sensors look.
EVENT_INTERVAL_SECONDS = 15
DELIVERY_INTERVAL_SECONDS = 30
DELIVERY_BACKOFF = RestartBackoff(base_seconds=30.0, max_seconds=300.0)
# Finished analytics runs read per tick of the check sensor; more wait for the next tick.
RUNS_PER_TICK = 50
MESSAGE_CHARS = 300


def outbox_folder(instance: dg.DagsterInstance) -> Path:
    """``<instance root>/crypto_assets/notifications``: the outbox of the operational alerts.

    The root is DAGSTER_HOME for the daemon's instance, so the outbox and its ledger outlive a
    daemon restart. An ephemeral instance's root is a temporary folder that goes with it: fine for
    a test, never used by a daemon (which needs DAGSTER_HOME).
    """
    return Path(instance.root_directory) / "crypto_assets" / "notifications"


@dataclass(frozen=True)
class Notifier:
    """Stages, releases and sends operational notifications through the outbox in `folder`."""

    folder: Path
    channels: tuple[Channel, ...]

    @classmethod
    def of(cls, instance: dg.DagsterInstance, channels: Sequence[Channel]) -> Notifier:
        """The notifier of `instance`'s outbox (`outbox_folder`)."""
        return cls(outbox_folder(instance), tuple(channels))

    @property
    def outbox(self) -> Outbox:
        """The outbox (its folders are made when missing)."""
        return Outbox(self.folder)

    def release(self, batch: str, notifications: Sequence[Notification]) -> None:
        """Stage and release `notifications` as the outbox entry `batch`: they will be sent."""
        outbox = self.outbox
        outbox.stage(batch, notifications)
        outbox.release(batch)

    def send(self, batch: str, notifications: Sequence[Notification]) -> DeliveryStats | None:
        """`release` `notifications`, then `deliver` what is ready."""
        self.release(batch, notifications)
        return self.deliver()

    def deliver(self) -> DeliveryStats | None:
        """Send what is ready, once; None when another process or thread delivers right now."""
        lock = FolderLock(
            self.folder.with_name(f"{self.folder.name}.lock"),
            self.folder,
            kind="notification outbox",
            owner="another deliverer",
            advice="it sends what is ready",
        )
        try:
            lock.acquire()
        except FolderInUseError:
            return None
        try:
            # A new deliverer per tick: its own backoff only words its log line; the delivery
            # sensor's cursor holds the delay between tries.
            return Deliverer(self.outbox, self.channels, DELIVERY_BACKOFF).drain()
        finally:
            lock.release()


# Run failures


def failure_line(failure_event: dg.DagsterEvent, step_failures: Sequence[dg.DagsterEvent]) -> str:
    """The most telling line about a failed run: its first failed step's own message.

    A `dg.Failure` (how the ops report a `CryptoAssetsError`) gives its description; another
    exception its first line, ``ValueError: …``, from under Dagster's wrapper. A run that failed
    without a failed step (its process died, a launch failed) gives the run's failure message.
    """
    for event in step_failures:
        data = event.step_failure_data
        if data.user_failure_data is not None and data.user_failure_data.description:
            return _one_line(data.user_failure_data.description)
        error = data.error
        if error is not None:
            # User code's exception is the cause of the Dagster...Error that reports it.
            if error.cause is not None and error.cls_name.startswith("Dagster"):
                error = error.cause
            return _one_line(error.message)
    return _one_line(failure_event.message or "") or "the run failed"


def run_failure_notification(run: dg.DagsterRun, message: str, settings: Settings) -> Notification:
    """The notification of a failed run, keyed by its run id (one per run, however often)."""
    run_id = run.run_id
    return Notification.operational(
        kind="run_failure",
        subject=f"{run.job_name} run {run_id[:8]} failed",
        message=message,
        metadata={"job": run.job_name, "run_id": run_id},
        key=f"run_failure|{run_id}",
        run_url=run_url(settings, run_id),
    )


# Check transitions


@dataclass(frozen=True)
class CheckState:
    """What people were last told about a check: passing or failing, since run `run_id`."""

    passed: bool
    run_id: str


@dataclass(frozen=True)
class CheckCursor:
    """The check sensor's cursor: the last run-success event read, and each check's state."""

    after_storage_id: int
    states: dict[str, CheckState]

    def to_json(self) -> str:
        """The cursor as Dagster stores it."""
        states = {name: [s.passed, s.run_id] for name, s in sorted(self.states.items())}
        return json.dumps({"after": self.after_storage_id, "checks": states})

    @classmethod
    def parse(cls, cursor: str | None) -> CheckCursor | None:
        """The cursor of `to_json`, or None for none (or one this version cannot read)."""
        try:
            data = json.loads(cursor or "")
            states = {
                str(name): CheckState(bool(passed), str(run_id))
                for name, (passed, run_id) in data["checks"].items()
            }
            return cls(int(data["after"]), states)
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


def watched_evaluations(
    instance: dg.DagsterInstance, run_id: str
) -> dict[str, dg.AssetCheckEvaluation]:
    """The evaluations of the `WATCHED_CHECKS` in run `run_id`, by check name (the last of each).

    Dagster 1.13 marks no method public that reads a run's check evaluations; `all_logs` is a
    plain method of the public `DagsterInstance` (no `dagster._core` import, no deprecation).
    """
    evaluations: dict[str, dg.AssetCheckEvaluation] = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        if entry.dagster_event is None:
            continue
        evaluation = entry.dagster_event.asset_check_evaluation_data
        if evaluation.check_name in WATCHED_CHECKS:
            evaluations[evaluation.check_name] = evaluation
    return evaluations


def check_transitions(
    states: Mapping[str, CheckState],
    evaluations: Mapping[str, dg.AssetCheckEvaluation],
    run_id: str,
    link: str | None,
) -> tuple[list[Notification], dict[str, CheckState]]:
    """The notifications run `run_id`'s evaluations call for, and the states after it.

    Only a change is told: passing to failing (or a first evaluation that fails) and failing to
    passing; a check that keeps failing run after run, or a first evaluation that passes, is not.
    """
    notifications = []
    after = dict(states)
    for name, evaluation in sorted(evaluations.items()):
        before = states.get(name)
        if before is not None and before.passed == evaluation.passed:
            continue
        after[name] = CheckState(evaluation.passed, run_id)
        if before is None and evaluation.passed:
            continue
        notifications.append(check_notification(evaluation, run_id, link, before))
    return notifications, after


def check_notification(
    evaluation: dg.AssetCheckEvaluation, run_id: str, link: str | None, before: CheckState | None
) -> Notification:
    """``check_failure`` (or ``check_recovered``) of `evaluation` in run `run_id`, with its
    metadata as text; keyed ``check|<check name>|<run id>``."""
    name = evaluation.check_name
    asset = evaluation.asset_key.to_user_string()
    values = {key: _text(value) for key, value in evaluation.metadata.items()}
    details = ", ".join(f"{key}={value}" for key, value in values.items())
    if evaluation.description:
        details = f"{evaluation.description}; {details}" if details else evaluation.description
    if evaluation.passed:
        kind, subject = "check_recovered", f"{name} on {asset} passes again"
        since = f"failing since run {before.run_id[:8]}" if before is not None else "passing"
        message = f"{since}; {details}" if details else since
    else:
        kind, subject = "check_failure", f"{name} on {asset} failed"
        message = details or "failed"
    return Notification.operational(
        kind=kind,
        subject=subject,
        message=message,
        metadata={
            "check": name,
            "asset": asset,
            "run_id": run_id,
            "severity": evaluation.severity.value,
            **values,
        },
        key=f"check|{name}|{run_id}",
        run_url=link,
    )


def check_decision(
    instance: dg.DagsterInstance, cursor: str | None, notifier: Notifier, settings: Settings
) -> dg.SensorResult:
    """Notify the check transitions of the analytics runs that succeeded since the cursor.

    The first tick (no cursor) starts from the newest run-success event: history is not replayed.
    Each run's notifications are released before the cursor moves past it; a tick that fails or
    is cut short leaves the cursor where it was, and its repeat finds the same keys, which the
    ledger sends once.
    """
    state = CheckCursor.parse(cursor)
    if state is None:
        newest = instance.fetch_run_status_changes(dg.DagsterEventType.RUN_SUCCESS, limit=1)
        start = newest.records[0].storage_id if newest.records else 0
        return dg.SensorResult(
            skip_reason=f"starting after run-success event {start}",
            cursor=CheckCursor(start, {}).to_json(),
        )
    records = instance.fetch_run_status_changes(
        dg.RunStatusChangeRecordsFilter(
            event_type=dg.DagsterEventType.RUN_SUCCESS, after_storage_id=state.after_storage_id
        ),
        limit=RUNS_PER_TICK,
        ascending=True,
    ).records
    after, states, told, runs = state.after_storage_id, dict(state.states), [], 0
    for record in records:
        after = record.storage_id
        entry = record.event_log_entry
        if entry.job_name != ANALYTICS_JOB:
            continue
        runs += 1
        evaluations = watched_evaluations(instance, entry.run_id)
        notifications, states = check_transitions(
            states, evaluations, entry.run_id, run_url(settings, entry.run_id)
        )
        if notifications:
            notifier.release(f"checks_{entry.run_id}", notifications)
            told += [n.payload["subject"] for n in notifications]
    stats = notifier.deliver() if told else None
    summary = "; ".join(map(str, told)) or f"no check changed state in {runs} analytics run(s)"
    if stats is not None:
        summary += f"; {stats.line()}"
    return dg.SensorResult(skip_reason=summary, cursor=CheckCursor(after, states).to_json())


# Delivery with backoff


@dataclass(frozen=True)
class DeliveryCursor:
    """The delivery sensor's cursor: failed tries in a row, and when to try again (epoch s)."""

    failures: int = 0
    retry_at: float = 0.0

    def to_json(self) -> str:
        """The cursor as Dagster stores it."""
        return json.dumps({"failures": self.failures, "retry_at": self.retry_at})

    @classmethod
    def parse(cls, cursor: str | None) -> DeliveryCursor:
        """The cursor of `to_json`; no backoff for none (or one this version cannot read)."""
        try:
            data = json.loads(cursor or "")
            return cls(int(data["failures"]), float(data["retry_at"]))
        except (ValueError, KeyError, TypeError):
            return cls()


def delivery_decision(
    notifier: Notifier,
    cursor: str | None,
    now: float,
    backoff: RestartBackoff = DELIVERY_BACKOFF,
) -> dg.SensorResult | dg.SkipReason:
    """Send what waits in the outbox, unless the delay after failed tries is still running.

    A try that leaves something unsent (a channel down) doubles the delay before the next one
    (`backoff`); a try that sends everything, or an empty outbox, resets it. A new notification is
    still tried at once by the sensor that finds it.
    """
    state = DeliveryCursor.parse(cursor)
    waiting = len(notifier.outbox.ready())
    if not waiting:
        return dg.SensorResult(skip_reason="nothing waiting", cursor=DeliveryCursor().to_json())
    if now < state.retry_at:
        return dg.SkipReason(
            f"outbox entries waiting: {waiting}; next try in {state.retry_at - now:.0f} s "
            f"(failed tries in a row: {state.failures})"
        )
    stats = notifier.deliver()
    if stats is None:
        return dg.SkipReason("another sensor is delivering from the outbox right now")
    if not stats.waiting:
        return dg.SensorResult(skip_reason=stats.line(), cursor=DeliveryCursor().to_json())
    failures = state.failures + 1
    delay = backoff.delay(failures)
    return dg.SensorResult(
        skip_reason=f"{stats.line()}; next try in {delay:.0f} s",
        cursor=DeliveryCursor(failures, now + delay).to_json(),
    )


# The sensors


def build_notification_sensors(
    settings: Settings, producer_job: dg.JobDefinition
) -> list[dg.SensorDefinition]:
    """The operational-alert sensors for `producer_job` and the analytics job; none when
    notifications are off. A malformed notification setting raises `CryptoAssetsError`."""
    channels = tuple(channels_for(settings))
    if not channels:
        return []

    @dg.run_failure_sensor(
        name=RUN_FAILURE_SENSOR,
        monitored_jobs=[producer_job, streaming_analytics_job],
        minimum_interval_seconds=EVENT_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="A failed producer or analytics run → one notification (webhook, Slack).",
    )
    def run_failure_notification_sensor(context: dg.RunFailureSensorContext) -> None:
        """Stage, release and send the notification of the failed run.

        Returns None, so one tick handles every new failure. Dagster moves this sensor's
        cursor past a run even when this function raises (the tick shows the error): only a
        notification that could not be staged (a full disk) is lost that way, never one whose
        sending failed, which waits in the outbox.
        """
        message = failure_line(context.failure_event, context.get_step_failure_events())
        notification = run_failure_notification(context.dagster_run, message, settings)
        notifier = Notifier.of(context.instance, channels)
        stats = notifier.send(f"run_failure_{context.dagster_run.run_id}", [notification])
        sent = stats.line() if stats else "queued (another deliverer is sending now)"
        context.log.info("%s: %s", notification.payload["subject"], sent)

    @dg.sensor(
        name=CHECK_SENSOR,
        minimum_interval_seconds=EVENT_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "A lag or checkpoint check of an analytics run turning failing, or passing again "
            "→ one notification."
        ),
    )
    def check_notification_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        """Notify check transitions (cursor: the last event read and each check's state)."""
        notifier = Notifier.of(context.instance, channels)
        return check_decision(context.instance, context.cursor, notifier, settings)

    @dg.sensor(
        name=DELIVERY_SENSOR,
        minimum_interval_seconds=DELIVERY_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Sends the operational notifications still waiting; backs off 30 s to 5 min.",
    )
    def notification_delivery_sensor(
        context: dg.SensorEvaluationContext,
    ) -> dg.SensorResult | dg.SkipReason:
        """Send what waits (cursor: failed tries in a row and the next try's time)."""
        notifier = Notifier.of(context.instance, channels)
        return delivery_decision(notifier, context.cursor, time.time())

    return [
        run_failure_notification_sensor,
        check_notification_sensor,
        notification_delivery_sensor,
    ]


def _one_line(text: str, limit: int = MESSAGE_CHARS) -> str:
    """The first non-blank line of `text`, stripped, cut to `limit` characters."""
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _text(value: object) -> str:
    """A metadata value as text (`MetadataValue.value`: a number, a string, a path …)."""
    return str(getattr(value, "value", value))
