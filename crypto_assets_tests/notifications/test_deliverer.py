"""Delivery exactly once, through outages, 503s, crashes and restarts, to real receivers.

Backoff runs on an injected clock (`Clock`), so a minute of retries takes no time; the
receivers are real HTTP servers on loopback.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from crypto_assets.notifications.channels import SlackChannel, WebhookChannel
from crypto_assets.notifications.deliverer import Deliverer, DeliveryStats
from crypto_assets.notifications.message import Notification
from crypto_assets.notifications.outbox import Ledger, Outbox
from crypto_assets_tests.notifications.receiver import Receiver

DETECTED = datetime(2024, 8, 8, 23, 56, 2, tzinfo=UTC)


class Clock:
    """A clock that moves only when told."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def market(*symbols: str) -> list[Notification]:
    """One PRICE_MOVE notification per symbol (window 23:55 UTC, detected at `DETECTED`)."""
    count = len(symbols)
    stamp = pa.timestamp("us", tz="UTC")
    rows = pa.table(
        {
            "alert_type": ["PRICE_MOVE"] * count,
            "symbol": list(symbols),
            "window_start": pa.array([datetime(2024, 8, 8, 23, 55)] * count, stamp),
            "window_end": pa.array([datetime(2024, 8, 8, 23, 56)] * count, stamp),
            "metric_value": [0.7] * count,
            "threshold": [0.5] * count,
            "message": [f"{s} moved" for s in symbols],
            "detected_time": pa.array([DETECTED] * count, stamp),
        }
    )
    return Notification.market_alerts(rows)


def release(outbox: Outbox, batch: str, notifications: list[Notification]) -> None:
    outbox.stage(batch, notifications)
    assert outbox.release(batch)


def test_each_notification_arrives_once_and_a_restart_sends_nothing_again(
    outbox: Outbox, receiver: Receiver
) -> None:
    release(outbox, "app_1", market("BTCUSDT", "ETHUSDT"))
    release(outbox, "app_2", market("SOLUSDT"))
    wall = Clock(DETECTED.timestamp() + 2.5)
    stats = Deliverer(outbox, [WebhookChannel(receiver.url)], clock=wall).drain()
    keys = [n.key for n in market("BTCUSDT", "ETHUSDT", "SOLUSDT")]
    assert receiver.accepted_keys() == keys  # in release order
    assert [post.body for post in receiver.accepted()] == [
        n.payload for n in market("BTCUSDT", "ETHUSDT", "SOLUSDT")
    ]
    assert (stats.delivered, stats.repeats, stats.failures, stats.waiting) == (3, 0, 0, 0)
    assert stats.lags_s == [2.5, 2.5, 2.5]
    assert outbox.ready() == []
    # A restart (a new process) on the same folder, and the same alerts released again.
    release(outbox, "app_2", market("SOLUSDT"))
    restarted = Deliverer(outbox, [WebhookChannel(receiver.url)]).drain()
    assert (restarted.delivered, restarted.waiting) == (0, 0)
    assert receiver.accepted_keys() == keys
    assert outbox.ready() == []


def test_an_outage_waits_with_growing_delays_and_then_delivers_everything_once(
    outbox: Outbox, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.stop()
    release(outbox, "app_1", market("BTCUSDT", "ETHUSDT"))
    release(outbox, "app_2", market("SOLUSDT"))
    clock = Clock()
    deliverer = Deliverer(outbox, [WebhookChannel(receiver.url)], monotonic=clock)
    name = f"webhook http://127.0.0.1:{receiver.port}/"

    failures_at = {}
    with caplog.at_level(logging.INFO, logger="crypto_assets.notifications"):
        for offset in (0, 0.9, 1, 2.9, 3, 6.9, 7, 14.9, 15):
            clock.now = 1000 + offset
            failures_at[offset] = deliverer.drain().failures
    # Tries after 0, 1, 2, 4 and 8 s: one failure each, none in between.
    assert failures_at == {0: 1, 0.9: 1, 1: 2, 2.9: 2, 3: 3, 6.9: 3, 7: 4, 14.9: 4, 15: 5}
    stats = deliverer.stats
    assert (stats.delivered, stats.waiting, stats.failing) == (0, 3, {name: "connection refused"})
    assert [r.getMessage() for r in caplog.records] == [
        f"notifications: {name} failing (connection refused); retrying in 1 s, 3 waiting"
    ]
    assert len(outbox.ready()) == 2  # nothing dropped

    receiver.start()  # back, on the same port
    clock.now = 1000 + 30.9
    assert deliverer.drain().delivered == 0  # still waiting out the 16 s delay
    assert receiver.received == []
    clock.now = 1000 + 31
    with caplog.at_level(logging.INFO, logger="crypto_assets.notifications"):
        stats = deliverer.drain()
    assert receiver.accepted_keys() == [n.key for n in market("BTCUSDT", "ETHUSDT", "SOLUSDT")]
    assert (stats.delivered, stats.repeats, stats.failures, stats.waiting) == (3, 0, 5, 0)
    assert stats.failing == {}
    assert caplog.records[-1].getMessage() == (
        f"notifications: {name} delivering again after 5 failed attempts"
    )
    assert caplog.records[-1].levelno == logging.INFO
    assert outbox.ready() == []


def test_503_answers_are_retried(outbox: Outbox, receiver: Receiver) -> None:
    release(outbox, "app_1", market("BTCUSDT", "ETHUSDT"))
    clock = Clock()
    deliverer = Deliverer(outbox, [WebhookChannel(receiver.url)], monotonic=clock)
    receiver.status = 503
    stats = deliverer.drain()
    assert (stats.delivered, stats.failures, stats.waiting) == (0, 1, 2)
    receiver.status = 200
    clock.now += 1
    stats = deliverer.drain()
    keys = [n.key for n in market("BTCUSDT", "ETHUSDT")]
    assert [post.status for post in receiver.received] == [503, 200, 200]
    assert receiver.accepted_keys() == keys
    assert (stats.delivered, stats.repeats, stats.failures, stats.waiting) == (2, 0, 1, 0)


def test_a_send_a_crash_left_unrecorded_is_repeated_once_and_counted(
    outbox: Outbox, receiver: Receiver
) -> None:
    first, second = market("BTCUSDT", "ETHUSDT")
    release(outbox, "app_1", [first, second])
    webhook = WebhookChannel(receiver.url)
    # The crashed process: recorded the attempt, sent, died before recording the send.
    Ledger(outbox.ledger_path).record_attempt(webhook.name, first.key)
    webhook.send(first)

    stats = Deliverer(outbox, [WebhookChannel(receiver.url)]).drain()
    assert receiver.accepted_keys() == [first.key, first.key, second.key]
    assert (stats.delivered, stats.repeats, stats.waiting) == (2, 1, 0)
    assert Deliverer(outbox, [webhook]).drain().delivered == 0  # and never again


def test_staged_notifications_are_sent_only_once_released(
    outbox: Outbox, receiver: Receiver
) -> None:
    outbox.stage("app_1", market("BTCUSDT"))  # its batch has not committed (yet)
    outbox.stage("app_2", market("ETHUSDT"))
    outbox.stage("app_3", market("SOLUSDT"))
    outbox.discard("app_3")  # its batch failed
    assert outbox.release("app_2")
    deliverer = Deliverer(outbox, [WebhookChannel(receiver.url)])
    assert deliverer.drain().waiting == 0  # staged ones do not count
    assert receiver.accepted_keys() == [n.key for n in market("ETHUSDT")]
    assert outbox.release("app_1")
    deliverer.drain()
    assert receiver.accepted_keys() == [n.key for n in market("ETHUSDT", "BTCUSDT")]
    assert not outbox.release("app_3")


def test_slack_failing_holds_its_notifications_while_the_webhook_goes_on(
    outbox: Outbox, receiver: Receiver, slack_receiver: Receiver
) -> None:
    release(outbox, "app_1", market("BTCUSDT", "ETHUSDT"))
    clock = Clock()
    slack = SlackChannel("xoxb-0000-test", "#alerts", base_url=slack_receiver.url)
    deliverer = Deliverer(outbox, [WebhookChannel(receiver.url), slack], monotonic=clock)
    slack_receiver.slack_error = "channel_not_found"
    stats = deliverer.drain()
    assert len(receiver.accepted()) == 2
    assert len(slack_receiver.received) == 1  # a failing channel waits: one try per drain
    assert stats.failing == {"slack #alerts": "channel_not_found"}
    assert (stats.delivered, stats.failures, stats.waiting) == (2, 1, 2)
    assert len(outbox.ready()) == 1  # not done until Slack has them too

    slack_receiver.slack_error = None
    clock.now += 1
    stats = deliverer.drain()
    assert [post.body for post in slack_receiver.accepted()] == [
        {"channel": "#alerts", "text": "[PRICE_MOVE] BTCUSDT moved"},
        {"channel": "#alerts", "text": "[PRICE_MOVE] ETHUSDT moved"},
    ]
    assert {post.path for post in slack_receiver.received} == {"/chat.postMessage"}
    assert len(receiver.accepted()) == 2  # the webhook got each once
    assert (stats.delivered, stats.failures, stats.waiting, stats.failing) == (4, 1, 0, {})
    assert outbox.ready() == []


def test_the_thread_delivers_on_wake_and_stop_leaves_the_rest_for_the_next_process(
    outbox: Outbox, receiver: Receiver
) -> None:
    deliverer = Deliverer(outbox, [WebhookChannel(receiver.url)], poll_s=30).start()
    release(outbox, "app_1", market("BTCUSDT"))
    deliverer.wake()
    receiver.wait_for(1, timeout_s=5)
    receiver.stop()
    release(outbox, "app_2", market("ETHUSDT"))
    started = time.monotonic()
    stats = deliverer.stop(timeout_s=5)
    assert time.monotonic() - started < 2
    assert (stats.delivered, stats.waiting, stats.failures) == (1, 1, 1)
    assert [entry for entry, _ in outbox.ready()] == ["000000000001_app_2"]

    receiver.start()
    assert Deliverer(outbox, [WebhookChannel(receiver.url)]).stop(timeout_s=5).delivered == 1
    assert receiver.accepted_keys() == [n.key for n in market("BTCUSDT", "ETHUSDT")]


def test_ledger_compaction_keeps_it_de_duplicating(outbox: Outbox, receiver: Receiver) -> None:
    symbols = [f"S{number}USDT" for number in range(8)]
    release(outbox, "app_1", market(*symbols))
    webhook = WebhookChannel(receiver.url)
    Deliverer(outbox, [webhook], ledger_keep=3).drain()
    assert Ledger(outbox.ledger_path, keep=3).lines <= 6
    release(outbox, "app_1", market(*symbols[-3:]))  # the newest, released again
    assert Deliverer(outbox, [webhook], ledger_keep=3).drain().delivered == 0
    assert receiver.accepted_keys() == [n.key for n in market(*symbols)]


def test_the_stats_of_two_deliverers_in_turn_add_up_and_keep_the_later_state() -> None:
    first = DeliveryStats(delivered=3, repeats=1, failures=2, waiting=4, lags_s=[0.5])
    later = DeliveryStats(
        delivered=2, failures=1, waiting=0, failing={"webhook": "x"}, lags_s=[1.5]
    )
    both = first.followed_by(later)
    assert (both.delivered, both.repeats, both.failures, both.waiting) == (5, 1, 3, 0)
    assert both.failing == {"webhook": "x"}
    assert both.lags_s == [0.5, 1.5]
    assert both.line() == (
        "notifications: 5 sent (1 repeated), 0 waiting, alert -> sent p95 1.50 s; failing: x"
    )
