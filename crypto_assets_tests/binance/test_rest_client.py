"""The REST client against the replay server's historicalTrades, and its typed errors."""

from __future__ import annotations

import json

import pytest

from crypto_assets.binance.rest_client import BinanceRestClient, RestError


def test_historical_trades_match_the_recorded_frames(
    published_server: object, recording_frames: list[str]
) -> None:
    btc = [json.loads(f)["data"] for f in recording_frames if '"s":"BTCUSDT"' in f]
    rest = BinanceRestClient(published_server.rest_url)  # type: ignore[attr-defined]
    rows = rest.historical_trades("btcusdt", btc[100]["t"], 1000)
    assert len(rows) == 1000
    assert [(r["id"], r["price"], r["qty"], r["time"], r["isBuyerMaker"]) for r in rows] == [
        (d["t"], d["p"], d["q"], d["T"], d["m"]) for d in btc[100:1100]
    ]


def test_binance_error_json_becomes_a_typed_error(published_server: object) -> None:
    rest = BinanceRestClient(published_server.rest_url)  # type: ignore[attr-defined]
    with pytest.raises(RestError) as caught:
        rest.historical_trades("DOGEUSDT", 1, 10)
    assert (caught.value.status, caught.value.code) == (400, -1121)
    assert "Invalid symbol" in str(caught.value)


def test_limit_outside_binance_range_is_refused_before_calling(published_server: object) -> None:
    rest = BinanceRestClient(published_server.rest_url)  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="limit"):
        rest.historical_trades("BTCUSDT", 1, 1001)


def test_unreachable_rest_is_a_typed_error(unused_port_url: str) -> None:
    rest = BinanceRestClient(unused_port_url.replace("ws://", "http://"), timeout=2.0)
    with pytest.raises(RestError, match=r"cannot reach http://127\.0\.0\.1"):
        rest.historical_trades("BTCUSDT", 1, 10)


def test_exchange_info_describes_each_symbol_asked_for(published_server: object) -> None:
    rest = BinanceRestClient(published_server.rest_url)  # type: ignore[attr-defined]
    infos = rest.exchange_info(("ethusdt", "btcusdt"))
    assert set(infos) == {"BTCUSDT", "ETHUSDT"}
    assert (infos["ETHUSDT"]["baseAsset"], infos["ETHUSDT"]["quoteAsset"]) == ("ETH", "USDT")
    with pytest.raises(RestError) as caught:
        rest.exchange_info(("btcusdt", "dogeusdt"))
    assert (caught.value.status, caught.value.code) == (400, -1121)
