"""Websocket transport for a Binance combined stream: connect, read, reconnect, rotate.

It knows nothing about the frames: one reader thread per connection appends
``(connection_id, payload_bytes, received_ms)`` to a deque that the caller drains in batches with
`take`. The caller polls (every `_POLL_SECONDS` while idle) rather than being woken per frame: a
wake-up per frame made the two threads trade the GIL several times per frame, which cost more
CPU than decoding the frame.
websocket-client answers the server's pings itself. A supervisor thread owns the connection's life:

- a connection that receives nothing for `silence_timeout` seconds (no trade, no ping: Binance
  pings every 20 s even when a market is quiet) is dead and replaced;
- reconnects back off exponentially with full jitter (reset after a connection that delivered
  frames), never faster than one attempt per `min_attempt_interval` (Binance allows 300 per 5 min);
- `max_consecutive_failures` failed attempts in a row end the client with `StreamUnavailableError`;
- rotation (``rotate()`` on ``serverShutdown``, or at `max_connection_age`, Binance drops
  connections at 24 h) opens the new connection first and closes the old one once the new one
  has delivered frames for `rotation_drain` seconds (or after `rotation_overlap`), so the old
  one's buffered frames are read: both deliver the same trades for a moment, the caller dedupes.
"""

from __future__ import annotations

import logging
import random
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Sequence
from urllib.parse import urlsplit

import websocket
from websocket import ABNF

from crypto_assets.errors import CryptoAssetsError

logger = logging.getLogger(__name__)

# (connection id, frame payload as received (UTF-8 bytes), receive time in epoch ms)
Frame = tuple[int, bytes, int]

# How long `take` sleeps between looks at an empty deque: the latency it adds to a quiet stream.
_POLL_SECONDS = 0.005

# Bytes asked of the socket per read by `_BufferedWebSocket`: many frames per syscall at full speed.
_READ_CHUNK = 65536


# What a user can do when the websocket endpoint cannot be reached: the one wording everywhere.
UNREACHABLE_ADVICE = "check --ws-url/BINANCE_WS_URL, or set CRYPTO_SOURCE=replay"


class StreamUnavailableError(CryptoAssetsError):
    """The stream cannot be reached (or was lost for good); the message says why and what to do."""


def combined_stream_url(base_url: str, pairs: Sequence[str]) -> str:
    """``<base>/stream?streams=btcusdt@trade/ethusdt@trade`` for lower-case `pairs`."""
    streams = "/".join(f"{pair.lower()}@trade" for pair in pairs)
    return f"{base_url.rstrip('/')}/stream?streams={streams}"


def describe_connect_error(exc: BaseException, timeout: float) -> str:
    """Why a websocket connection attempt failed, in a few words."""
    if isinstance(exc, websocket.WebSocketBadStatusException):
        return (
            f"HTTP {exc.status_code} on the websocket upgrade "
            "(wrong URL, or a proxy/firewall blocking websockets)"
        )
    if isinstance(exc, websocket.WebSocketAddressException | socket.gaierror):
        return "DNS lookup failed (unknown host or no network)"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (nothing listening on that host and port)"
    if isinstance(exc, websocket.WebSocketTimeoutException | TimeoutError | socket.timeout):
        return f"timed out after {timeout:g} s (network blocked or host unreachable)"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error ({exc.reason or exc})"
    if isinstance(exc, ConnectionError | OSError):
        return f"network error ({exc.strerror or exc})"
    return f"{type(exc).__name__}: {exc}"


def connect(url: str, timeout: float) -> websocket.WebSocket:
    """Open one websocket; any failure becomes `StreamUnavailableError` naming the cause."""
    try:
        # UTF-8 is checked once, by the JSON decoder: websocket-client's own check is pure
        # Python and took ~70% of the receive time.
        return websocket.create_connection(
            url,
            timeout=timeout,
            class_=_BufferedWebSocket,
            enable_multithread=True,
            skip_utf8_validation=True,
        )
    except (websocket.WebSocketException, OSError) as exc:
        raise StreamUnavailableError(
            f"cannot reach {_display(url)}: {describe_connect_error(exc, timeout)}"
        ) from exc


class _BufferedWebSocket(websocket.WebSocket):
    """A websocket-client connection that reads the socket in 64 KiB chunks.

    websocket-client parses each frame with 2-3 exact-size reads (header, length, payload), each a
    socket recv: measured 7.4 us CPU/frame receiving from the replay server, 5.7 us when these
    reads are served from one large read. Everything else (TLS, ping -> pong, close frames, the
    timeout) is websocket-client's own: the socket is only asked for bytes once the buffer is
    empty, so the socket timeout still means "no bytes for that long".
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._buffer = b""
        self._offset = 0
        self.socket_reads = 0  # how many socket reads served the frames so far

    def _recv(self, bufsize: int) -> bytes:
        # The frame parser asks for exact sizes and loops on short reads (frame_buffer.recv_strict).
        buffer, start = self._buffer, self._offset
        end = start + bufsize
        if end <= len(buffer):
            self._offset = end
            return buffer[start:end]
        if start < len(buffer):
            self._offset = len(buffer)
            return buffer[start:]
        chunk = super()._recv(_READ_CHUNK)
        self.socket_reads += 1
        if len(chunk) <= bufsize:
            self._buffer, self._offset = b"", 0
            return chunk
        self._buffer, self._offset = chunk, bufsize
        return chunk[:bufsize]


def _display(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class _Connection:
    """One websocket and its reader thread."""

    __slots__ = ("done", "first_frame_at", "frames", "id", "opened_at", "reason", "thread", "ws")

    def __init__(self, connection_id: int, ws: websocket.WebSocket) -> None:
        self.id = connection_id
        self.ws = ws
        self.opened_at = time.monotonic()
        self.frames = 0
        self.first_frame_at: float | None = None
        self.done = threading.Event()
        self.reason = ""
        self.thread: threading.Thread | None = None

    def close(self) -> None:
        # abort() shuts the socket down, which wakes the reader blocked in recv().
        self.ws.abort()


class StreamClient:
    """A self-healing websocket subscription; `take` returns frames as (connection, bytes, ms)."""

    def __init__(
        self,
        url: str,
        *,
        silence_timeout: float = 60.0,
        max_connection_age: float = 23.5 * 3600,
        connect_timeout: float = 10.0,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        min_attempt_interval: float = 1.0,
        max_consecutive_failures: int = 10,
        rotation_overlap: float = 5.0,
        rotation_drain: float = 1.0,
        max_queued_frames: int = 100_000,
    ) -> None:
        self.url = url
        self.silence_timeout = silence_timeout
        self.max_connection_age = max_connection_age
        self.connect_timeout = connect_timeout
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.min_attempt_interval = min_attempt_interval
        self.max_consecutive_failures = max_consecutive_failures
        self.rotation_overlap = rotation_overlap
        self.rotation_drain = rotation_drain
        self.max_queued_frames = max_queued_frames
        # Reader threads append, one consumer pops: both are atomic on a deque, no lock needed.
        self._frames: deque[Frame] = deque()
        self.connections_opened = 0
        self.reconnects = 0
        self.rotations = 0
        self.failure: StreamUnavailableError | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._rotate_requested = False
        self._lock = threading.Lock()
        self._active: _Connection | None = None
        self._retiring: list[_Connection] = []
        self._next_id = 0
        self._last_attempt = float("-inf")
        self._last_error = ""
        self._supervisor: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """True between start() and stop() while the client has not given up."""
        return self._supervisor is not None and self._supervisor.is_alive()

    def start(self) -> None:
        """Connect once in the caller's thread (failing fast), then supervise in the background."""
        if self._supervisor is not None:
            raise RuntimeError("StreamClient.start() called twice")
        self._stop.clear()
        self._active = self._open()
        self._supervisor = threading.Thread(
            target=self._supervise, name="stream-supervisor", daemon=True
        )
        self._supervisor.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Close every connection and wait for the threads; safe to call more than once."""
        self._stop.set()
        self._wake.set()
        with self._lock:
            connections = [c for c in (self._active, *self._retiring) if c is not None]
        for connection in connections:
            connection.close()
        if self._supervisor is not None:
            self._supervisor.join(timeout)
        for connection in connections:
            if connection.thread is not None:
                connection.thread.join(timeout)
            connection.ws.shutdown()

    def rotate(self, connection_id: int | None = None) -> None:
        """Replace the connection (after ``serverShutdown`` on `connection_id`), overlapping."""
        active = self._active
        if connection_id is not None and (active is None or active.id != connection_id):
            return  # an old connection announcing its own end: already being replaced
        self._rotate_requested = True
        self._wake.set()

    @property
    def queued(self) -> int:
        """Frames received and not yet taken."""
        return len(self._frames)

    def take(self, max_frames: int, timeout: float) -> list[Frame]:
        """Up to `max_frames` received frames, oldest first; waits up to `timeout` s for one.

        Only one thread may take: it relies on every queued frame still being there when it pops.
        """
        frames = self._frames
        if not frames:
            deadline = time.monotonic() + timeout
            while not frames:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                time.sleep(min(_POLL_SECONDS, remaining))
        popleft = frames.popleft
        return [popleft() for _ in range(min(len(frames), max_frames))]

    def raise_if_failed(self) -> None:
        """Raise the `StreamUnavailableError` that ended the client, if any."""
        if self.failure is not None:
            raise self.failure

    def _open(self) -> _Connection:
        wait = self._last_attempt + self.min_attempt_interval - time.monotonic()
        if wait > 0:
            self._stop.wait(wait)
        self._last_attempt = time.monotonic()
        ws = connect(self.url, self.connect_timeout)
        if self._stop.is_set():  # stop() ran while we were connecting: do not leak a reader
            ws.shutdown()
            raise StreamUnavailableError(f"{_display(self.url)}: client stopped while connecting")
        # recv() times out after this long without bytes: the silence watchdog.
        ws.settimeout(self.silence_timeout)
        connection = _Connection(self._next_id, ws)
        self._next_id += 1
        connection.thread = threading.Thread(
            target=self._read,
            args=(connection,),
            name=f"stream-reader-{connection.id}",
            daemon=True,
        )
        self.connections_opened += 1
        connection.thread.start()
        logger.info("connected to %s (connection %s)", _display(self.url), connection.id)
        return connection

    def _read(self, connection: _Connection) -> None:
        ws = connection.ws
        # Per-frame path: locals instead of attribute lookups (it runs ~100,000 times a second).
        recv_data = ws.recv_data
        connection_id = connection.id
        close = ABNF.OPCODE_CLOSE
        time_ns = time.time_ns
        frames = self._frames
        append = frames.append
        limit = self.max_queued_frames
        stop = self._stop
        try:
            while not stop.is_set():
                opcode, payload = recv_data()
                if opcode == close:
                    connection.reason = "closed by the server"
                    break
                append((connection_id, payload, time_ns() // 1_000_000))
                if not connection.frames:
                    connection.first_frame_at = time.monotonic()
                connection.frames += 1
                while len(frames) > limit and not stop.is_set():
                    time.sleep(0.005)  # back-pressure: the consumer is behind; stop reading
        except websocket.WebSocketTimeoutException:
            connection.reason = f"no frame for {self.silence_timeout:g} s"
        except (websocket.WebSocketException, OSError) as exc:
            connection.reason = f"connection lost ({type(exc).__name__}: {exc})"
        finally:
            ws.shutdown()
            connection.done.set()
            self._wake.set()

    def _supervise(self) -> None:
        # Attempts in a row that did not give a connection delivering frames.
        failures = 0
        while not self._stop.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            if self._stop.is_set():
                break
            self._retire_replaced()
            active = self._active
            if active is not None and active.done.is_set():
                logger.warning("connection %s ended: %s", active.id, active.reason)
                with self._lock:
                    self._active = None
                failures = 0 if active.frames > 0 else failures + 1
                active = None
            if active is None:
                if failures >= self.max_consecutive_failures:
                    self._give_up(failures)
                    break
                try:
                    self._reconnect(failures)
                except StreamUnavailableError as exc:
                    failures += 1
                    self._last_error = str(exc)
                    logger.warning("reconnect attempt failed (%s in a row): %s", failures, exc)
                    self._wake.set()
                continue
            if (
                self._rotate_requested
                or time.monotonic() - active.opened_at >= self.max_connection_age
            ):
                self._rotate(active)

    def _give_up(self, failures: int) -> None:
        cause = self._last_error or f"cannot keep a connection to {_display(self.url)} open"
        self.failure = StreamUnavailableError(
            f"{cause} ({failures} attempts in a row failed) — {UNREACHABLE_ADVICE}"
        )
        logger.error("%s", self.failure)
        self._wake.set()

    def _reconnect(self, failures: int) -> None:
        if failures:
            delay = random.uniform(0, min(self.backoff_cap, self.backoff_base * 2**failures))
            if self._stop.wait(delay):
                return
        connection = self._open()
        with self._lock:
            self._active = connection
        self._rotate_requested = False
        self.reconnects += 1

    def _rotate(self, old: _Connection) -> None:
        self._rotate_requested = False
        try:
            new = self._open()
        except StreamUnavailableError as exc:
            logger.warning("rotation of connection %s failed, keeping it: %s", old.id, exc)
            return
        with self._lock:
            self._active = new
            self._retiring.append(old)
        self.rotations += 1
        logger.info("rotating connection %s -> %s", old.id, new.id)

    def _retire_replaced(self) -> None:
        active = self._active
        if not self._retiring or active is None:
            return
        now = time.monotonic()
        # The old connection keeps reading until the new one has delivered frames for a while,
        # so whatever the old one had buffered is read, not lost; the overlap is deduped later.
        drained = (
            active.first_frame_at is not None and now - active.first_frame_at >= self.rotation_drain
        )
        if not (drained or now - active.opened_at >= self.rotation_overlap or active.done.is_set()):
            return
        with self._lock:
            retiring, self._retiring = self._retiring, []
        for connection in retiring:
            connection.close()
            logger.info("closed replaced connection %s", connection.id)
