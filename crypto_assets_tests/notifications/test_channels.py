"""The webhook and Slack channels against a real loopback receiver, and the settings checks."""

from __future__ import annotations

import subprocess
import sys

import pytest

from crypto_assets.errors import CryptoAssetsError
from crypto_assets.notifications.channels import (
    DeliveryError,
    SlackChannel,
    WebhookChannel,
    channels_from,
    check_slack,
    check_webhook_url,
)
from crypto_assets.notifications.message import Notification
from crypto_assets_tests.notifications.receiver import Receiver

TOKEN = "xoxb-0000-test"


def alert(key: str = "run-1") -> Notification:
    return Notification.operational("run_failure", "job", "it failed", {"n": 1}, key=key)


def test_webhook_posts_the_payload_as_json_with_the_key(receiver: Receiver) -> None:
    WebhookChannel(receiver.url).send(alert("run-7"))
    [post] = receiver.accepted()
    assert post.path == "/"
    assert post.headers["content-type"] == "application/json"
    assert post.headers["idempotency-key"] == "run-7"
    assert post.body == alert("run-7").payload


def test_webhook_failures_are_one_line_delivery_errors(receiver: Receiver) -> None:
    channel = WebhookChannel(receiver.url)
    assert channel.name == f"webhook http://127.0.0.1:{receiver.port}/"
    receiver.status = 503
    with pytest.raises(DeliveryError) as answered:
        channel.send(alert())
    assert str(answered.value) == f"webhook http://127.0.0.1:{receiver.port}/: HTTP 503"
    assert not answered.value.maybe_delivered
    receiver.stop()
    with pytest.raises(DeliveryError) as refused:
        channel.send(alert())
    assert str(refused.value) == f"webhook http://127.0.0.1:{receiver.port}/: connection refused"
    assert (refused.value.reason, refused.value.maybe_delivered) == ("connection refused", False)


def test_a_webhook_name_shows_no_credentials_or_query() -> None:
    channel = WebhookChannel("https://user:secret@example.com/hook?token=abc123")
    assert channel.name.startswith("webhook https://example.com/hook?")
    assert "secret" not in channel.name
    assert "abc123" not in channel.name


def test_slack_posts_the_text_to_the_channel(slack_receiver: Receiver) -> None:
    n = alert()
    SlackChannel(TOKEN, "#alerts", base_url=slack_receiver.url).send(n)
    [post] = slack_receiver.accepted()
    assert post.path == "/chat.postMessage"
    assert post.headers["authorization"] == f"Bearer {TOKEN}"
    assert post.body == {"channel": "#alerts", "text": "[run_failure] job: it failed"}


def test_slack_errors_are_one_line_delivery_errors(slack_receiver: Receiver) -> None:
    channel = SlackChannel(TOKEN, "#alerts", base_url=slack_receiver.url.rstrip("/"))
    slack_receiver.slack_error = "channel_not_found"
    with pytest.raises(DeliveryError) as rejected:
        channel.send(alert())
    assert str(rejected.value) == "slack #alerts: channel_not_found"
    slack_receiver.slack_error = None
    slack_receiver.status = 503
    with pytest.raises(DeliveryError, match=r"^slack #alerts: HTTP 503$"):
        channel.send(alert())
    slack_receiver.stop()
    with pytest.raises(DeliveryError, match=r"^slack #alerts: connection refused$"):
        channel.send(alert())
    assert [post.status for post in slack_receiver.received] == [200, 503]  # no client retry


@pytest.mark.parametrize("url", ["foo", "ftp://host/x", "http:///path", "http://h:port/x?token=s3"])
def test_check_webhook_url_says_what_is_wrong_in_one_line(url: str) -> None:
    with pytest.raises(CryptoAssetsError) as raised:
        check_webhook_url(url)
    # The URL is not repeated: a webhook URL may hold a secret.
    assert str(raised.value) == (
        "ALERT_WEBHOOK_URL must be an http(s) URL with a host, such as "
        "https://hooks.example.com/alerts (the value is not shown: it may hold a secret)"
    )


def test_check_webhook_url_accepts_http_and_https() -> None:
    assert check_webhook_url(" https://hooks.example.com/a ") == "https://hooks.example.com/a"
    assert check_webhook_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080"


@pytest.mark.parametrize(
    ("token", "channel", "message"),
    [
        (TOKEN, None, "SLACK_TOKEN is set but SLACK_CHANNEL is not: set both, or neither"),
        (TOKEN, " ", "SLACK_TOKEN is set but SLACK_CHANNEL is not: set both, or neither"),
        (None, "#alerts", "SLACK_CHANNEL is set but SLACK_TOKEN is not: set both, or neither"),
        ("hunter2", "#alerts", "SLACK_TOKEN must be a Slack token (xoxb-… or xoxp-…)"),
    ],
)
def test_check_slack_says_what_is_wrong_in_one_line(
    token: str | None, channel: str | None, message: str
) -> None:
    with pytest.raises(CryptoAssetsError) as raised:
        check_slack(token, channel)
    assert str(raised.value) == message


def test_channels_from_builds_what_is_set(receiver: Receiver, slack_receiver: Receiver) -> None:
    check_slack(None, "")  # neither: fine
    check_slack("xoxp-1", "#a")
    assert channels_from(None, None, None) == []
    assert channels_from("", " ", "") == []
    both = channels_from(receiver.url, TOKEN, "#alerts", slack_base_url=slack_receiver.url)
    assert [channel.name for channel in both] == [
        f"webhook http://127.0.0.1:{receiver.port}/",
        "slack #alerts",
    ]
    for channel in both:
        channel.send(alert())
    assert len(receiver.accepted()) == len(slack_receiver.accepted()) == 1
    with pytest.raises(CryptoAssetsError, match="SLACK_CHANNEL is not"):
        channels_from(receiver.url, TOKEN, None)


def test_without_dagster_slack_a_slack_channel_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "dagster_slack", None)  # import fails
    with pytest.raises(CryptoAssetsError, match="dagster-slack is not installed: pip install"):
        SlackChannel(TOKEN, "#alerts")


def test_the_package_imports_neither_dagster_nor_slack_nor_spark() -> None:
    code = (
        "import sys\n"
        "import crypto_assets.notifications.deliverer\n"
        "loaded = ('dagster', 'dagster_slack', 'slack_sdk', 'pyspark')\n"
        "print(sorted(m for m in loaded if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
