"""One client connection to the replay server: its subscriptions, outgoing queue and faults.

The market queues frames with `deliver`; a sender task writes them to the socket. Incoming
text messages are Binance control requests, rate limited like Binance (more than
``max_incoming_per_second`` in one second disconnects). Pings and pongs are answered inside
the websockets library, which does not show them to us, so only data messages are counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from dataclasses import dataclass

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode

from crypto_assets.replay.control import handle_control
from crypto_assets.replay.frames import FrameFormat, server_shutdown_frame
from crypto_assets.replay.market import BACKLOG_HIGH_WATER, BACKLOG_LIMIT, Market

logger = logging.getLogger(__name__)

_BACKLOG_LOW_WATER = BACKLOG_HIGH_WATER // 4
# Frames written per send_context: amortises the per-write drain without hogging the loop.
_SEND_BATCH = 64


@dataclass(frozen=True)
class SessionFaults:
    """Per-connection fault injection (None: off)."""

    drop_after: int | None = None
    shutdown_after: int | None = None
    shutdown_grace: float = 1.0
    max_age: float | None = None  # seconds before the server closes the connection


@dataclass
class ConnectionStats:
    """Server-wide connection counters, shared by every session."""

    connections_opened: int = 0
    connections_open: int = 0
    frames_sent: int = 0
    connections_dropped: int = 0
    shutdowns_sent: int = 0
    rate_limited: int = 0
    slow_consumers: int = 0
    requests_answered: int = 0


class StreamSession:
    """A client's stream connection, from handshake to close."""

    def __init__(
        self,
        websocket: ServerConnection,
        market: Market,
        *,
        streams: tuple[str, ...],
        frame_format: FrameFormat,
        faults: SessionFaults,
        max_incoming_per_second: int,
        stats: ConnectionStats,
    ) -> None:
        self._ws = websocket
        self._market = market
        self._streams = streams
        self._frame_format = frame_format
        self._faults = faults
        self._max_incoming = max_incoming_per_second
        self._stats = stats
        self._queue: deque[bytes] = deque()
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._incoming: deque[float] = deque()
        self._frames_sent = 0
        self._closing = False
        self._shutdown_noticed = False
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def streams(self) -> tuple[str, ...]:
        """Streams this connection is subscribed to, in subscription order."""
        return self._streams

    @property
    def frame_format(self) -> FrameFormat:
        """How this connection wants its frames."""
        return self._frame_format

    def deliver(self, frame: bytes) -> int:
        """Queue one frame for sending; return the backlog."""
        queue = self._queue
        queue.append(frame)
        backlog = len(queue)
        if backlog == 1:
            self._wake.set()
        if backlog >= BACKLOG_HIGH_WATER:
            self._drained.clear()
            if backlog >= BACKLOG_LIMIT and not self._closing:
                self._stats.slow_consumers += 1
                logger.warning("disconnecting a slow consumer (%s frames behind)", backlog)
                self._begin_close(CloseCode.POLICY_VIOLATION, "Too slow")
        return backlog

    async def wait_drained(self) -> None:
        """Return once the backlog is low again or the connection is closing."""
        await self._drained.wait()

    async def notify_shutdown(self) -> None:
        """Send Binance's serverShutdown notice now, ahead of any queued frames."""
        notice = server_shutdown_frame(int(time.time() * 1000), self._frame_format)
        self._closing = True
        self._queue.clear()  # the server is going away: the notice is the last frame
        with contextlib.suppress(ConnectionClosed):
            await self._ws.send(notice, text=True)
        self._stats.shutdowns_sent += 1

    def drop_now(self) -> bool:
        """Abort the connection now, without a close frame (a network failure); False if closing."""
        if self._closing:
            return False
        self._closing = True
        self._stats.connections_dropped += 1
        self._ws.transport.abort()
        return True

    def shutdown_now(self) -> bool:
        """Send serverShutdown ahead of queued frames, close after the grace; False if closing."""
        if self._closing or self._shutdown_noticed:
            return False
        self._announce_shutdown()
        return True

    async def run(self) -> None:
        """Serve the connection until it closes."""
        self._stats.connections_opened += 1
        self._stats.connections_open += 1
        logger.debug("connection from %s: %s", self._ws.remote_address, self._streams)
        loop = asyncio.get_running_loop()
        sender = loop.create_task(self._send_loop(), name="replay-sender")
        expiry = None
        if self._faults.max_age is not None:
            expiry = loop.call_later(
                self._faults.max_age, self._begin_close, CloseCode.GOING_AWAY, "Connection expired"
            )
        try:
            if self._streams:
                self._market.update(self)
            async for message in self._ws:
                if self._over_rate_limit():
                    self._stats.rate_limited += 1
                    logger.info("disconnecting a client sending over %s msg/s", self._max_incoming)
                    await self._ws.close(CloseCode.POLICY_VIOLATION, "Too many requests")
                    break
                await self._answer(message)
        except ConnectionClosed:
            pass
        finally:
            self._closing = True
            if expiry is not None:
                expiry.cancel()
            self._drained.set()
            self._market.remove(self)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
            self._stats.connections_open -= 1

    def _over_rate_limit(self) -> bool:
        now = time.monotonic()
        incoming = self._incoming
        incoming.append(now)
        while incoming[0] <= now - 1.0:
            incoming.popleft()
        return len(incoming) > self._max_incoming

    async def _answer(self, message: str | bytes) -> None:
        text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
        outcome = handle_control(text, self._streams, self._frame_format.combined)
        changed = outcome.streams != self._streams
        self._streams = outcome.streams
        self._frame_format = self._frame_format._replace(combined=outcome.combined)
        self._stats.requests_answered += 1
        await self._ws.send(json.dumps(outcome.reply, separators=(",", ":")))
        if changed:
            self._market.update(self)

    async def _send_loop(self) -> None:
        queue = self._queue
        ws = self._ws
        try:
            while True:
                if not queue:
                    self._drained.set()
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                batch = [queue.popleft() for _ in range(min(len(queue), self._batch_limit()))]
                async with ws.send_context():
                    for frame in batch:
                        ws.protocol.send_text(frame)
                self._frames_sent += len(batch)
                self._stats.frames_sent += len(batch)
                if len(queue) < _BACKLOG_LOW_WATER:
                    self._drained.set()
                self._after_frames()
        except ConnectionClosed:
            self._drained.set()

    def _batch_limit(self) -> int:
        """Never overshoot a fault threshold inside one batch."""
        limit = _SEND_BATCH
        for threshold in (self._faults.drop_after, self._faults.shutdown_after):
            if threshold is not None and self._frames_sent < threshold:
                limit = min(limit, threshold - self._frames_sent)
        return limit

    def _after_frames(self) -> None:
        faults = self._faults
        if faults.drop_after is not None and self._frames_sent >= faults.drop_after:
            if self.drop_now():
                logger.info("dropped a connection after %s frames (fault)", self._frames_sent)
            return
        shutdown_after = faults.shutdown_after
        if (
            shutdown_after is not None
            and self._frames_sent >= shutdown_after
            and not self._shutdown_noticed
        ):
            self._announce_shutdown()

    def _announce_shutdown(self) -> None:
        self._shutdown_noticed = True
        self._stats.shutdowns_sent += 1
        # Queued first, not sent at once: with shutdown_after it follows exactly N frames.
        now_ms = int(time.time() * 1000)
        self._queue.appendleft(server_shutdown_frame(now_ms, self._frame_format))
        self._wake.set()
        loop = asyncio.get_running_loop()
        loop.call_later(
            self._faults.shutdown_grace, self._begin_close, CloseCode.GOING_AWAY, "Server shutdown"
        )

    def _begin_close(self, code: int, reason: str) -> None:
        self._closing = True
        task = asyncio.get_running_loop().create_task(self._ws.close(code, reason))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
