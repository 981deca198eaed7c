"""Fixtures of the notification tests: real loopback receivers and an outbox folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from crypto_assets.notifications.outbox import Outbox
from crypto_assets_tests.notifications.receiver import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on 127.0.0.1, answering 200 until told otherwise."""
    with Receiver() as started:
        yield started


@pytest.fixture
def slack_receiver() -> Iterator[Receiver]:
    """A stand-in for Slack's Web API (``/chat.postMessage``) on 127.0.0.1."""
    with Receiver(slack=True) as started:
        yield started


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    """An empty outbox folder."""
    return Outbox(tmp_path / "outbox")
