"""Binance-area fixtures: the recording's frames as text, and a loopback port nobody listens on."""

from __future__ import annotations

import gzip
import socket
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def recording_frames(recording: Path) -> list[str]:
    """The recorded frames (without the receive-time column), in recording order."""
    with gzip.open(recording, "rt", encoding="utf-8") as handle:
        return [line.split(" ", 1)[1].rstrip("\n") for line in handle]


@pytest.fixture
def unused_port_url() -> str:
    """``ws://127.0.0.1:<port>`` where nothing listens (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"ws://127.0.0.1:{port}"
