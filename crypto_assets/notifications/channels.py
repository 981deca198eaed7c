"""Where notifications go: a webhook (one JSON POST) and Slack (``chat.postMessage``).

A channel sends one notification or raises `DeliveryError` with a one-line reason; it neither
retries nor remembers (the `Deliverer` does both). Its `name` identifies it in the ledger and in
log lines, so it holds no secret: no token, no URL user info, no query string in the clear.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Iterator, Mapping
from typing import Protocol
from urllib.error import URLError
from urllib.parse import urlsplit

import requests

from crypto_assets.errors import CryptoAssetsError
from crypto_assets.notifications.message import Notification
from crypto_assets.settings import Settings

SLACK_TOKEN_PREFIXES = ("xoxb-", "xoxp-")


class DeliveryError(CryptoAssetsError):
    """A channel did not take a notification: ``"<channel name>: <reason>"`` on one line.

    `maybe_delivered` is True when the receiver may have it all the same (no answer within the
    timeout, a connection lost after the request went out), False when it surely has not (the
    connection was refused, the receiver answered with an error).
    """

    def __init__(self, channel: str, reason: str, maybe_delivered: bool = False) -> None:
        super().__init__(f"{channel}: {reason}")
        self.channel = channel
        self.reason = reason
        self.maybe_delivered = maybe_delivered


class Channel(Protocol):
    """Something that delivers a notification to people."""

    name: str

    def send(self, n: Notification) -> None:
        """Deliver `n` once, or raise `DeliveryError` (with a one-line reason) on any failure."""
        ...


class WebhookChannel:
    """One JSON POST of the payload to `url` per notification; any 2xx answer is delivered.

    The ``Idempotency-Key`` header carries the notification's key, so a receiver can drop the
    repeat a crash may cause. Redirects are not followed: a 3xx is a failure to be fixed.
    """

    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        self.url = check_webhook_url(url)
        self.timeout_s = timeout_s
        self.name = f"webhook {_display_url(self.url)}"

    def send(self, n: Notification) -> None:
        """POST `n.payload`; raise `DeliveryError` unless the answer is 2xx."""
        headers = {"Content-Type": "application/json", "Idempotency-Key": n.key}
        try:
            response = requests.post(
                self.url,
                data=json.dumps(n.payload).encode("utf-8"),
                headers=headers,
                timeout=self.timeout_s,
                allow_redirects=False,
            )
        except requests.RequestException as error:
            reason, maybe = _transport_failure(error, self.timeout_s)
            raise DeliveryError(self.name, reason, maybe) from error
        if not 200 <= response.status_code < 300:
            raise DeliveryError(self.name, f"HTTP {response.status_code}")


class SlackChannel:
    """Posts each notification's `text` to a Slack `channel` with ``chat.postMessage``.

    The client is dagster-slack's (`SlackResource(token=...).get_client()`, a slack_sdk
    `WebClient`), imported here only, so the package imports without it. `base_url` replaces
    Slack's API address (``https://slack.com/api/``), for a stand-in receiver. The client's own
    retry of a connection error is turned off: the `Deliverer` retries, with backoff.
    """

    def __init__(
        self, token: str, channel: str, base_url: str | None = None, timeout_s: float = 5.0
    ) -> None:
        check_slack(token, channel)
        try:
            from dagster_slack import SlackResource  # noqa: PLC0415 (optional dependency)
        except ImportError as error:
            raise CryptoAssetsError(
                "SLACK_TOKEN is set but dagster-slack is not installed: "
                "pip install dagster-slack, or unset SLACK_TOKEN and SLACK_CHANNEL"
            ) from error
        self.channel = channel
        self.name = f"slack {channel}"
        self.timeout_s = timeout_s
        self._client = SlackResource(token=token).get_client()
        self._client.timeout = timeout_s  # type: ignore[assignment]  # urllib takes a float
        self._client.retry_handlers = []
        if base_url is not None:
            # WebClient joins method names onto base_url, which must end with a slash.
            self._client.base_url = base_url if base_url.endswith("/") else f"{base_url}/"

    def send(self, n: Notification) -> None:
        """Post `n.text`; raise `DeliveryError` with Slack's error (``channel_not_found``)."""
        from slack_sdk.errors import SlackApiError  # noqa: PLC0415 (optional dependency)

        try:
            self._client.chat_postMessage(channel=self.channel, text=n.text)
        except SlackApiError as error:
            data = error.response.data
            code = data.get("error") if isinstance(data, dict) else None
            reason = str(code) if code else f"HTTP {error.response.status_code}"
            raise DeliveryError(self.name, reason) from error
        except Exception as error:  # urllib's and http.client's errors share no base class
            reason, maybe = _transport_failure(error, self.timeout_s)
            raise DeliveryError(self.name, reason, maybe) from error


def check_webhook_url(url: str) -> str:
    """`url` without surrounding blanks, or `CryptoAssetsError` unless it is http(s) with a host."""
    cleaned = url.strip()
    try:
        parts = urlsplit(cleaned)
        parts.port  # noqa: B018 (raises ValueError on a port that is not a number)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        valid = False
    if not valid:
        raise CryptoAssetsError(
            "ALERT_WEBHOOK_URL must be an http(s) URL with a host, such as "
            "https://hooks.example.com/alerts (the value is not shown: it may hold a secret)"
        )
    return cleaned


def check_slack(token: str | None, channel: str | None) -> None:
    """Raise `CryptoAssetsError` unless the Slack settings are both unset, or both set and
    the token looks like a bot or user token. Blank counts as unset; the token is never shown."""
    token = (token or "").strip()
    channel = (channel or "").strip()
    if token and not channel:
        raise CryptoAssetsError("SLACK_TOKEN is set but SLACK_CHANNEL is not: set both, or neither")
    if channel and not token:
        raise CryptoAssetsError("SLACK_CHANNEL is set but SLACK_TOKEN is not: set both, or neither")
    if token and not token.startswith(SLACK_TOKEN_PREFIXES):
        raise CryptoAssetsError("SLACK_TOKEN must be a Slack token (xoxb-… or xoxp-…)")


def channels_from(
    webhook_url: str | None,
    slack_token: str | None,
    slack_channel: str | None,
    slack_base_url: str | None = None,
) -> list[Channel]:
    """The channels the settings configure (webhook first), validated; blank means unset."""
    check_slack(slack_token, slack_channel)
    channels: list[Channel] = []
    if webhook_url and webhook_url.strip():
        channels.append(WebhookChannel(webhook_url))
    if slack_token and slack_token.strip():
        channels.append(
            SlackChannel(slack_token.strip(), str(slack_channel).strip(), slack_base_url)
        )
    return channels


def _display_url(url: str) -> str:
    """`url` without user info, its query replaced by a short hash (it may hold a secret)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    shown = f"{parts.scheme}://{host}{parts.path or '/'}"
    if parts.query:
        shown += "?" + hashlib.sha256(parts.query.encode()).hexdigest()[:8]
    return shown


def _transport_failure(error: BaseException, timeout_s: float) -> tuple[str, bool]:
    """A short reason for a failure without an HTTP answer, and whether it may have arrived."""
    causes = list(_causes(error))
    if isinstance(error, requests.ConnectTimeout):
        return f"no connection within {timeout_s:g} s", False
    if isinstance(error, requests.ReadTimeout):
        return f"no answer within {timeout_s:g} s", True
    if any(isinstance(cause, ConnectionRefusedError) for cause in causes):
        return "connection refused", False
    if any(isinstance(cause, socket.gaierror) for cause in causes):
        return "unknown host", False
    if isinstance(error, URLError) and isinstance(error.reason, TimeoutError):
        return f"no connection within {timeout_s:g} s", False  # urllib: while connecting
    if isinstance(error, TimeoutError):
        return f"no answer within {timeout_s:g} s", True
    deepest = causes[-1]
    first_line = (str(deepest).splitlines() or [""])[0][:200]
    return f"{type(deepest).__name__}: {first_line}" if first_line else type(deepest).__name__, True


def _causes(error: BaseException) -> Iterator[BaseException]:
    """`error`, then what it wraps (cause, context, urllib's reason, exceptions in its args)."""
    seen: set[int] = set()
    pending = [error]
    while pending and len(seen) < 20:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        inner = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        inner.extend(arg for arg in current.args if isinstance(arg, BaseException))
        pending.extend(item for item in inner if isinstance(item, BaseException))


def channels_for(settings: Settings, environ: Mapping[str, str] = os.environ) -> list[Channel]:
    """The channels `settings` turn on, the Slack token read from SLACK_TOKEN in `environ`.

    Empty when notifications are off (the default). A malformed setting is one line.
    """
    return channels_from(
        settings.alert_webhook_url,
        environ.get("SLACK_TOKEN"),
        settings.slack_channel,
        settings.slack_api_url,
    )
