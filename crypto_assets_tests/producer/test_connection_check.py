"""The connectivity test: per-symbol rates and latency, and its unreachable errors."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from crypto_assets.binance.stream_client import StreamUnavailableError
from crypto_assets.producer.connection_check import check_connection, symbol_report


def test_symbol_report_statistics() -> None:
    report = symbol_report("BTCUSDT", [5, 1, 3, 2, 4, 100, 6, 7, 8, 9], seconds=2.0)
    assert report.trades == 10
    assert report.trades_per_second == 5.0
    assert report.latency_mean_ms == 14.5
    assert report.latency_p50_ms == 5  # nearest rank: 5th of 10 sorted values
    assert report.latency_p95_ms == 100
    assert report.latency_max_ms == 100


def test_a_symbol_without_trades_says_so() -> None:
    report = symbol_report("SOLUSDT", [], seconds=1.0)
    assert report.trades == 0
    assert math.isnan(report.latency_mean_ms)
    assert report.line() == "SOLUSDT: no trades"


def test_check_against_the_replay_server_counts_trades_per_symbol(
    replay_server_factory: Callable[..., object],
) -> None:
    server = replay_server_factory(speed=20.0, rebase_time=True)
    report = check_connection(server.url, ("btcusdt", "ethusdt", "solusdt"), duration=1.5)  # type: ignore[attr-defined]
    by_symbol = {r.symbol: r for r in report.symbols}
    assert set(by_symbol) == {"BTCUSDT", "ETHUSDT", "SOLUSDT"}
    assert by_symbol["SOLUSDT"].trades == 0  # not in the recording
    for symbol in ("BTCUSDT", "ETHUSDT"):
        r = by_symbol[symbol]
        assert r.trades > 0
        assert r.trades_per_second == pytest.approx(r.trades / report.seconds)
        assert r.latency_p50_ms <= r.latency_p95_ms <= r.latency_max_ms
    assert report.frames == by_symbol["BTCUSDT"].trades + by_symbol["ETHUSDT"].trades
    assert len(report.lines()) == 4


def test_unreachable_endpoint_is_one_actionable_line(unused_port: int) -> None:
    with pytest.raises(StreamUnavailableError) as caught:
        check_connection(f"ws://127.0.0.1:{unused_port}", ("btcusdt",), duration=1.0)
    message = str(caught.value)
    assert "\n" not in message
    assert "connection refused" in message
    assert "CRYPTO_SOURCE=replay" in message
