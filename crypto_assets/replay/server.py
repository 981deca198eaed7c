"""The offline Binance replay server: recorded frames over websocket plus REST, one host:port.

Endpoints, as on Binance: ``/stream?streams=a/b`` (combined frames), ``/ws/<stream>`` and
``/ws`` (raw payloads), ``timeUnit=MICROSECOND``; ``GET /api/v3/historicalTrades`` and
``/api/v3/ping`` over plain HTTP on the same port. The asyncio loop runs in a background
thread between `ReplayServer.start` and `ReplayServer.stop`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from crypto_assets.errors import CryptoAssetsError
from crypto_assets.replay.control import normalize_stream
from crypto_assets.replay.frames import FrameFormat
from crypto_assets.replay.market import Market, MarketStats
from crypto_assets.replay.recording_feed import Recording, load_recordings
from crypto_assets.replay.rest import handle_rest, is_rest_path
from crypto_assets.replay.session import ConnectionStats, SessionFaults, StreamSession

logger = logging.getLogger(__name__)
T = TypeVar("T")

_START_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 15.0
_MAX_INCOMING_MESSAGE_BYTES = 64 * 1024
# A client that keeps its socket open after a REST answer or a close frame holds a server task
# this long; the default 10 s would make every stop() that slow.
_CLOSE_TIMEOUT_S = 2.0
_NOTICE_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class ReplayOptions:
    """Everything the replay server can be told; see ``crypto-assets replay-server --help``."""

    recordings: tuple[Path, ...]
    host: str = "127.0.0.1"
    port: int = 0  # 0: the OS picks a free port
    speed: float | None = 1.0  # None: as fast as subscribers take frames
    loop: bool = False
    rebase_time: bool = False
    drop_after: int | None = None  # per connection: abort (no close frame) after N frames
    shutdown_after: int | None = None  # per connection: serverShutdown after N frames
    shutdown_grace: float = 1.0  # seconds of streaming between serverShutdown and the close
    corrupt_every: int | None = None  # every Nth trade is sent malformed (REST still has it)
    gap_every: int | None = None  # every Nth trade is withheld from streams (REST has it)
    ping_interval: float = 20.0
    pong_timeout: float = 60.0
    max_incoming_per_second: int = 5
    max_connection_age: float | None = None  # seconds; Binance closes connections after 24 h
    # The market starts at this lap, as --loop would publish it: ids + N * span, times + N laps.
    first_lap: int = 0
    # No flags for these two; the in-process continuation (crypto_assets.replay.continuation) sets
    # them: the market opens at this event of its first lap, and REST serves each symbol's trades
    # from this id on (the market's past, made while nobody listened).
    first_event: int = 0
    history_from: Mapping[str, int] = field(default_factory=dict)
    # Every time the wall clock at publication: rebased, and divided by the speed.
    clock_time: bool = False

    def __post_init__(self) -> None:
        if self.speed is not None and not self.speed > 0:
            raise CryptoAssetsError(f"speed must be positive or max, got {self.speed}")
        for name in ("drop_after", "shutdown_after", "corrupt_every", "gap_every"):
            value = getattr(self, name)
            if value is not None and value < 1:
                flag = "--" + name.replace("_", "-")
                raise CryptoAssetsError(f"{name} ({flag}) must be at least 1, got {value}")
        if not 0 <= self.port <= 65535:
            raise CryptoAssetsError(f"port must be within 0..65535, got {self.port}")
        for name in ("ping_interval", "pong_timeout", "shutdown_grace", "max_connection_age"):
            if getattr(self, name) is not None and not getattr(self, name) > 0:
                raise CryptoAssetsError(f"{name} must be positive, got {getattr(self, name)}")
        if self.max_incoming_per_second < 1:
            raise CryptoAssetsError("max_incoming_per_second must be at least 1")
        if self.clock_time and self.speed is None:
            raise CryptoAssetsError("clock_time (--clock-time) needs a finite --speed, not max")
        if self.first_lap < 0:
            raise CryptoAssetsError(
                f"first_lap (--first-lap) must be 0 or more, got {self.first_lap}"
            )
        if self.first_event < 0:
            raise CryptoAssetsError(f"first_event must be 0 or more, got {self.first_event}")


@dataclass(frozen=True)
class ReplayStats:
    """A snapshot of what the server has done: connections, frames and faults."""

    market: MarketStats
    connections: ConnectionStats


@dataclass(frozen=True)
class StreamRoute:
    """A websocket request path: initial streams, envelope and time unit."""

    streams: tuple[str, ...]
    frame_format: FrameFormat


def parse_stream_path(target: str) -> StreamRoute | None:
    """Route ``/stream?streams=..``, ``/ws`` or ``/ws/<stream>[/<stream>..]``; None: unknown."""
    parts = urlsplit(target)
    query = parse_qs(parts.query)
    micro = any(value.lower() == "microsecond" for value in query.get("timeUnit", []))
    if parts.path in ("/stream", "/stream/"):
        names = "/".join(query.get("streams", [])).split("/")
        combined = True
    elif parts.path == "/ws" or parts.path.startswith("/ws/"):
        names = parts.path[len("/ws") :].split("/")
        combined = False
    else:
        return None
    streams = tuple(dict.fromkeys(normalize_stream(name) for name in names if name))
    return StreamRoute(streams, FrameFormat(combined=combined, micro=micro))


class ReplayServer:
    """Serves a recording like Binance does, in a background thread with an asyncio loop."""

    def __init__(self, options: ReplayOptions, recording: Recording | None = None) -> None:
        """`recording`: `options.recordings` already loaded (saves loading them again)."""
        self.options = options
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested: asyncio.Event | None = None
        self._startup_error: BaseException | None = None
        self._market: Market | None = None
        self._connection_stats = ConnectionStats()
        self._sessions: set[StreamSession] = set()
        self._port: int | None = None
        self._recording = recording

    @property
    def port(self) -> int:
        """The port actually listened on (resolved when ``options.port`` is 0)."""
        if self._port is None:
            raise RuntimeError("the replay server is not started")
        return self._port

    @property
    def url(self) -> str:
        """The websocket base URL, e.g. ``ws://127.0.0.1:9443``."""
        return f"ws://{self._host_in_url}:{self.port}"

    @property
    def rest_url(self) -> str:
        """The REST base URL on the same host and port."""
        return f"http://{self._host_in_url}:{self.port}"

    @property
    def _host_in_url(self) -> str:
        host = self.options.host
        return f"[{host}]" if ":" in host else host

    @property
    def stats(self) -> ReplayStats:
        """A copy of the counters, safe to read from any thread."""
        market = self._market.stats if self._market else MarketStats()
        return ReplayStats(dataclasses.replace(market), dataclasses.replace(self._connection_stats))

    # Faults asked for at run time, from any thread; each applies at once, on the server's loop.

    def drop_connections(self) -> int:
        """Abort every stream connection now, no close frame; the number dropped."""
        return self._on_loop(lambda: sum(session.drop_now() for session in list(self._sessions)))

    def send_server_shutdown(self) -> int:
        """Send serverShutdown on every connection now, then close each after the grace."""
        return self._on_loop(
            lambda: sum(session.shutdown_now() for session in list(self._sessions))
        )

    def corrupt_next(self, count: int) -> None:
        """Send the next `count` trades malformed (REST serves them as they are)."""
        self._on_loop(lambda: self._running_market().corrupt_next(count))

    def withhold_next(self, count: int, from_rest: bool = False) -> None:
        """Keep the next `count` trades off the streams; `from_rest`: off REST too (unfillable)."""
        self._on_loop(lambda: self._running_market().withhold_next(count, from_rest))

    @property
    def market(self) -> Market:
        """The market (read its ledger, e.g. `hidden_ids`, through `on_loop`)."""
        return self._running_market()

    def on_loop(self, call: Callable[[], T]) -> T:
        """Run `call` on the server's event loop and return its result (thread-safe reads)."""
        return self._on_loop(call)

    def _running_market(self) -> Market:
        if self._market is None:
            raise RuntimeError("the replay server is not started")
        return self._market

    def _on_loop(self, call: Callable[[], T]) -> T:
        loop = self._loop
        if loop is None or self._thread is None or not self._thread.is_alive():
            raise RuntimeError("the replay server is not running")

        async def run() -> T:
            return call()

        return asyncio.run_coroutine_threadsafe(run(), loop).result(_START_TIMEOUT_S)

    def start(self) -> None:
        """Load the recordings, listen, and return once connections are accepted."""
        if self._thread is not None:
            raise RuntimeError("the replay server was already started")
        recording = self._recording or load_recordings(self.options.recordings)
        self._recording = recording
        self._thread = threading.Thread(target=self._thread_main, name="replay-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT_S):
            raise CryptoAssetsError("the replay server did not start within 30 s")
        if self._startup_error is not None:
            self._thread.join()
            raise self._startup_error
        logger.info(
            "replay server on %s: %s events, %s trades",
            self.url,
            len(recording.events),
            recording.trade_count,
        )

    def stop(self) -> None:
        """Close every connection and the listener, then join the thread; idempotent."""
        thread, loop, stop_requested = self._thread, self._loop, self._stop_requested
        if thread is None or not thread.is_alive():
            return
        if loop is not None and stop_requested is not None:
            loop.call_soon_threadsafe(stop_requested.set)
        thread.join(_STOP_TIMEOUT_S)
        if thread.is_alive():
            logger.warning("the replay server thread did not stop within %s s", _STOP_TIMEOUT_S)

    def serve_until_stopped(self, stop_event: threading.Event) -> None:
        """Start (if needed), serve until ``stop_event`` is set, then stop."""
        if self._thread is None:
            self.start()
        try:
            while not stop_event.wait(0.5):
                if self._thread is not None and not self._thread.is_alive():
                    raise CryptoAssetsError("the replay server stopped unexpectedly")
        finally:
            self.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # surfaced by start() or logged: the thread must not vanish
            if not self._ready.is_set():
                self._startup_error = exc
                self._ready.set()
            else:
                logger.exception("the replay server failed")

    async def _main(self) -> None:
        options = self.options
        assert self._recording is not None  # loaded by start()
        self._loop = asyncio.get_running_loop()
        self._stop_requested = asyncio.Event()
        self._market = Market(
            self._recording,
            speed=options.speed,
            loop=options.loop,
            rebase_time=options.rebase_time,
            corrupt_every=options.corrupt_every,
            gap_every=options.gap_every,
            first_lap=options.first_lap,
            first_event=options.first_event,
            history_from=options.history_from,
            clock_time=options.clock_time,
        )
        try:
            server = await serve(
                self._handle,
                options.host,
                options.port,
                process_request=self._process_request,
                compression=None,  # Binance streams are uncompressed unless asked
                ping_interval=options.ping_interval,
                ping_timeout=options.pong_timeout,
                close_timeout=_CLOSE_TIMEOUT_S,
                max_size=_MAX_INCOMING_MESSAGE_BYTES,
                logger=_websockets_logger(),
            )
        except OSError as exc:
            raise CryptoAssetsError(
                f"cannot listen on {options.host}:{options.port}: {exc.strerror or exc}"
            ) from exc
        self._port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await self._stop_requested.wait()
        finally:
            await self._shutdown(server)

    async def _shutdown(self, server: Server) -> None:
        # Like Binance before a planned shutdown: tell every client, then close (1001).
        notices = [session.notify_shutdown() for session in self._sessions]
        if notices:
            await asyncio.wait(
                [asyncio.ensure_future(notice) for notice in notices], timeout=_NOTICE_TIMEOUT_S
            )
        server.close(close_connections=True)
        if self._market is not None:
            await self._market.stop()
        await server.wait_closed()
        logger.info("replay server on port %s stopped", self._port)

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        if is_rest_path(parts.path):
            assert self._market is not None
            status, body = handle_rest(self._market, parts.path, parts.query)
            return _json_response(status, body)
        if parse_stream_path(request.path) is None:
            return connection.respond(404, "Not Found\n")
        return None

    async def _handle(self, websocket: ServerConnection) -> None:
        route = parse_stream_path(websocket.request.path)
        assert route is not None
        assert self._market is not None
        options = self.options
        session = StreamSession(
            websocket,
            self._market,
            streams=route.streams,
            frame_format=route.frame_format,
            faults=SessionFaults(
                options.drop_after,
                options.shutdown_after,
                options.shutdown_grace,
                options.max_connection_age,
            ),
            max_incoming_per_second=options.max_incoming_per_second,
            stats=self._connection_stats,
        )
        self._sessions.add(session)
        try:
            await session.run()
        finally:
            self._sessions.discard(session)


def _websockets_logger() -> logging.Logger:
    """The websockets library's logger for this server, quiet below WARNING unless configured.

    It logs every REST answer as a "connection rejected (200 OK)" at INFO, which misleads; our
    sessions log what matters about connections.
    """
    websockets_logger = logging.getLogger(f"{__name__}.websockets")
    if websockets_logger.level == logging.NOTSET:
        websockets_logger.setLevel(logging.WARNING)
    return websockets_logger


def _json_response(status: int, body: bytes) -> Response:
    headers = Headers(
        [
            ("Date", formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Type", "application/json;charset=UTF-8"),
            ("Content-Length", str(len(body))),
        ]
    )
    return Response(status, HTTPStatus(status).phrase, headers, body)
