"""The replay server over real loopback sockets, driven by clients that are not ours.

Expected values come from reading the recording with gzip + json in the test.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import websocket  # websocket-client
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidStatus
from websockets.sync.client import connect as websockets_connect

from crypto_assets.errors import CryptoAssetsError
from crypto_assets_tests.replay.recordings import read_frames
from crypto_assets_tests.replay.ws_client import stream_client as connect

TRADES = "btcusdt@trade/ethusdt@trade"


def recv_json(ws, timeout: float = 5.0) -> dict:
    return json.loads(ws.recv(timeout=timeout))


def recv_until_closed(ws) -> tuple[list[str], ConnectionClosed]:
    """Every message until the connection closes, and how it closed."""
    received = []
    while True:
        try:
            received.append(ws.recv(timeout=5))
        except ConnectionClosed as exc:
            return received, exc


def reply_to(ws, request_id: int) -> dict:
    """The reply with ``request_id``, skipping stream frames that arrive before it."""
    while "id" not in (message := recv_json(ws)) or message["id"] != request_id:
        pass
    return message


def test_combined_stream_replays_the_recorded_frames_byte_for_byte(
    replay_server_factory, recorded_frames: list
) -> None:
    server = replay_server_factory()

    with connect(f"{server.url}/stream?streams={TRADES}") as ws:
        received = [ws.recv(timeout=5) for _ in range(500)]

    assert received == [frame for _, frame, _ in recorded_frames[:500]]


def test_raw_endpoint_sends_payloads_of_the_one_stream(
    replay_server_factory, recorded_trades: list[dict]
) -> None:
    server = replay_server_factory()

    with connect(f"{server.url}/ws/ethusdt@trade") as ws:
        received = [recv_json(ws) for _ in range(300)]

    expected = [trade for trade in recorded_trades if trade["s"] == "ETHUSDT"][:300]
    assert received == expected


def test_every_trade_arrives_exactly_once_in_order_at_max_speed(
    replay_server_factory, recorded_trades: list[dict]
) -> None:
    server = replay_server_factory()
    ws = websocket.create_connection(f"{server.url}/stream?streams={TRADES}", timeout=10)
    try:
        received = [json.loads(ws.recv())["data"] for _ in range(len(recorded_trades))]
        ws.settimeout(0.3)
        with pytest.raises(websocket.WebSocketTimeoutException):
            ws.recv()  # the recording ended: open and quiet
        assert ws.connected
    finally:
        ws.close()

    assert [(t["s"], t["t"]) for t in received] == [(t["s"], t["t"]) for t in recorded_trades]
    assert received == recorded_trades
    assert server.stats.market.finished


def test_only_requested_streams_are_sent(
    replay_server_factory, raw_btc_recording: Path, raw_btc_frames: list
) -> None:
    server = replay_server_factory(recordings=(raw_btc_recording,))
    wanted = ("btcusdt@trade", "btcusdt@bookTicker")
    expected = [parsed for _, _, parsed in raw_btc_frames if parsed["stream"] in wanted]

    with connect(f"{server.url}/stream?streams={'/'.join(wanted)}") as ws:
        received = [recv_json(ws) for _ in range(3000)]

    assert received == expected[:3000]
    assert "btcusdt@depth@100ms" in {parsed["stream"] for _, _, parsed in raw_btc_frames[:3000]}


def test_depth_is_served_when_asked(
    replay_server_factory, raw_btc_recording: Path, raw_btc_frames: list
) -> None:
    server = replay_server_factory(recordings=(raw_btc_recording,))
    expected = [p["data"] for _, _, p in raw_btc_frames if p["stream"] == "btcusdt@depth@100ms"]

    with connect(f"{server.url}/ws/btcusdt@depth@100ms") as ws:
        received = [recv_json(ws) for _ in range(100)]

    assert received == expected[:100]


def test_subscribe_list_and_unsubscribe_on_a_raw_connection(replay_server_factory) -> None:
    server = replay_server_factory(speed=1.0)

    with connect(f"{server.url}/ws") as ws:
        ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 1}))
        assert recv_json(ws) == {"result": None, "id": 1}
        trade = recv_json(ws)
        assert trade["e"] == "trade"
        assert trade["s"] == "BTCUSDT"
        ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 2}))
        assert reply_to(ws, 2) == {"result": ["btcusdt@trade"], "id": 2}
        ws.send(json.dumps({"method": "UNSUBSCRIBE", "params": ["btcusdt@trade"], "id": 3}))
        assert reply_to(ws, 3) == {"result": None, "id": 3}
        time.sleep(1.1)  # stay under 5 requests a second
        ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 4}))
        assert reply_to(ws, 4) == {"result": [], "id": 4}
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.3)  # unsubscribed: no more trades


@pytest.mark.parametrize(
    ("request_text", "code", "message", "request_id"),
    [
        ('{"method":"SUBSCRIBE","params":["btcusdt@trade"', 3, "Invalid JSON: ", None),
        ('{"method":"FOO","params":[],"id":7}', 2, "Invalid request: unknown variant `FOO`", 7),
        (
            '{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":-1}',
            2,
            "Invalid request: request ID must be an unsigned integer",
            None,
        ),
        ('{"method":"SET_PROPERTY","params":["colour",true],"id":8}', 0, "Unknown property", 8),
        (
            '{"method":"SET_PROPERTY","params":["combined","yes"],"id":9}',
            1,
            "Invalid value type: expected Boolean",
            9,
        ),
        (
            '{"method":"GET_PROPERTY","params":[5],"id":10}',
            2,
            "Invalid request: property name must be a string",
            10,
        ),
        ('{"params":[],"id":11}', 2, "Invalid request: missing field `method`", 11),
    ],
)
def test_control_errors_use_binance_codes(
    replay_server_factory, request_text: str, code: int, message: str, request_id: int | None
) -> None:
    server = replay_server_factory()

    with connect(f"{server.url}/ws") as ws:
        ws.send(request_text)
        reply = recv_json(ws)

    assert reply["error"]["code"] == code
    assert reply["error"]["msg"].startswith(message)
    assert reply["id"] == request_id


def test_set_property_combined_switches_the_envelope(replay_server_factory) -> None:
    server = replay_server_factory()

    with connect(f"{server.url}/ws") as ws:
        ws.send('{"method":"SET_PROPERTY","params":["combined",true],"id":1}')
        assert recv_json(ws) == {"result": None, "id": 1}
        ws.send('{"method":"GET_PROPERTY","params":["combined"],"id":2}')
        assert recv_json(ws) == {"result": True, "id": 2}
        ws.send('{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":3}')
        assert recv_json(ws) == {"result": None, "id": 3}
        frame = recv_json(ws)

    assert frame["stream"] == "btcusdt@trade"
    assert frame["data"]["s"] == "BTCUSDT"


def test_microsecond_time_unit(replay_server_factory, recorded_trades: list[dict]) -> None:
    server = replay_server_factory()

    with connect(f"{server.url}/stream?streams={TRADES}&timeUnit=MICROSECOND") as ws:
        received = [recv_json(ws)["data"] for _ in range(50)]

    for got, recorded in zip(received, recorded_trades[:50], strict=True):
        assert got["E"] == recorded["E"] * 1000
        assert got["T"] == recorded["T"] * 1000
        assert got["t"] == recorded["t"]


def test_unknown_path_is_http_404(replay_server_factory) -> None:
    server = replay_server_factory()

    with pytest.raises(InvalidStatus) as info:
        websockets_connect(f"{server.url}/nope")
    assert info.value.response.status_code == 404
    with pytest.raises(urllib.error.HTTPError) as http_info:
        urllib.request.urlopen(f"{server.rest_url}/nope", timeout=5)
    http_info.value.close()
    assert http_info.value.code == 404


def test_a_client_that_answers_pings_stays_connected(replay_server_factory) -> None:
    server = replay_server_factory(ping_interval=0.1, pong_timeout=0.3)

    with connect(f"{server.url}/ws") as ws:
        time.sleep(1.0)  # several server pings, answered by the library
        ws.send('{"method":"LIST_SUBSCRIPTIONS","id":1}')
        assert recv_json(ws) == {"result": [], "id": 1}
        latency = ws.ping().wait(5)  # and our own ping is answered
        assert latency


def _raw_handshake(port: int, path: str) -> socket.socket:
    """A websocket client by hand, which never answers pings."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)
    assert response.startswith(b"HTTP/1.1 101")
    return sock


def _read_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def _read_frames(sock: socket.socket) -> list[tuple[int, bytes]]:
    """(opcode, payload) of unmasked server frames until the server ends the TCP stream."""
    frames = []
    try:
        while True:
            first, second = _read_exact(sock, 2)
            size = second & 0x7F
            if size == 126:
                size = int.from_bytes(_read_exact(sock, 2), "big")
            elif size == 127:
                size = int.from_bytes(_read_exact(sock, 8), "big")
            frames.append((first & 0x0F, _read_exact(sock, size)))
    except EOFError:
        return frames


def test_a_client_that_never_pongs_is_disconnected(replay_server_factory) -> None:
    server = replay_server_factory(ping_interval=0.2, pong_timeout=0.3)
    sock = _raw_handshake(server.port, "/ws")
    try:
        frames = _read_frames(sock)
    finally:
        sock.close()

    opcodes = [opcode for opcode, _ in frames]
    assert opcodes[0] == 0x9  # pinged, never answered
    assert opcodes[-1] == 0x8  # then closed by the server
    assert int.from_bytes(frames[-1][1][:2], "big") == 1011  # keepalive ping timeout


def test_more_than_five_messages_a_second_disconnects(replay_server_factory) -> None:
    server = replay_server_factory()

    with connect(f"{server.url}/ws") as ws:
        for request_id in range(8):
            try:
                ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": request_id}))
            except ConnectionClosed:
                break
        replies, closed = recv_until_closed(ws)

    assert len(replies) == 5
    assert closed.rcvd is not None
    assert closed.rcvd.code == 1008
    assert server.stats.connections.rate_limited == 1


def test_drop_after_aborts_without_a_close_frame(replay_server_factory) -> None:
    server = replay_server_factory(drop_after=100)

    with connect(f"{server.url}/stream?streams={TRADES}") as ws:
        received, closed = recv_until_closed(ws)

    assert len(received) == 100
    assert isinstance(closed, ConnectionClosedError)
    assert closed.rcvd is None  # no close frame: an abrupt failure
    assert server.stats.connections.connections_dropped == 1


def test_shutdown_after_sends_server_shutdown_then_closes(replay_server_factory) -> None:
    server = replay_server_factory(shutdown_after=50, shutdown_grace=0.3, speed=20.0)

    with connect(f"{server.url}/stream?streams={TRADES}") as ws:
        messages, closed = recv_until_closed(ws)

    received = [json.loads(message) for message in messages]
    notice = received[50]
    assert notice["stream"] == "!serverShutdown"
    assert notice["data"]["e"] == "serverShutdown"
    assert abs(notice["data"]["E"] - time.time() * 1000) < 60_000
    assert all(frame["stream"].endswith("@trade") for frame in received[:50])
    assert all(frame["stream"].endswith("@trade") for frame in received[51:])
    assert closed.rcvd is not None
    assert closed.rcvd.code == 1001


def test_loop_keeps_ids_contiguous_and_times_increasing(
    replay_server_factory, small_recording: Path
) -> None:
    recorded = [parsed["data"] for _, _, parsed in read_frames(small_recording)]
    server = replay_server_factory(recordings=(small_recording,), loop=True)

    with connect(f"{server.url}/stream?streams={TRADES}") as ws:
        received = [recv_json(ws)["data"] for _ in range(2 * len(recorded) + 100)]

    for symbol in ("BTCUSDT", "ETHUSDT"):
        ids = [t["t"] for t in received if t["s"] == symbol]
        assert ids == list(range(ids[0], ids[0] + len(ids)))
        times = [t["T"] for t in received if t["s"] == symbol]
        assert times == sorted(times)
    lap_len = len(recorded)
    assert received[lap_len]["T"] > max(t["T"] for t in recorded)
    assert received[lap_len]["p"] == recorded[0]["p"]
    assert received[:lap_len] == recorded


def test_rebase_time_puts_the_first_trade_at_now(replay_server_factory) -> None:
    server = replay_server_factory(rebase_time=True)
    before = time.time() * 1000

    with connect(f"{server.url}/stream?streams={TRADES}") as ws:
        first = recv_json(ws)["data"]

    assert before - 5_000 < first["T"] < time.time() * 1000 + 5_000


def test_finite_speed_paces_on_receive_time(replay_server_factory, small_recording: Path) -> None:
    frames = read_frames(small_recording)
    wanted = 150
    span_s = (frames[wanted - 1][0] - frames[0][0]) / 1e9
    speed = 20.0
    server = replay_server_factory(recordings=(small_recording,), speed=speed)

    with connect(f"{server.url}/stream?streams={TRADES}") as ws:
        first = recv_json(ws)
        started = time.monotonic()
        rest = [recv_json(ws) for _ in range(wanted - 1)]
        elapsed = time.monotonic() - started

    assert [first, *rest] == [parsed for _, _, parsed in frames[:wanted]]
    assert elapsed >= 0.5 * span_s / speed  # loose: never faster than the paced clock


def test_at_finite_speed_the_market_runs_while_nobody_listens(
    replay_server_factory, recorded_trades: list[dict]
) -> None:
    server = replay_server_factory(speed=100.0)

    with connect(f"{server.url}/ws/btcusdt@trade") as ws:
        before = recv_json(ws)
    time.sleep(1.0)  # about 100 s of market time
    with connect(f"{server.url}/ws/btcusdt@trade") as ws:
        after = recv_json(ws)

    assert after["t"] > before["t"] + 1
    published = server.stats.market.trades_published
    assert published > recorded_trades.index(before) + 1


def test_at_max_speed_the_market_waits_for_a_subscriber(replay_server_factory) -> None:
    server = replay_server_factory()

    with connect(f"{server.url}/ws") as ws:
        time.sleep(0.3)
        ws.send('{"method":"LIST_SUBSCRIPTIONS","id":1}')
        assert recv_json(ws) == {"result": [], "id": 1}

    assert server.stats.market.trades_published == 0


def test_stopping_the_server_announces_the_shutdown(replay_server_factory) -> None:
    server = replay_server_factory(speed=1.0)

    with connect(f"{server.url}/stream?streams={TRADES}") as ws:
        recv_json(ws)
        server.stop()
        messages, closed = recv_until_closed(ws)

    assert json.loads(messages[-1])["stream"] == "!serverShutdown"
    assert closed.rcvd is not None
    assert closed.rcvd.code == 1001
    server.stop()  # idempotent


def test_connections_expire_after_max_connection_age(replay_server_factory) -> None:
    server = replay_server_factory(max_connection_age=0.5, speed=1.0)

    with connect(f"{server.url}/ws") as ws:
        ws.send('{"method":"LIST_SUBSCRIPTIONS","id":1}')
        assert recv_json(ws) == {"result": [], "id": 1}
        messages, closed = recv_until_closed(ws)

    assert messages == []
    assert closed.rcvd is not None
    assert closed.rcvd.code == 1001


def test_a_busy_port_is_a_one_line_error(replay_server_factory) -> None:
    first = replay_server_factory()

    with pytest.raises(CryptoAssetsError, match=f"cannot listen on 127.0.0.1:{first.port}") as info:
        replay_server_factory(port=first.port)
    assert "\n" not in str(info.value)


def test_lowercase_time_unit_and_raw_multi_stream_path(
    replay_server_factory, recorded_trades: list[dict]
) -> None:
    server = replay_server_factory()

    with connect(f"{server.url}/ws/btcusdt@trade/ethusdt@trade?timeUnit=microsecond") as ws:
        received = [recv_json(ws) for _ in range(20)]

    assert [(t["t"], t["T"]) for t in received] == [
        (t["t"], t["T"] * 1000) for t in recorded_trades[:20]
    ]


def spans(recorded: list[dict]) -> dict[str, int]:
    """Per symbol, how far ids move per lap: max id - min id + 1, from the recording itself."""
    ids: dict[str, list[int]] = {}
    for trade in recorded:
        ids.setdefault(trade["s"], []).append(trade["t"])
    return {symbol: max(values) - min(values) + 1 for symbol, values in ids.items()}


def test_first_lap_starts_where_lap_n_of_loop_would_be(
    replay_server_factory, small_recording: Path
) -> None:
    recorded = [parsed["data"] for _, _, parsed in read_frames(small_recording)]
    lap_len = len(recorded)
    looping = replay_server_factory(recordings=(small_recording,), loop=True)
    with connect(f"{looping.url}/stream?streams={TRADES}") as ws:
        from_lap_0 = [recv_json(ws)["data"] for _ in range(3 * lap_len)]
    later = replay_server_factory(recordings=(small_recording,), loop=True, first_lap=2)
    with connect(f"{later.url}/stream?streams={TRADES}") as ws:
        from_lap_2 = [recv_json(ws)["data"] for _ in range(lap_len)]

    span = spans(recorded)
    assert [t["t"] for t in from_lap_2] == [t["t"] + 2 * span[t["s"]] for t in recorded]
    assert from_lap_2 == from_lap_0[2 * lap_len :]
    assert from_lap_2[0]["T"] > max(t["T"] for t in from_lap_0[:lap_len])


def test_first_lap_ids_stay_contiguous_across_the_next_lap(
    replay_server_factory, small_recording: Path
) -> None:
    recorded = [parsed["data"] for _, _, parsed in read_frames(small_recording)]
    server = replay_server_factory(recordings=(small_recording,), loop=True, first_lap=2)

    with connect(f"{server.url}/stream?streams={TRADES}") as ws:
        received = [recv_json(ws)["data"] for _ in range(2 * len(recorded) + 50)]

    span = spans(recorded)
    for symbol in span:
        first_recorded = min(t["t"] for t in recorded if t["s"] == symbol)
        ids = [t["t"] for t in received if t["s"] == symbol]
        assert ids == list(range(first_recorded + 2 * span[symbol], ids[0] + len(ids)))
        assert ids[-1] >= first_recorded + 3 * span[symbol]  # went past the lap boundary
        times = [t["T"] for t in received if t["s"] == symbol]
        assert times == sorted(times)


def test_first_lap_with_rebase_time_puts_the_first_trade_at_now(
    replay_server_factory, recorded_trades: list[dict]
) -> None:
    server = replay_server_factory(rebase_time=True, loop=True, first_lap=3)
    before = time.time() * 1000

    with connect(f"{server.url}/stream?streams={TRADES}") as ws:
        first = recv_json(ws)["data"]

    assert before - 5_000 < first["T"] < time.time() * 1000 + 5_000
    assert first["t"] == recorded_trades[0]["t"] + 3 * spans(recorded_trades)[first["s"]]


def test_a_negative_first_lap_is_refused(replay_server_factory) -> None:
    with pytest.raises(CryptoAssetsError, match=r"first_lap \(--first-lap\) must be 0 or more"):
        replay_server_factory(first_lap=-1)
