"""The replay market: one shared timeline per server that publishes recorded events to subscribers.

Like a real exchange, the market does not wait for anybody at a finite speed: once the first
connection subscribes, it runs on the wall clock (the recording's receive-time clock divided by
``speed``) and a disconnected client misses trades. At ``speed=None`` ("max") it goes as fast as
the subscribed connections take frames and pauses while nobody is subscribed. Trades it has
published are kept (as positions, not copies, so ``--loop`` does not grow memory) for REST.

Faults can also be asked for while the market runs (`corrupt_next`, `withhold_next`): they apply
to the next trades it publishes. Trades withheld from REST too are remembered by id (a set that
grows only with the faults asked for) and never served: an unfillable gap.

The market can open mid-recording (``first_event`` of ``first_lap``: where an earlier run of the
market stopped). ``history_from`` makes REST serve a symbol's trades from an earlier id: trades the
market made before it opened, while nobody listened, which a resuming client back-fills.

With ``clock_time`` every published time is the wall clock at which the market publishes it:
recorded times are rebased to the market's start and divided by the speed, so at 10x a trade's
``T`` is about when it is sent (end-to-end lag stays measurable) and never runs ahead of the clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Mapping
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
    trades_hidden_from_rest: int = 0
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
        first_event: int = 0,
        history_from: Mapping[str, int] | None = None,
        clock_time: bool = False,
    ) -> None:
        if clock_time and speed is None:
            raise ValueError("clock_time needs a finite speed")
        if not 0 <= first_event < len(recording.events):
            raise ValueError(
                f"first_event must be within 0..{len(recording.events) - 1}, got {first_event}"
            )
        self._recording = recording
        self._clock_time = clock_time
        self._clock_origin_ms = 0
        self._first_lap = first_lap
        self._first_event = first_event
        # The recorded time of the first event published: time zero of the market's clock.
        self._origin_ms = recording.recorded_ms(recording.events[first_event])
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
        self._open = False  # the clock runs and the time shifts are set
        self._rebase_shift_ms = 0
        # Per symbol, positions (lap * trades per lap + index, see SymbolTrades.looped_position)
        # of the published trades: from where the market opens, or from `history_from` (the
        # trades it made before), up to this end.
        before = recording.trades_before(first_event)
        self._published: dict[str, int] = {
            s: first_lap * len(t.trades) + before[s] for s, t in recording.symbols.items()
        }
        self._first_position = dict(self._published)
        for symbol, trade_id in (history_from or {}).items():
            if symbol in self._first_position:
                position = recording.symbols[symbol].looped_position(trade_id)
                self._first_position[symbol] = max(0, min(position, self._published[symbol]))
        # Run-time faults: how many of the next trades to corrupt or withhold.
        self._corrupt_left = 0
        self._withhold_left = 0
        self._hide_left = 0
        self._hidden: dict[str, set[int]] = {}  # per symbol, ids REST must not serve either
        self._withheld_ids: dict[str, list[int]] = {}  # per symbol, ids withheld from streams

    def corrupt_next(self, count: int) -> None:
        """Send the next `count` trades malformed (REST still serves them); call on the loop."""
        self._corrupt_left += _at_least_one(count)

    def withhold_next(self, count: int, from_rest: bool = False) -> None:
        """Withhold the next `count` trades from the streams; `from_rest`: from REST too."""
        if from_rest:
            self._hide_left += _at_least_one(count)
        else:
            self._withhold_left += _at_least_one(count)

    def withheld_ids(self) -> dict[str, list[int]]:
        """Per symbol, the ids of trades withheld from the streams at run time so far."""
        return {symbol: list(ids) for symbol, ids in self._withheld_ids.items()}

    def hidden_ids(self) -> dict[str, set[int]]:
        """Per symbol, the ids withheld from REST too: never served, an unfillable gap."""
        return {symbol: set(ids) for symbol, ids in self._hidden.items()}

    def published_extent(self) -> dict[str, tuple[int, int]]:
        """Per symbol, the published positions ``[first, end)`` (lap * trades per lap + index)."""
        return {s: (self._first_position[s], end) for s, end in self._published.items()}

    def published_time(self, lap: int, recorded_ms: int) -> int:
        """The time (ms) the market gives a recorded time of lap `lap`."""
        return recorded_ms + self._time_shift(lap, recorded_ms)

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
        """Up to ``limit`` published trades with id >= ``from_id`` (or the latest), ascending.

        Nothing before the market opens: the times of its trades are set when it does.
        """
        if not self._open:
            return []
        table = self._recording.symbols[symbol]
        count = len(table.trades)
        published = self._published[symbol]
        first = self._first_position[symbol]
        if from_id is None:
            start = max(first, published - limit)
        else:
            start = max(first, table.looped_position(from_id))
        hidden = self._hidden.get(symbol, ())
        rows: list[PublishedTrade] = []
        position = start
        while position < published and len(rows) < limit:
            lap, index = divmod(position, count)
            position += 1
            trade = table.trades[index]
            trade_id = trade.trade_id + lap * table.span
            if trade_id in hidden:
                continue
            rows.append(PublishedTrade(trade_id, self.published_time(lap, trade.trade_time), trade))
        return rows

    def _time_shift(self, lap: int, recorded_ms: int) -> int:
        """How far a recorded time of lap `lap` moves (ms)."""
        if not self._clock_time:
            return lap * self._recording.lap_ms + self._rebase_shift_ms
        recording = self._recording
        elapsed = recorded_ms - self._origin_ms + (lap - self._first_lap) * recording.lap_ms
        assert self._speed is not None  # checked in __init__
        return self._clock_origin_ms + round(elapsed / self._speed) - recorded_ms

    def _reindex(self) -> None:
        index: dict[str, list[Subscriber]] = {}
        for subscriber in self._subscribers:
            for stream in subscriber.streams:
                index.setdefault(stream, []).append(subscriber)
        self._by_stream = index

    async def _run(self) -> None:
        recording = self._recording
        first_lap = self._first_lap
        self._clock_origin_ms = int(time.time() * 1000)
        if self._rebase_time:
            # The first event published (event `first_event` of lap `first_lap`) is at now.
            first_time = self._origin_ms + first_lap * recording.lap_ms
            self._rebase_shift_ms = int(time.time() * 1000) - first_time
        self._open = True
        clock = asyncio.get_running_loop()
        started = clock.time()
        lap_ns = recording.lap_ms * 1_000_000
        first_ns = recording.events[self._first_event].recv_ns
        logger.info(
            "market open (speed %s, loop %s, first lap %s, first event %s)",
            self._speed or "max",
            self._loop,
            first_lap,
            self._first_event,
        )
        last_lap = first_lap
        timeline = recording.timeline(self._loop, first_lap, self._first_event)
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
            if self._withheld(trade.symbol, trade.trade_id + id_shift, ordinal):
                return []
            if self._corrupt_every and ordinal % self._corrupt_every == 0:
                self.stats.trades_corrupted += 1
                kind = ordinal // self._corrupt_every % len(CORRUPTION_KINDS)
                corruption = CORRUPTION_KINDS[kind]
            elif self._corrupt_left:
                self._corrupt_left -= 1
                self.stats.trades_corrupted += 1
                corruption = CORRUPTION_KINDS[self._corrupt_left % len(CORRUPTION_KINDS)]
            time_shift = self._time_shift(lap, trade.trade_time)
        else:
            time_shift = self._time_shift(lap, self._recording.recorded_ms(event))
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
                    time_shift_ms=time_shift,
                    id_shift=id_shift,
                    corruption=corruption,
                )
            if subscriber.deliver(frame) >= BACKLOG_HIGH_WATER and self._speed is None:
                blocked.append(subscriber)
        return blocked

    def _withheld(self, symbol: str, trade_id: int, ordinal: int) -> bool:
        """Whether this trade is kept off the streams (and, when asked, off REST)."""
        if self._gap_every and ordinal % self._gap_every == 0:
            self.stats.trades_withheld += 1
            return True
        if self._hide_left:
            self._hide_left -= 1
            self._hidden.setdefault(symbol, set()).add(trade_id)
            self.stats.trades_hidden_from_rest += 1
        elif self._withhold_left:
            self._withhold_left -= 1
        else:
            return False
        self.stats.trades_withheld += 1
        self._withheld_ids.setdefault(symbol, []).append(trade_id)
        return True


def _at_least_one(count: int) -> int:
    if count < 1:
        raise ValueError(f"expected a count of at least 1, got {count}")
    return count
