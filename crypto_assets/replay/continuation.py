"""An in-process replay that continues the market an earlier run landed.

The bundled recording loops: lap N publishes its trades with ids + N * span. The producer's state
file says which ids landed; the highest per symbol places it in that loop, and the market opens
at the event after the latest of them (the one place in the recording where the last run
stopped, modulo its length for later laps). So a second run lands the recording's next trades,
with ids contiguous with the first's and times moved to now, not the same minute again.

A symbol that landed less (a run of other pairs came between) has its trades since its high in
the market's past: REST serves them (up to one lap of that symbol's trades) and the producer
back-fills them. A symbol further behind, or with ids below the recording's, starts a new market
segment where the market opens: the ids between its landed high and its first trade never existed
in this replayed market, so a producer resuming on it back-fills nothing from the landed high.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from crypto_assets.producer.producer_files import ProducerFiles
from crypto_assets.producer.producer_state import landed_highs
from crypto_assets.producer.trade_sequencer import SymbolProgress
from crypto_assets.recording import bundled_recording
from crypto_assets.replay.recording_feed import Recording, load_recordings
from crypto_assets.replay.server import ReplayOptions, ReplayServer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplayStart:
    """Where a replayed market opens: event `event` of lap `lap`, and what REST serves before it.

    `history_from`: per symbol, the first trade id REST serves when that is before the opening.
    """

    lap: int = 0
    event: int = 0
    history_from: Mapping[str, int] = field(default_factory=dict)


def continuation_start(recording: Recording, highs: Mapping[str, int]) -> ReplayStart:
    """Where the looped `recording` continues after the landed `highs` (symbol -> trade id)."""
    event_count = len(recording.events)
    event_of_trade = {
        symbol: [0] * len(table.trades) for symbol, table in recording.symbols.items()
    }
    for index, event in enumerate(recording.events):
        if event.trade is not None:
            event_of_trade[event.trade.symbol][event.position] = index
    next_positions: dict[str, int] = {}
    opening = 0  # in events from lap 0's first: lap * events per lap + index
    for symbol, high in highs.items():
        table = recording.symbols.get(symbol)
        if table is None or table.looped_position(high + 1) < 0:
            continue  # not traded by the recording, or landed below it
        position = next_positions[symbol] = table.looped_position(high + 1)
        if position > 0:
            lap, index = divmod(position - 1, len(table.trades))
            opening = max(opening, lap * event_count + event_of_trade[symbol][index] + 1)
    lap, event = divmod(opening, event_count)
    before = recording.trades_before(event)
    history_from = {}
    for symbol, position in next_positions.items():
        table = recording.symbols[symbol]
        behind = lap * len(table.trades) + before[symbol] - position
        if 0 < behind <= len(table.trades):
            history_from[symbol] = table.looped_id(position)
    return ReplayStart(lap, event, history_from)


@dataclass(frozen=True)
class MarketSegment:
    """Where a replayed market begins: the first trade id of each symbol it streams.

    `history_from`: per symbol, the first id its REST serves when that is below the first streamed.
    """

    first_ids: Mapping[str, int]
    history_from: Mapping[str, int] = field(default_factory=dict)

    def resume(self, landed: Mapping[str, SymbolProgress]) -> dict[str, SymbolProgress]:
        """Where a producer on this segment resumes, given what earlier runs `landed`.

        The ids from the landed high to the first streamed one are a gap REST fills when it serves
        them all; otherwise they never existed in this market (the segment is new): below the
        first id REST serves everything is history, and the landed holes stay holes. A landed high
        at or above the first streamed id belongs to another run of the market (the feed
        restarted): that symbol starts afresh.
        """
        resumed = {}
        for symbol, progress in landed.items():
            first = self.first_ids.get(symbol)
            if first is None:
                resumed[symbol] = progress
                continue
            served_from = self.history_from.get(symbol, first)
            if progress.high >= first:
                logger.warning(
                    "%s: the replay starts at trade id %s, not above %s landed by an earlier run: "
                    "the feed restarted, starting %s afresh",
                    symbol,
                    first,
                    progress.high,
                    symbol,
                )
                resumed[symbol] = SymbolProgress(first - 1)
            elif progress.high + 1 >= served_from:
                resumed[symbol] = progress
            else:
                resumed[symbol] = SymbolProgress(served_from - 1, progress.missing)
        return resumed


def market_segment(recording: Recording, start: ReplayStart | None = None) -> MarketSegment:
    """The segment a replay of `recording` publishes when its market opens at `start`."""
    start = start or ReplayStart()
    before = recording.trades_before(start.event)
    return MarketSegment(
        {
            symbol: table.looped_id(start.lap * len(table.trades) + before[symbol])
            for symbol, table in sorted(recording.symbols.items())
        },
        dict(start.history_from),
    )


@dataclass(frozen=True)
class ContinuedReplay:
    """A running replay server of the bundled recording and the market segment it serves."""

    server: ReplayServer
    segment: MarketSegment


def start_continuing_replay(landing_dir: Path | None = None) -> ContinuedReplay:
    """Serve the bundled recording on 127.0.0.1 (real speed, looping, rebased times).

    With `landing_dir`, the market continues after the trade ids its producer state says landed.
    """
    recordings = (bundled_recording(),)
    recording = load_recordings(recordings)
    start = ReplayStart()
    if landing_dir is not None:
        state_path = ProducerFiles.of(landing_dir).state_path
        highs = landed_highs(state_path, landing_dir, recording.symbols)
        start = continuation_start(recording, highs)
    segment = market_segment(recording, start)
    if start.lap or start.event:
        starts = ", ".join(f"{s} from id {first}" for s, first in segment.first_ids.items())
        logger.info(
            "replay continues the recording at lap %s, event %s of %s (%s), after the trades "
            "landed in %s",
            start.lap,
            start.event,
            len(recording.events),
            starts,
            landing_dir,
        )
    for symbol, first in sorted(start.history_from.items()):
        logger.info(
            "%s: the replay's REST serves its trades from id %s, made before the market opened: "
            "the producer back-fills them",
            symbol,
            first,
        )
    server = ReplayServer(
        ReplayOptions(
            recordings=recordings,
            host="127.0.0.1",
            port=0,
            speed=1.0,
            loop=True,
            rebase_time=True,
            first_lap=start.lap,
            first_event=start.event,
            history_from=start.history_from,
        ),
        recording,
    )
    server.start()
    return ContinuedReplay(server, segment)
