"""Every alert the analytics add reaches people once: real runs, a real loopback receiver.

The runs are the local deployment's (real Spark, real Delta tables); the receivers are HTTP
servers on 127.0.0.1, one answering like a webhook, one like Slack's Web API.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import pytest

from crypto_assets.analytics.pipeline import AnalyticsError
from crypto_assets.analytics.schema import PRICE_ALERTS
from crypto_assets.errors import CryptoAssetsError
from crypto_assets.settings import Settings
from crypto_assets_tests.analytics.landing_files import chunks, write_landing_files
from crypto_assets_tests.analytics.runs import run_local
from crypto_assets_tests.analytics.settings_for_tests import analytics_settings
from crypto_assets_tests.analytics.tables import rows
from crypto_assets_tests.notifications.receiver import Receiver

pytestmark = pytest.mark.spark


class InjectedCrashError(RuntimeError):
    """Stands for a process that dies right after a batch's last commit."""


def notifying(data_dir: Path, **changes: object) -> Settings:
    """The analytics tests' settings with notifications on."""
    return analytics_settings(data_dir).replace(**changes)


def alert_key(row: dict) -> str:
    """The key a receiver de-duplicates by, written out from a price_alerts row."""
    start = row["window_start"].astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{row['symbol']}|{start}|{row['alert_type']}"


def table_alerts(data_dir: Path) -> dict[str, dict]:
    """The price_alerts rows by key."""
    return {alert_key(row): row for row in rows(data_dir, PRICE_ALERTS)}


def test_each_alert_arrives_once_through_a_receiver_outage_and_a_crash_after_the_commit(
    spark, tmp_path: Path, landing_records: list[dict]
) -> None:
    landing = tmp_path / "landing" / "trades"
    first, second, third = chunks(landing_records, 3)
    with Receiver() as receiver:
        settings = notifying(tmp_path, alert_webhook_url=receiver.url)

        # 1. Receiver up: the run's alerts arrive before the run returns.
        write_landing_files(landing, first, 4)
        summary = run_local(spark, settings)
        after_first = table_alerts(tmp_path)
        assert after_first, "the first third of the recording raises alerts under the test rules"
        assert set(receiver.accepted_keys()) == set(after_first)
        assert summary.notifications is not None
        assert summary.notifications.waiting == 0
        assert summary.notifications.lags_s, "alert -> sent is measured"
        assert "alert -> sent p95" in summary.summary_line()

        # 2. Receiver down: nothing is lost, the run says what waits.
        receiver.stop()
        write_landing_files(landing, second, 4, first_sequence=4)
        summary = run_local(spark, settings)
        waiting = set(table_alerts(tmp_path)) - set(after_first)
        assert waiting, "the second third adds alerts"
        assert summary.notifications is not None
        assert summary.notifications.waiting >= len(waiting)
        assert summary.notifications.failures >= 1
        assert "connection refused" in summary.summary_line()

        # 3. Receiver up again; the next run dies right after its batch's last commit, before
        # its alerts are released: the run after it replays the batch and sends them.
        receiver.start()
        write_landing_files(landing, third, 4, first_sequence=8)

        def crash(step: str, batch_id: int) -> None:
            if step == PRICE_ALERTS:
                raise InjectedCrashError(f"died after the alerts commit of batch {batch_id}")

        with pytest.raises(AnalyticsError, match="died after the alerts commit"):
            run_local(spark, settings, on_step=crash)
        summary = run_local(spark, settings)
        assert summary.notifications is not None
        assert summary.notifications.waiting == 0

    final = table_alerts(tmp_path)
    keys = receiver.accepted_keys()
    repeated = [key for key, count in Counter(keys).items() if count > 1]
    assert repeated == []
    # Every alert in the table went out; an alert a later window revision removed went out
    # when it was found (it is not in the table any more).
    assert set(final) <= set(keys)
    assert set(final) - set(after_first) - waiting, "the last third adds alerts after the crash"
    payloads = {item.body["key"]: item.body for item in receiver.accepted()}
    some_key = sorted(final)[0]
    row, payload = final[some_key], payloads[some_key]
    assert payload["alert_type"] == row["alert_type"]
    assert payload["symbol"] == row["symbol"]
    assert payload["metric_value"] == pytest.approx(row["metric_value"])
    assert payload["threshold"] == pytest.approx(row["threshold"])
    assert payload["message"] == row["message"]
    assert payload["window_end"] == row["window_end"].astimezone(dt.UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


def test_slack_and_the_webhook_each_get_every_alert(
    spark, tmp_path: Path, landing_records: list[dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_TOKEN", "xoxb-test-token")
    with Receiver() as webhook, Receiver(slack=True) as slack:
        settings = notifying(
            tmp_path,
            alert_webhook_url=webhook.url,
            slack_channel="#market-alerts",
            slack_api_url=slack.url,
        )
        write_landing_files(tmp_path / "landing" / "trades", landing_records[:12_000], 3)
        run_local(spark, settings, run_url="http://127.0.0.1:3000/runs/some-run")
    alerts = table_alerts(tmp_path)
    assert alerts
    assert sorted(webhook.accepted_keys()) == sorted(alerts)
    posts = slack.accepted()
    assert len(posts) == len(alerts)
    assert {post.path for post in posts} == {"/chat.postMessage"}
    assert {post.headers["authorization"] for post in posts} == {"Bearer xoxb-test-token"}
    texts = [post.body["text"] for post in posts]
    # Each alert's own message, linked to the run.
    assert sorted(any(row["message"] in text for text in texts) for row in alerts.values()) == [
        True
    ] * len(alerts)
    assert all("http://127.0.0.1:3000/runs/some-run" in text for text in texts)
    assert {item.body["run_url"] for item in webhook.accepted()} == {
        "http://127.0.0.1:3000/runs/some-run"
    }


def test_slack_half_configured_fails_in_one_line_before_spark_runs_a_batch(
    spark, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_TOKEN", "xoxb-test-token")
    (tmp_path / "landing" / "trades").mkdir(parents=True)
    with pytest.raises(CryptoAssetsError) as raised:
        run_local(spark, analytics_settings(tmp_path))
    assert str(raised.value) == "SLACK_TOKEN is set but SLACK_CHANNEL is not: set both, or neither"
    assert not (tmp_path / "checkpoints").exists()
