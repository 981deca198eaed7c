"""The websocket transport against the real replay server and real failing endpoints."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import websocket
from websocket import ABNF

from crypto_assets.binance.parsing import parse_frame
from crypto_assets.binance.stream_client import (
    StreamClient,
    StreamUnavailableError,
    combined_stream_url,
    connect,
)


def take(client: StreamClient, count: int, timeout: float = 30.0) -> list[tuple[int, str, int]]:
    frames = []
    deadline = time.monotonic() + timeout
    while len(frames) < count and time.monotonic() < deadline:
        frames.extend(client.take(count - len(frames), timeout=0.2))
    return frames


def test_combined_stream_url() -> None:
    assert (
        combined_stream_url("wss://h:9443/", ["BTCUSDT", "ethusdt"])
        == "wss://h:9443/stream?streams=btcusdt@trade/ethusdt@trade"
    )


def test_frames_arrive_in_order_with_receive_times(
    replay_server_factory: Callable[..., object], recording_frames: list[str]
) -> None:
    server = replay_server_factory()
    client = StreamClient(combined_stream_url(server.url, ["btcusdt", "ethusdt"]))  # type: ignore[attr-defined]
    before = time.time_ns() // 1_000_000
    client.start()
    try:
        assert client.running
        frames = take(client, 500)
    finally:
        client.stop()
    assert not client.running
    assert [json.loads(text) for _, text, _ in frames] == [
        json.loads(f) for f in recording_frames[:500]
    ]
    assert {connection for connection, _, _ in frames} == {0}
    received = [ms for _, _, ms in frames]
    assert received == sorted(received)
    assert before <= received[0] <= time.time_ns() // 1_000_000


def test_take_returns_at_most_max_frames_and_nothing_once_quiet(
    replay_server_factory: Callable[..., object], recording_frames: list[str]
) -> None:
    server = replay_server_factory()
    client = StreamClient(combined_stream_url(server.url, ["btcusdt", "ethusdt"]))  # type: ignore[attr-defined]
    client.start()
    try:
        first = client.take(3, timeout=30)
        rest = take(client, 200 - len(first))
    finally:
        client.stop()
    assert 1 <= len(first) <= 3
    assert [json.loads(text) for _, text, _ in first + rest] == [
        json.loads(f) for f in recording_frames[:200]
    ]
    client.take(client.queued, timeout=0)
    # Stopped: nothing more arrives, so take waits out its timeout and returns nothing.
    assert client.take(10, timeout=0.05) == []
    assert client.queued == 0


def test_stop_is_prompt_and_closes_the_connection(
    replay_server_factory: Callable[..., object],
) -> None:
    server = replay_server_factory(speed=1.0)
    client = StreamClient(combined_stream_url(server.url, ["btcusdt"]))  # type: ignore[attr-defined]
    client.start()
    take(client, 1)
    client.stop()
    assert not client.running
    # The reader was blocked in recv() (silence timeout 60 s): stop() must have woken it.
    assert not [t for t in threading.enumerate() if t.name.startswith("stream-")]
    deadline = time.monotonic() + 10
    while server.stats.connections.connections_open and time.monotonic() < deadline:  # type: ignore[attr-defined]
        time.sleep(0.05)
    assert server.stats.connections.connections_open == 0  # type: ignore[attr-defined]


def test_rotate_opens_the_new_connection_before_closing_the_old(
    replay_server_factory: Callable[..., object],
) -> None:
    server = replay_server_factory(speed=50.0)
    client = StreamClient(
        combined_stream_url(server.url, ["btcusdt", "ethusdt"]),  # type: ignore[attr-defined]
        min_attempt_interval=0.0,
        rotation_drain=0.5,
    )
    client.start()
    try:
        take(client, 10)
        client.rotate(connection_id=0)
        client.rotate(connection_id=7)  # not the active connection: ignored
        frames = take(client, 2000)
        ids_by_connection: dict[int, list[tuple[str, int]]] = {}
        for connection, text, _ in frames:
            data = json.loads(text)["data"]
            ids_by_connection.setdefault(connection, []).append((data["s"], data["t"]))
    finally:
        client.stop()
    assert set(ids_by_connection) == {0, 1}
    assert client.rotations == 1
    assert client.connections_opened == 2
    # Both connections delivered some of the same trades: the overlap left nothing uncovered.
    assert set(ids_by_connection[0]) & set(ids_by_connection[1])


def test_gives_up_with_a_typed_one_line_error_after_consecutive_failures(
    replay_server_factory: Callable[..., object],
) -> None:
    server = replay_server_factory(speed=1.0)
    client = StreamClient(
        combined_stream_url(server.url, ["btcusdt"]),  # type: ignore[attr-defined]
        max_consecutive_failures=3,
        min_attempt_interval=0.05,
        backoff_base=0.05,
    )
    client.start()
    server.stop()  # type: ignore[attr-defined]
    deadline = time.monotonic() + 30
    while client.failure is None and time.monotonic() < deadline:
        time.sleep(0.05)
    client.stop()
    with pytest.raises(StreamUnavailableError) as caught:
        client.raise_if_failed()
    message = str(caught.value)
    assert "\n" not in message
    assert "connection refused" in message
    assert "3 attempts in a row failed" in message
    assert client.connections_opened == 1


@pytest.fixture
def http_403_server() -> Iterator[str]:
    """A plain HTTP server that refuses every request (like a proxy blocking websockets)."""

    class Refuse(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(403)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    yield f"ws://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()


@pytest.fixture
def silent_listener() -> Iterator[str]:
    """A socket that accepts TCP connections but never answers the handshake."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    yield f"ws://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


def test_connect_errors_say_what_went_wrong(
    http_403_server: str, silent_listener: str, unused_port_url: str
) -> None:
    cases = {
        unused_port_url: "connection refused",
        http_403_server: "HTTP 403 on the websocket upgrade",
        silent_listener: "timed out after 0.5 s",
        "ws://host.invalid:9443": "DNS lookup failed",
    }
    for url, expected in cases.items():
        with pytest.raises(StreamUnavailableError) as caught:
            connect(url + "/stream?streams=btcusdt@trade", timeout=0.5)
        assert expected in str(caught.value), url
        assert str(caught.value).startswith(f"cannot reach {url}: ")


def test_microsecond_frames_from_the_server_parse_to_the_same_records(
    replay_server_factory: Callable[..., object], recording_frames: list[str]
) -> None:
    server = replay_server_factory()
    url = combined_stream_url(server.url, ["btcusdt", "ethusdt"]) + "&timeUnit=MICROSECOND"  # type: ignore[attr-defined]
    client = StreamClient(url)
    client.start()
    try:
        frames = take(client, 300)
    finally:
        client.stop()
    symbols = frozenset({"BTCUSDT", "ETHUSDT"})
    micro = [json.loads(payload)["data"] for _, payload, _ in frames]
    assert all(data["T"] > 10**15 for data in micro)  # the server really sent microseconds
    parsed = [parse_frame(payload, 1_723_161_600_000, symbols) for _, payload, _ in frames]
    expected = [parse_frame(text, 1_723_161_600_000, symbols) for text in recording_frames[:300]]
    assert parsed == expected


def test_connection_reads_many_frames_per_socket_read_intact_and_in_order(
    replay_server_factory: Callable[..., object], recording_frames: list[str]
) -> None:
    server = replay_server_factory()
    ws = connect(combined_stream_url(server.url, ["btcusdt", "ethusdt"]), timeout=10)  # type: ignore[attr-defined]
    try:
        payloads = [ws.recv_data()[1]]
        time.sleep(0.5)  # the server keeps sending: the socket's receive buffer fills up
        reads_before = ws.socket_reads
        payloads += [ws.recv_data()[1] for _ in range(999)]
        reads = ws.socket_reads - reads_before
        payloads += [ws.recv_data()[1] for _ in range(len(recording_frames) - 1000)]
    finally:
        ws.close()
    # First lap: the server sends the recorded frames byte for byte.
    assert payloads == [frame.encode() for frame in recording_frames]
    # websocket-client alone makes 2-3 socket reads per frame (>= 2000 here).
    assert 1 <= reads <= 200


def test_connection_answers_pings_and_sees_the_close_frame(
    replay_server_factory: Callable[..., object],
) -> None:
    # The server drops a client that does not pong within pong_timeout, with a close frame.
    server = replay_server_factory(ping_interval=0.2, pong_timeout=0.5)
    ws = connect(combined_stream_url(server.url, ["btcusdt"]), timeout=10)  # type: ignore[attr-defined]
    pings = 0
    try:
        while pings < 8:  # 1.6 s: three times the pong timeout
            opcode, _ = ws.recv_data(control_frame=True)
            assert opcode != ABNF.OPCODE_CLOSE
            pings += opcode == ABNF.OPCODE_PING
    finally:
        ws.close()
    assert pings == 8

    # serverShutdown after 300 trades, then trades for shutdown_grace, then the close frame.
    server = replay_server_factory(shutdown_after=300, shutdown_grace=0.2, speed=1000.0)
    ws = connect(combined_stream_url(server.url, ["btcusdt", "ethusdt"]), timeout=10)  # type: ignore[attr-defined]
    frames: list[tuple[int, bytes]] = []
    try:
        while not frames or frames[-1][0] != ABNF.OPCODE_CLOSE:
            frames.append(ws.recv_data())
    finally:
        ws.close()
    texts = [json.loads(payload) for opcode, payload in frames[:-1]]
    assert {opcode for opcode, _ in frames[:-1]} == {ABNF.OPCODE_TEXT}
    assert texts[300]["stream"] == "!serverShutdown"
    assert all(text["data"]["e"] == "trade" for text in texts[:300] + texts[301:])


def test_buffered_connection_over_tls_delivers_intact_frames_and_times_out_when_quiet(
    replay_server_factory: Callable[..., object],
    tls_proxy: Callable[[str], str],
    recording_frames: list[str],
) -> None:
    server = replay_server_factory()
    url = combined_stream_url(tls_proxy(server.url), ["btcusdt", "ethusdt"])  # type: ignore[attr-defined]
    assert url.startswith("wss://")
    ws = connect(url, timeout=10)
    try:
        payloads = [ws.recv_data()[1]]
        time.sleep(0.5)  # the server keeps sending: the socket's receive buffer fills up
        reads_before = ws.socket_reads
        payloads += [ws.recv_data()[1] for _ in range(999)]
        reads = ws.socket_reads - reads_before
        payloads += [ws.recv_data()[1] for _ in range(len(recording_frames) - 1000)]
        # The recording has ended (no --loop): the stream goes quiet, the timeout fires.
        ws.settimeout(0.3)
        with pytest.raises(websocket.WebSocketTimeoutException):
            ws.recv_data()
    finally:
        ws.close()
    assert payloads == [frame.encode() for frame in recording_frames]
    # A read returns at most one TLS record (<= 16 KiB, sized by how the proxy forwards): some
    # hold several frames (websocket-client alone needs 2-3 reads for every frame).
    assert 1 <= reads < 1000
