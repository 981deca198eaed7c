"""Choosing the trade source: live, replay (loudly), and auto's fallback."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import websocket

from crypto_assets.replay.source import (
    REPLAY_WARNING,
    TradeSource,
    UnknownPairsError,
    check_pairs,
    open_source,
)
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
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with open_source(Settings(source="replay", data_dir=tmp_path)) as source:
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
    tmp_path: Path, unused_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    settings = Settings(
        source="auto", binance_ws_url=f"ws://127.0.0.1:{unused_port}", data_dir=tmp_path
    )
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


def _server_source(server: object, kind: str) -> TradeSource:
    return TradeSource(kind, server.url, server.rest_url)  # type: ignore[attr-defined, arg-type]


def test_pairs_the_source_lists_pass_without_a_word(replay_server_factory) -> None:
    source = _server_source(replay_server_factory(), "live")
    assert check_pairs(source, ("btcusdt", "ethusdt")) == []


def test_a_pair_live_binance_does_not_list_is_an_error_naming_it(replay_server_factory) -> None:
    source = _server_source(replay_server_factory(), "live")
    with pytest.raises(UnknownPairsError) as caught:
        check_pairs(source, ("btcusdt", "notapair", "ethusdt", "dogeusdt"))
    message = str(caught.value)
    assert message.startswith("pairs: Binance does not list notapair, dogeusdt ")
    assert "ethusdt" not in message  # a listed pair is not named
    assert "\n" not in message


def test_pairs_a_replay_does_not_carry_are_a_warning_naming_them(replay_server_factory) -> None:
    source = _server_source(replay_server_factory(), "replay")
    (warning,) = check_pairs(source, ("btcusdt", "ethusdt", "bnbusdt", "solusdt"))
    assert warning.startswith("the replay does not carry bnbusdt, solusdt: no trades")
    assert "it carries btcusdt, ethusdt" in warning


def test_an_unreachable_rest_endpoint_is_a_warning(unused_port: int) -> None:
    source = TradeSource("live", f"ws://127.0.0.1:{unused_port}", f"http://127.0.0.1:{unused_port}")
    (warning,) = check_pairs(source, ("btcusdt",), timeout=1.0)
    assert warning.startswith("pairs not checked: exchangeInfo failed (cannot reach")
