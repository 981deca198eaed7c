"""Recorded Binance frames, loaded and merged into one timeline the replay market can loop.

A recording line is ``<local receive ns> <combined frame json>``, as written by hftbacktest's
collector, e.g.::

    1723161254087896568 {"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,...}}

Lines that are valid JSON but not stream frames (the REST depth snapshot
``{"lastUpdateId":...}`` the collector writes first) are skipped.
"""

from __future__ import annotations

import gzip
import json
import logging
import math
import zlib
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from crypto_assets.errors import CryptoAssetsError

logger = logging.getLogger(__name__)

_FRAME_START = '{"stream":"'
# The pause between the last event of a lap and the first of the next, so that every
# timestamp of lap k+1 is later than every timestamp of lap k.
LAP_PAUSE_MS = 1000
_TRADE_FIELDS = ("E", "s", "t", "p", "q", "T", "m")


@dataclass(frozen=True, slots=True)
class RecordedTrade:
    """One recorded trade, as REST's historicalTrades describes it (times in ms)."""

    symbol: str
    trade_id: int
    price: str
    qty: str
    trade_time: int
    is_buyer_maker: bool
    is_best_match: bool


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """One recorded stream frame: its receive time, stream name and raw payload text.

    ``trade`` and ``data`` (the parsed payload) are set for ``@trade`` frames only; other
    payloads are served as recorded, with only their ``E`` rewritten when times shift.
    """

    recv_ns: int
    stream: str
    payload: bytes
    trade: RecordedTrade | None = None
    data: dict | None = None
    position: int = -1  # index of the trade in its symbol's table


@dataclass(frozen=True)
class SymbolTrades:
    """The recorded trades of one symbol, sorted by id; ``span`` is the id shift of one lap."""

    trades: tuple[RecordedTrade, ...]
    ids: tuple[int, ...]

    @property
    def span(self) -> int:
        """How far trade ids move forward per lap (max id - min id + 1)."""
        return self.ids[-1] - self.ids[0] + 1

    def position_of(self, trade_id: int) -> int:
        """Index of the first trade whose id is >= ``trade_id`` (may be len: past the end)."""
        return bisect_left(self.ids, trade_id)

    def looped_position(self, trade_id: int) -> int:
        """Where the first trade with an id >= ``trade_id`` is in the looped recording.

        Positions count trades from lap 0's first: ``lap * len(trades) + index``, where lap N
        publishes the recorded ids + N * span; an id below the recording's is negative.
        """
        lap = (trade_id - self.ids[0]) // self.span
        return lap * len(self.trades) + self.position_of(trade_id - lap * self.span)

    def looped_id(self, position: int) -> int:
        """The trade id the looped recording publishes at ``position`` (see `looped_position`)."""
        lap, index = divmod(position, len(self.trades))
        return self.ids[index] + lap * self.span


@dataclass(frozen=True)
class Recording:
    """Every event of the recordings merged by receive time, plus per-symbol trade tables."""

    events: tuple[RecordedEvent, ...]
    symbols: dict[str, SymbolTrades]
    lap_ms: int
    first_trade_time: int

    @property
    def first_recv_ns(self) -> int:
        """Receive time of the first event: time zero of the replay clock."""
        return self.events[0].recv_ns

    @property
    def trade_count(self) -> int:
        """Number of distinct trades in one lap."""
        return sum(len(table.trades) for table in self.symbols.values())

    def recorded_ms(self, event: RecordedEvent) -> int:
        """The recorded time (ms) of an event: a trade's ``T``, else its receive time's."""
        if event.trade is not None:
            return event.trade.trade_time
        return self.first_trade_time + (event.recv_ns - self.first_recv_ns) // 1_000_000

    def trades_before(self, event_index: int) -> dict[str, int]:
        """Per symbol, how many of its trades a lap publishes before its event ``event_index``."""
        counts = dict.fromkeys(self.symbols, 0)
        for event in self.events[:event_index]:
            if event.trade is not None:
                counts[event.trade.symbol] = event.position + 1
        return counts

    def timeline(
        self, loop: bool, first_lap: int = 0, first_event: int = 0
    ) -> Iterator[tuple[int, RecordedEvent]]:
        """``(lap, event)`` in receive order from event ``first_event`` of lap ``first_lap``.

        Forever when ``loop``; later laps start at their first event.
        """
        lap = first_lap
        events = self.events[first_event:]
        while True:
            for event in events:
                yield lap, event
            if not loop:
                return
            lap += 1
            events = self.events


def load_recordings(paths: Sequence[Path]) -> Recording:
    """Load, validate and merge recordings by receive time; raise CryptoAssetsError if unusable."""
    if not paths:
        raise CryptoAssetsError("no recording given: pass --recording FILE")
    events: list[RecordedEvent] = []
    for path in paths:
        events.extend(_read_file(Path(path)))
    events.sort(key=lambda event: event.recv_ns)  # stable: ties keep file order
    events = _drop_duplicate_trades(events)
    if not any(event.trade for event in events):
        names = ", ".join(str(path) for path in paths)
        raise CryptoAssetsError(f"no @trade frames in the recording(s) {names}")
    return _build_recording(events)


def _read_file(path: Path) -> list[RecordedEvent]:
    if not path.is_file():
        raise CryptoAssetsError(f"recording not found: {path}")
    events: list[RecordedEvent] = []
    skipped = 0
    try:
        with gzip.open(path, "rt", encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                event = _parse_line(line, number, path)
                if event is None:
                    skipped += 1
                else:
                    events.append(event)
    except (gzip.BadGzipFile, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise CryptoAssetsError(f"recording {path} is not a readable gzip file: {exc}") from exc
    logger.info("loaded %s events from %s (%s non-frame lines skipped)", len(events), path, skipped)
    return events


def _parse_line(line: str, number: int, path: Path) -> RecordedEvent | None:
    line = line.rstrip("\r\n")
    if not line:
        return None
    recv, _, frame = line.partition(" ")
    if not recv.isdigit() or not frame:
        raise _bad_line(path, number, "expected `<receive ns> <frame json>`")
    if not frame.startswith(_FRAME_START):
        return _parse_other(frame, int(recv), number, path)
    stream_end = frame.find('"', len(_FRAME_START))
    stream = frame[len(_FRAME_START) : stream_end]
    prefix = f'{_FRAME_START}{stream}","data":'
    if stream_end < 0 or not frame.startswith(prefix) or not frame.endswith("}"):
        return _parse_other(frame, int(recv), number, path)
    payload = frame[len(prefix) : -1]
    if not stream.endswith("@trade"):
        return RecordedEvent(int(recv), stream, payload.encode())
    return _trade_event(int(recv), stream, payload, number, path)


def _parse_other(frame: str, recv_ns: int, number: int, path: Path) -> RecordedEvent | None:
    """A frame in an unusual layout, or a non-frame line such as a REST depth snapshot."""
    try:
        value = json.loads(frame)
    except json.JSONDecodeError as exc:
        raise _bad_line(path, number, f"invalid JSON ({exc.msg})") from exc
    if not isinstance(value, dict) or "stream" not in value or "data" not in value:
        return None
    payload = json.dumps(value["data"], separators=(",", ":"))
    if not str(value["stream"]).endswith("@trade"):
        return RecordedEvent(recv_ns, str(value["stream"]), payload.encode())
    return _trade_event(recv_ns, str(value["stream"]), payload, number, path)


def _trade_event(recv_ns: int, stream: str, payload: str, number: int, path: Path) -> RecordedEvent:
    try:
        data = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise _bad_line(path, number, f"invalid trade JSON ({exc.msg})") from exc
    missing = [name for name in _TRADE_FIELDS if name not in data]
    if missing:
        raise _bad_line(path, number, f"trade frame lacks {', '.join(missing)}")
    trade = RecordedTrade(
        symbol=str(data["s"]),
        trade_id=int(data["t"]),
        price=str(data["p"]),
        qty=str(data["q"]),
        trade_time=int(data["T"]),
        is_buyer_maker=bool(data["m"]),
        is_best_match=bool(data.get("M", True)),
    )
    return RecordedEvent(recv_ns, stream, payload.encode(), trade, data)


def _bad_line(path: Path, number: int, why: str) -> CryptoAssetsError:
    return CryptoAssetsError(f"recording {path}, line {number}: {why}")


def _drop_duplicate_trades(events: list[RecordedEvent]) -> list[RecordedEvent]:
    """Binance never sends a trade twice; overlapping recordings must not make it do so."""
    seen: set[tuple[str, int]] = set()
    kept: list[RecordedEvent] = []
    for event in events:
        if event.trade is not None:
            key = (event.trade.symbol, event.trade.trade_id)
            if key in seen:
                continue
            seen.add(key)
        kept.append(event)
    return kept


def _build_recording(events: list[RecordedEvent]) -> Recording:
    by_symbol: dict[str, list[RecordedTrade]] = {}
    for event in events:
        if event.trade is not None:
            by_symbol.setdefault(event.trade.symbol, []).append(event.trade)
    symbols: dict[str, SymbolTrades] = {}
    for symbol, trades in by_symbol.items():
        trades.sort(key=lambda trade: trade.trade_id)
        symbols[symbol] = SymbolTrades(tuple(trades), tuple(t.trade_id for t in trades))
    positioned = [
        event
        if event.trade is None
        else RecordedEvent(
            event.recv_ns,
            event.stream,
            event.payload,
            event.trade,
            event.data,
            symbols[event.trade.symbol].position_of(event.trade.trade_id),
        )
        for event in events
    ]
    times = [t.trade_time for table in symbols.values() for t in table.trades]
    times += [int(event.data["E"]) for event in positioned if event.data is not None]
    recv_span_ms = math.ceil((events[-1].recv_ns - events[0].recv_ns) / 1e6)
    lap_ms = max(recv_span_ms, max(times) - min(times)) + LAP_PAUSE_MS
    first_trade = next(event.trade for event in positioned if event.trade is not None)
    return Recording(tuple(positioned), symbols, lap_ms, first_trade.trade_time)
