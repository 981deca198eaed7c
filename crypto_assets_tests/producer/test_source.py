"""Choosing the trade source: live, replay (loudly), and auto's fallback."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import websocket

from crypto_assets.producer.producer import Producer, ProducerConfig, ProducerSummary
from crypto_assets.producer.source import (
    REPLAY_WARNING,
    TradeSource,
    UnknownPairsError,
    check_pairs,
    open_source,
)
from crypto_assets.settings import Settings
from crypto_assets_tests.producer.landing_reader import read_landing
from crypto_assets_tests.recorded_trades import recorded_landing_rows


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


@pytest.fixture(scope="module")
def recorded_ids(recording: Path) -> dict[str, list[int]]:
    """Trade ids by symbol, in recorded order, read independently of the replay's loader."""
    return ids_by_symbol(list(recorded_landing_rows(recording)))


def produce_from_replay(settings: Settings, seconds: float) -> ProducerSummary:
    """One producer run of `seconds` on the source `settings` picks (the replay here)."""
    with open_source(settings) as source:
        config = ProducerConfig(
            ws_url=source.ws_url,
            rest_url=source.rest_url,
            pairs=("btcusdt", "ethusdt"),
            landing_dir=settings.landing_dir,
            batch_interval_seconds=0.5,
            duration_seconds=seconds,
            gap_grace_seconds=0.3,
            source=source.kind,
            resume=source.resume,
        )
        return Producer(config).run()


def read_landing_file(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def ids_by_symbol(rows: list[dict]) -> dict[str, list[int]]:
    ids: dict[str, list[int]] = {}
    for row in rows:
        ids.setdefault(row["symbol"], []).append(row["trade_id"])
    return ids


def test_a_second_replay_run_lands_new_trades_above_the_first_runs(
    tmp_path: Path, recorded_ids: dict[str, list[int]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="crypto_assets.replay.continuation")
    settings = Settings(source="replay", data_dir=tmp_path)
    first = produce_from_replay(settings, 3.0)
    first_ids = ids_by_symbol(read_landing(settings.landing_dir))
    first_files = set(settings.landing_dir.glob("trades_*.json"))
    second = produce_from_replay(settings, 3.0)
    new_files = set(settings.landing_dir.glob("trades_*.json")) - first_files
    second_ids = ids_by_symbol([row for path in new_files for row in read_landing_file(path)])

    assert first.trades > 0
    assert second.trades > 0
    span = {s: max(ids) - min(ids) + 1 for s, ids in recorded_ids.items()}
    assert set(second_ids) == set(first_ids) == {"BTCUSDT", "ETHUSDT"}
    for symbol, ids in second_ids.items():
        assert min(ids) > max(first_ids[symbol])
        assert sorted(ids) == list(range(min(ids), max(ids) + 1))  # contiguous within the run
        assert len(ids) == len(set(ids))
        assert min(ids) == recorded_ids[symbol][0] + span[symbol]  # lap 1 of the recording
    assert second.duplicates_dropped == 0
    # The ids between the first run's high and lap 1 never existed in this replayed market.
    assert second.gaps_unfilled == 0
    assert second.per_symbol == {s: len(ids) for s, ids in second_ids.items()}
    assert "replay continues at lap 1" in caplog.text


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
