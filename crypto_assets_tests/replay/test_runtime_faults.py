"""Faults asked of a running replay server (drop, shutdown, malformed, withheld); clock time.

Real loopback sockets and real clients; expected frames come from the recording read by the test.
"""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
from websockets.exceptions import ConnectionClosed, ConnectionClosedError

from crypto_assets_tests.replay.ws_client import stream_client as connect

TRADES = "btcusdt@trade/ethusdt@trade"


def recv_json(ws, timeout: float = 5.0) -> dict:
    return json.loads(ws.recv(timeout=timeout))


def rest_trades(server, symbol: str, from_id: int, limit: int) -> list[dict]:
    url = (
        f"{server.rest_url}/api/v3/historicalTrades?symbol={symbol}&fromId={from_id}&limit={limit}"
    )
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def recv_until_closed(ws) -> tuple[list[str], ConnectionClosed]:
    """Every message until the connection closes, and how it closed."""
    received = []
    while True:
        try:
            received.append(ws.recv(timeout=5))
        except ConnectionClosed as exc:
            return received, exc


def wait_published(server, count: int) -> None:
    deadline = time.monotonic() + 30
    while server.stats.market.trades_published < count and time.monotonic() < deadline:
        time.sleep(0.05)


def test_drop_connections_aborts_every_connection_now(replay_server_factory) -> None:
    server = replay_server_factory(speed=5.0)

    with connect(f"{server.url}/stream?streams={TRADES}") as ws:
        recv_json(ws)
        assert server.drop_connections() == 1
        _, closed = recv_until_closed(ws)

    assert isinstance(closed, ConnectionClosedError)
    assert closed.rcvd is None  # no close frame: a network failure
    assert server.stats.connections.connections_dropped == 1


def test_send_server_shutdown_notices_then_closes_with_1001(replay_server_factory) -> None:
    server = replay_server_factory(speed=5.0, shutdown_grace=0.3)

    with connect(f"{server.url}/stream?streams={TRADES}") as ws:
        recv_json(ws)
        assert server.send_server_shutdown() == 1
        messages, closed = recv_until_closed(ws)

    notices = [json.loads(m) for m in messages if "serverShutdown" in m]
    assert len(notices) == 1
    assert notices[0]["data"]["e"] == "serverShutdown"
    assert closed.rcvd is not None
    assert closed.rcvd.code == 1001


def test_corrupt_next_sends_exactly_the_next_trades_malformed(
    replay_server_factory, recorded_trades: list[dict]
) -> None:
    server = replay_server_factory()  # speed max: the market waits for the subscriber
    server.corrupt_next(4)

    with connect(f"{server.url}/stream?streams={TRADES}") as ws:
        messages = [ws.recv(timeout=5) for _ in range(10)]

    for message, recorded in zip(messages[:4], recorded_trades[:4], strict=True):
        try:
            data = json.loads(message)["data"]
        except (ValueError, KeyError):
            continue  # truncated: not even JSON
        assert data != recorded
    assert [json.loads(m)["data"] for m in messages[4:]] == recorded_trades[4:10]
    assert server.stats.market.trades_corrupted == 4


def test_withheld_trades_stay_on_rest(replay_server_factory, recorded_trades: list[dict]) -> None:
    server = replay_server_factory()
    server.withhold_next(3)

    with connect(f"{server.url}/stream?streams={TRADES}") as ws:
        received = [recv_json(ws)["data"] for _ in range(20)]
    wait_published(server, 23)

    assert received == recorded_trades[3:23]
    first = recorded_trades[0]
    same_symbol = [t for t in recorded_trades[:3] if t["s"] == first["s"]]
    served = rest_trades(server, first["s"], first["t"], len(same_symbol))
    assert [row["id"] for row in served] == [t["t"] for t in same_symbol]
    assert server.on_loop(server.market.hidden_ids) == {}


def test_trades_withheld_from_rest_too_are_an_unfillable_gap(
    replay_server_factory, recorded_trades: list[dict]
) -> None:
    server = replay_server_factory()
    server.withhold_next(3, from_rest=True)

    with connect(f"{server.url}/stream?streams={TRADES}") as ws:
        received = [recv_json(ws)["data"] for _ in range(20)]
    wait_published(server, 23)

    assert received == recorded_trades[3:23]
    hidden: dict[str, set[int]] = {}
    for trade in recorded_trades[:3]:
        hidden.setdefault(trade["s"], set()).add(trade["t"])
    assert server.on_loop(server.market.hidden_ids) == hidden
    for symbol, ids in hidden.items():
        expected = [t["t"] for t in recorded_trades[:23] if t["s"] == symbol and t["t"] not in ids]
        served = rest_trades(server, symbol, min(ids), 1000)
        assert [row["id"] for row in served][: len(expected)] == expected


def test_clock_time_puts_each_trade_at_the_moment_it_is_sent(
    replay_server_factory, recorded_trades: list[dict]
) -> None:
    server = replay_server_factory(speed=10.0, clock_time=True)

    with connect(f"{server.url}/stream?streams={TRADES}") as ws:
        received = []
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            received.append((time.time() * 1000, recv_json(ws)["data"]))

    # At 10x three seconds carry about thirty recorded seconds.
    recorded_span = recorded_trades[len(received) - 1]["T"] - recorded_trades[0]["T"]
    assert recorded_span > 15_000
    for arrived, data in received:
        assert abs(arrived - data["T"]) < 1_500, (arrived, data)
    spacing = received[-1][1]["T"] - received[0][1]["T"]
    assert spacing == pytest.approx(recorded_span / 10, abs=2)
    # REST tells the same times as the stream.
    last = received[-1][1]
    assert rest_trades(server, last["s"], last["t"], 1)[0]["time"] == last["T"]


def test_clock_time_needs_a_finite_speed(replay_server_factory) -> None:
    from crypto_assets.errors import CryptoAssetsError  # noqa: PLC0415

    with pytest.raises(CryptoAssetsError, match="finite"):
        replay_server_factory(speed=None, clock_time=True)
