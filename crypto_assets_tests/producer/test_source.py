"""Choosing the trade source: live, replay (loudly), and auto's fallback."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

import pytest
import websocket

from crypto_assets.producer.source import REPLAY_WARNING, open_source
from crypto_assets.settings import Settings


def test_live_uses_the_configured_urls_without_probing(unused_port: int) -> None:
    settings = Settings(
        source="live",
        binance_ws_url=f"ws://127.0.0.1:{unused_port}",
        binance_rest_url="https://api.example",
    )
    with open_source(settings) as source:
        assert (source.kind, source.ws_url) == ("live", f"ws://127.0.0.1:{unused_port}")
        assert source.rest_url == f"http://127.0.0.1:{unused_port}"  # loopback: same host


def test_replay_serves_the_bundled_recording_with_times_moved_to_now(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    with open_source(Settings(source="replay")) as source:
        assert source.kind == "replay"
        assert source.ws_url.startswith("ws://127.0.0.1:")
        assert source.rest_url == source.ws_url.replace("ws://", "http://")
        ws = websocket.create_connection(
            f"{source.ws_url}/stream?streams=btcusdt@trade", timeout=10
        )
        try:
            data = json.loads(ws.recv())["data"]
        finally:
            ws.close()
    assert data["s"] == "BTCUSDT"
    assert abs(data["T"] - time.time() * 1000) < 60_000
    assert REPLAY_WARNING in caplog.text


def test_auto_falls_back_to_the_replay_loudly_when_live_is_unreachable(
    unused_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    settings = Settings(source="auto", binance_ws_url=f"ws://127.0.0.1:{unused_port}")
    with open_source(settings, probe_timeout=2.0) as source:
        assert source.kind == "replay"
        assert source.ws_url != settings.binance_ws_url
    assert "connection refused" in caplog.text
    assert REPLAY_WARNING in caplog.text


def test_auto_uses_live_when_the_handshake_succeeds(
    replay_server_factory: Callable[..., object],
) -> None:
    server = replay_server_factory()  # stands in for a reachable live endpoint
    settings = Settings(source="auto", binance_ws_url=server.url)  # type: ignore[attr-defined]
    with open_source(settings) as source:
        assert (source.kind, source.ws_url) == ("live", server.url)  # type: ignore[attr-defined]
        assert source.rest_url == server.rest_url  # type: ignore[attr-defined]
