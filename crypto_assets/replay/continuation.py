"""An in-process replay that continues the market an earlier run landed.

The market starts at the first lap of the bundled recording whose trade ids are all above the ids
the producer's state file says landed, so a second demo run lands new trades. That lap is a new
market segment: the ids between the landed high and its first trade never existed in this replayed
market, so a producer resuming on it back-fills nothing from the landed high.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from crypto_assets.producer.producer_state import landed_highs, state_path_beside
from crypto_assets.producer.trade_sequencer import SymbolProgress
from crypto_assets.recording import bundled_recording
from crypto_assets.replay.recording_feed import Recording, first_lap_above, load_recordings
from crypto_assets.replay.server import ReplayOptions, ReplayServer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MarketSegment:
    """Where a replayed market begins: the first trade id of each symbol it trades."""

    first_ids: Mapping[str, int]

    def resume(self, landed: Mapping[str, SymbolProgress]) -> dict[str, SymbolProgress]:
        """Where a producer on this segment resumes, given what earlier runs `landed`.

        Below a symbol's first id everything is history (its holes stay holes) and nothing between
        the landed high and the first id is missing. A landed high at or above the first id
        belongs to another run of the market (the feed restarted): that symbol starts afresh.
        """
        resumed = {}
        for symbol, progress in landed.items():
            first = self.first_ids.get(symbol)
            if first is None:
                resumed[symbol] = progress
            elif progress.high < first:
                resumed[symbol] = SymbolProgress(first - 1, progress.missing)
            else:
                logger.warning(
                    "%s: the replay starts at trade id %s, not above %s landed by an earlier run: "
                    "the feed restarted, starting %s afresh",
                    symbol,
                    first,
                    progress.high,
                    symbol,
                )
                resumed[symbol] = SymbolProgress(first - 1)
        return resumed


def market_segment(recording: Recording, first_lap: int = 0) -> MarketSegment:
    """The segment a replay of `recording` publishes when its market starts at `first_lap`."""
    return MarketSegment(
        {
            symbol: table.ids[0] + first_lap * table.span
            for symbol, table in sorted(recording.symbols.items())
        }
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
    first_lap = 0
    if landing_dir is not None:
        highs = landed_highs(state_path_beside(landing_dir), landing_dir, recording.symbols)
        first_lap = first_lap_above(recording, highs)
    segment = market_segment(recording, first_lap)
    if first_lap:
        starts = ", ".join(f"{s} from id {first}" for s, first in segment.first_ids.items())
        logger.info(
            "replay continues at lap %s (%s), after the trades landed in %s",
            first_lap,
            starts,
            landing_dir,
        )
    server = ReplayServer(
        ReplayOptions(
            recordings=recordings,
            host="127.0.0.1",
            port=0,
            speed=1.0,
            loop=True,
            rebase_time=True,
            first_lap=first_lap,
        ),
        recording,
    )
    server.start()
    return ContinuedReplay(server, segment)
