"""The replay market: one shared timeline per server that publishes recorded events to subscribers.

Like a real exchange, the market does not wait for anybody at a finite speed: once the first
connection subscribes, it runs on the wall clock (the recording's receive-time clock divided by
``speed``) and a disconnected client misses trades. At ``speed=None`` ("max") it goes as fast as
the subscribed connections take frames and pauses while nobody is subscribed. Trades it has
published are kept (as positions, not copies, so ``--loop`` does not grow memory) for REST.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from crypto_assets.replay.frames import CORRUPTION_KINDS, FrameFormat, render_frame
from crypto_assets.replay.recording_feed import RecordedEvent, RecordedTrade, Recording

logger = logging.getLogger(__name__)

# At speed max the market waits once a subscriber holds this many unsent frames.
BACKLOG_HIGH_WATER = 2048
# At a finite speed a subscriber this far behind is a slow consumer and is disconnected.
BACKLOG_LIMIT = 200_000
# Yield to the event loop at least this often when nothing makes the market wait.
_YIELD_EVERY = 256


class Subscriber(Protocol):
    """What the market needs from a connection."""

    @property
    def streams(self) -> tuple[str, ...]: ...

    @property
    def frame_format(self) -> FrameFormat: ...

    def deliver(self, frame: bytes) -> int:
        """Queue a frame; return the number of frames waiting to be sent."""
        ...

    async def wait_drained(self) -> None:
        """Return once the backlog is low again (or the connection is gone)."""
        ...


@dataclass
class MarketStats:
    """What the market has done so far (read by tests and logs)."""

    events_published: int = 0
    trades_published: int = 0
    trades_withheld: int = 0
    trades_corrupted: int = 0
    laps_completed: int = 0
    finished: bool = False


@dataclass(frozen=True)
class PublishedTrade:
    """A trade as the market published it: lap-shifted id and time (ms)."""

    trade_id: int
    trade_time: int
    trade: RecordedTrade


class Market:
    """Publishes the recording's events on one clock to every connection subscribed to them."""

    def __init__(
        self,
        recording: Recording,
        *,
        speed: float | None,
        loop: bool,
        rebase_time: bool,
        corrupt_every: int | None,
        gap_every: int | None,
        first_lap: int = 0,
    ) -> None:
        self._recording = recording
        self._first_lap = first_lap
        self._speed = speed
        self._loop = loop
        self._rebase_time = rebase_time
        self._corrupt_every = corrupt_every
        self._gap_every = gap_every
        self.stats = MarketStats()
        self._subscribers: set[Subscriber] = set()
        self._by_stream: dict[str, list[Subscriber]] = {}
        self._has_subscribers = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._rebase_shift_ms = 0
        # Per symbol, positions (lap * trades per lap + index) of the published trades: from
        # the first lap's start (earlier laps were never published) up to this end.
        self._first_position = {s: first_lap * len(t.trades) for s, t in recording.symbols.items()}
        self._published: dict[str, int] = dict(self._first_position)

    @property
    def started(self) -> bool:
        """Whether the market clock is running (a connection has subscribed)."""
        return self._task is not None

    @property
    def symbols(self) -> Iterable[str]:
        """The symbols the recording trades (upper case, as REST spells them)."""
        return self._recording.symbols.keys()

    def update(self, subscriber: Subscriber) -> None:
        """Register a subscriber's current streams (empty: not subscribed); start the market."""
        if subscriber.streams:
            self._subscribers.add(subscriber)
        else:
            self._subscribers.discard(subscriber)
        self._reindex()
        if self._subscribers:
            self._has_subscribers.set()
            if self._task is None:
                self._task = asyncio.get_running_loop().create_task(self._run(), name="market")
        else:
            self._has_subscribers.clear()

    def remove(self, subscriber: Subscriber) -> None:
        """Forget a subscriber (its connection closed)."""
        self._subscribers.discard(subscriber)
        self._reindex()
        if not self._subscribers:
            self._has_subscribers.clear()

    async def stop(self) -> None:
        """Stop the clock; safe to call when it never started."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def published_trades(
        self, symbol: str, from_id: int | None, limit: int
    ) -> list[PublishedTrade]:
        """Up to ``limit`` published trades with id >= ``from_id`` (or the latest), ascending."""
        table = self._recording.symbols[symbol]
        count = len(table.trades)
        published = self._published[symbol]
        first = self._first_position[symbol]
        if from_id is None:
            start = max(first, published - limit)
        elif from_id < table.ids[0]:
            start = first
        else:
            lap = (from_id - table.ids[0]) // table.span
            start = max(first, lap * count + table.position_of(from_id - lap * table.span))
        rows = []
        for position in range(start, min(start + limit, published)):
            lap, index = divmod(position, count)
            trade = table.trades[index]
            rows.append(
                PublishedTrade(
                    trade.trade_id + lap * table.span,
                    trade.trade_time + self._time_shift(lap),
                    trade,
                )
            )
        return rows

    def _time_shift(self, lap: int) -> int:
        return lap * self._recording.lap_ms + self._rebase_shift_ms

    def _reindex(self) -> None:
        index: dict[str, list[Subscriber]] = {}
        for subscriber in self._subscribers:
            for stream in subscriber.streams:
                index.setdefault(stream, []).append(subscriber)
        self._by_stream = index

    async def _run(self) -> None:
        recording = self._recording
        first_lap = self._first_lap
        if self._rebase_time:
            # The first published trade (of lap `first_lap`) is at now.
            first_time = recording.first_trade_time + first_lap * recording.lap_ms
            self._rebase_shift_ms = int(time.time() * 1000) - first_time
        clock = asyncio.get_running_loop()
        started = clock.time()
        lap_ns = recording.lap_ms * 1_000_000
        first_ns = recording.first_recv_ns
        logger.info(
            "market open (speed %s, loop %s, first lap %s)",
            self._speed or "max",
            self._loop,
            first_lap,
        )
        last_lap = first_lap
        timeline = recording.timeline(self._loop, first_lap)
        for count, (lap, event) in enumerate(timeline, start=1):
            if lap != last_lap:
                last_lap = lap
                self.stats.laps_completed = lap - first_lap
                logger.info("recording lap %s starts", lap)
            if self._speed is None:
                await self._has_subscribers.wait()
            else:
                elapsed_ns = event.recv_ns - first_ns + (lap - first_lap) * lap_ns
                due = started + elapsed_ns / 1e9 / self._speed
                delay = due - clock.time()
                if delay > 0.0005:
                    await asyncio.sleep(delay)
            blocked = self._publish(lap, event)
            if blocked:
                await asyncio.gather(*(subscriber.wait_drained() for subscriber in blocked))
            elif count % _YIELD_EVERY == 0:
                await asyncio.sleep(0)
        self.stats.laps_completed += 1
        self.stats.finished = True
        logger.info("recording finished: the market stays open and quiet")

    def _publish(self, lap: int, event: RecordedEvent) -> list[Subscriber]:
        """Send one event to its subscribers; return those (at max speed) too far behind."""
        self.stats.events_published += 1
        corruption = None
        trade = event.trade
        id_shift = 0
        if trade is not None:
            table = self._recording.symbols[trade.symbol]
            id_shift = lap * table.span
            self._published[trade.symbol] = lap * len(table.trades) + event.position + 1
            self.stats.trades_published += 1
            ordinal = self.stats.trades_published
            if self._gap_every and ordinal % self._gap_every == 0:
                self.stats.trades_withheld += 1
                return []
            if self._corrupt_every and ordinal % self._corrupt_every == 0:
                self.stats.trades_corrupted += 1
                kind = ordinal // self._corrupt_every % len(CORRUPTION_KINDS)
                corruption = CORRUPTION_KINDS[kind]
        subscribers = self._by_stream.get(event.stream)
        if not subscribers:
            return []
        rendered: dict[FrameFormat, bytes] = {}
        blocked = []
        for subscriber in subscribers:
            frame_format = subscriber.frame_format
            frame = rendered.get(frame_format)
            if frame is None:
                frame = rendered[frame_format] = render_frame(
                    event,
                    frame_format,
                    time_shift_ms=self._time_shift(lap),
                    id_shift=id_shift,
                    corruption=corruption,
                )
            if subscriber.deliver(frame) >= BACKLOG_HIGH_WATER and self._speed is None:
                blocked.append(subscriber)
        return blocked
