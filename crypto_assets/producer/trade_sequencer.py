"""Exactly-once ordering of trade ids per symbol: drop duplicates, track and expose gaps.

Binance trade ids are contiguous per symbol, so the sequencer needs only the highest id seen and
the ranges of ids still missing below it. Two overlapping connections, a reconnect and REST
back-filling all feed the same sequencer, which is what makes duplicates impossible.
A new process can `seed` it with what an earlier one landed, so that its first trade opens the gap
of what happened meanwhile instead of becoming a fresh baseline.
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from dataclasses import dataclass
from operator import itemgetter

logger = logging.getLogger(__name__)

_first_id = itemgetter(0)


@dataclass(frozen=True, slots=True)
class Gap:
    """Ids ``first_id..last_id`` (inclusive) of `symbol` missing since `detected_at`."""

    symbol: str
    first_id: int
    last_id: int
    detected_at: float

    @property
    def size(self) -> int:
        """How many trade ids the gap spans."""
        return self.last_id - self.first_id + 1


@dataclass(frozen=True)
class SymbolProgress:
    """How far a symbol got: its highest trade id and the id ranges below it still missing."""

    high: int
    missing: tuple[tuple[int, int], ...] = ()


class _SymbolState:
    __slots__ = ("high", "missing")

    def __init__(self, high: int) -> None:
        self.high = high
        # [first_id, last_id, detected_at] lists, sorted by first_id, never overlapping.
        self.missing: list[list] = []


class TradeSequencer:
    """Per-symbol duplicate filter and gap tracker; memory is bounded by `max_missing_ranges`."""

    def __init__(self, grace_seconds: float = 1.5, max_missing_ranges: int = 1000) -> None:
        self.grace_seconds = grace_seconds
        self.max_missing_ranges = max_missing_ranges
        self._states: dict[str, _SymbolState] = {}
        self.duplicates = 0
        self.gap_trades_detected = 0
        self.filled = 0
        self.unfilled = 0
        self.reopened = 0

    def seed(self, symbol: str, progress: SymbolProgress, now: float) -> None:
        """Resume `symbol` from an earlier run: ids ≤ its high are landed except those missing.

        The ids between that high and the first new trade are a gap to fill.
        """
        state = _SymbolState(progress.high)
        state.missing = [[first, last, now] for first, last in sorted(progress.missing)]
        self._states[symbol] = state

    def accept(self, symbol: str, trade_id: int, now: float) -> bool:
        """True when the trade is new (emit it), False for a duplicate (drop it)."""
        state = self._states.get(symbol)
        if state is None:
            # The first trade of a symbol is the baseline: nothing before it counts as missing.
            self._states[symbol] = _SymbolState(trade_id)
            return True
        high = state.high
        if trade_id == high + 1:
            state.high = trade_id
            return True
        if trade_id > high:
            self._open_gap(symbol, state, high + 1, trade_id - 1, now)
            state.high = trade_id
            return True
        if state.missing and self._fill(state.missing, trade_id):
            self.filled += 1
            return True
        self.duplicates += 1
        return False

    def reopen(self, symbol: str, first: int, last: int, now: float) -> None:
        """Make the accepted ids ``first..last`` missing again (accepted, then never landed).

        The landing writer dropped them (disk full): they become a gap for REST to back-fill, and
        the progress saved for a later process no longer counts them as landed.
        """
        state = self._states.get(symbol)
        if state is None or last > state.high or first > last:
            raise ValueError(f"{symbol}: ids {first}..{last} were never accepted")
        index = bisect_right(state.missing, first, key=_first_id)
        state.missing.insert(index, [first, last, now])
        self.reopened += last - first + 1
        self._bound_missing(symbol, state)

    def due_gaps(self, now: float, include_recent: bool = False) -> list[Gap]:
        """Gaps missing for at least the grace period (all of them with `include_recent`)."""
        cutoff = now - self.grace_seconds
        return [
            Gap(symbol, first, last, detected)
            for symbol, state in self._states.items()
            for first, last, detected in state.missing
            if include_recent or detected <= cutoff
        ]

    def resolve(self, gap: Gap) -> int:
        """Give up on the ids of `gap` still missing (after REST back-filling); returns how many.

        Ranges reopened after the gap was detected (trades dropped meanwhile) are kept.
        """
        state = self._states.get(gap.symbol)
        if state is None:
            return 0
        kept: list[list] = []
        given_up = 0
        for entry in state.missing:
            first, last = entry[0], entry[1]
            low, high = max(first, gap.first_id), min(last, gap.last_id)
            if low > high or entry[2] > gap.detected_at:
                kept.append(entry)
                continue
            given_up += high - low + 1
            if first < low:
                kept.append([first, low - 1, entry[2]])
            if last > high:
                kept.append([high + 1, last, entry[2]])
        state.missing = kept
        self.unfilled += given_up
        return given_up

    def missing_trades(self) -> int:
        """How many trade ids are currently missing, over all symbols."""
        return sum(
            last - first + 1 for state in self._states.values() for first, last, _ in state.missing
        )

    def high(self, symbol: str) -> int | None:
        """The highest trade id seen for `symbol`, or None before its first trade."""
        state = self._states.get(symbol)
        return None if state is None else state.high

    def highs(self) -> dict[str, int]:
        """The highest trade id seen, by symbol."""
        return {symbol: state.high for symbol, state in self._states.items()}

    def progress(self) -> dict[str, SymbolProgress]:
        """Each symbol's high and missing id ranges (what to `seed` a later process with)."""
        return {
            symbol: SymbolProgress(
                state.high, tuple((first, last) for first, last, _ in state.missing)
            )
            for symbol, state in self._states.items()
        }

    def _open_gap(
        self, symbol: str, state: _SymbolState, first: int, last: int, now: float
    ) -> None:
        state.missing.append([first, last, now])
        self.gap_trades_detected += last - first + 1
        logger.info(
            "%s: trade ids %s..%s missing (%s trades)", symbol, first, last, last - first + 1
        )
        self._bound_missing(symbol, state)

    def _bound_missing(self, symbol: str, state: _SymbolState) -> None:
        if len(state.missing) > self.max_missing_ranges:
            # Bounded memory: the oldest range is the least likely to still arrive; count it lost.
            old_first, old_last, _ = state.missing.pop(0)
            self.unfilled += old_last - old_first + 1
            logger.warning(
                "%s: more than %s open gaps; giving up on trade ids %s..%s",
                symbol,
                self.max_missing_ranges,
                old_first,
                old_last,
            )

    @staticmethod
    def _fill(missing: list[list], trade_id: int) -> bool:
        index = bisect_right(missing, trade_id, key=_first_id) - 1
        if index < 0:
            return False
        first, last, detected = missing[index]
        if trade_id > last:
            return False
        pieces = []
        if first < trade_id:
            pieces.append([first, trade_id - 1, detected])
        if trade_id < last:
            pieces.append([trade_id + 1, last, detected])
        missing[index : index + 1] = pieces
        return True
