"""Back-filling trade-id gaps from REST ``historicalTrades``, through the sequencer.

Fetched trades go through the same `TradeSequencer` as streamed ones, so a trade that arrived late
on the websocket meanwhile is not landed twice. What REST cannot provide is given up, counted as
unfilled and logged with its id range: never hidden. Trades the landing writer had to drop (disk
full) are `reopen`ed as gaps and fetched like any other once files can be written again (`paused`
says when they cannot: fetching then would only fill memory that the writer must drop again).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from crypto_assets.binance.parsing import TradeRecord, trade_from_rest
from crypto_assets.binance.rest_client import MAX_LIMIT, BinanceRestClient, RestError
from crypto_assets.producer.trade_sequencer import Gap, TradeSequencer

logger = logging.getLogger(__name__)


class GapFiller:
    """Fills the sequencer's due gaps from REST: calls of ≤ 1000, ≤ `max_trades_per_gap` per gap."""

    def __init__(
        self,
        rest: BinanceRestClient | None,
        *,
        sequencer: TradeSequencer,
        emit: Callable[[TradeRecord], None],
        max_trades_per_gap: int = 100_000,
        max_attempts: int = 3,
        retry_seconds: float = 5.0,
        paused: Callable[[], bool] | None = None,
    ) -> None:
        self.rest = rest
        self.sequencer = sequencer
        self.emit = emit
        self.max_trades_per_gap = max_trades_per_gap
        self.max_attempts = max_attempts
        self.retry_seconds = retry_seconds
        self.paused = paused
        self.filled_from_rest = 0
        self.tail_filled = 0
        self.rest_calls = 0
        self._failed: dict[tuple[str, int], tuple[int, float]] = {}
        # REST gave no HTTP answer at all: no call before this time (monotonic seconds).
        self._unreachable_until = float("-inf")

    def fill_due(self, now: float, final: bool = False) -> None:
        """Fill every gap past its grace period; with `final`, every gap, one attempt each.

        Nothing is fetched (and nothing given up) while `paused` says the writer cannot land.
        """
        for gap in self.sequencer.due_gaps(now, include_recent=final):
            if self.paused is not None and self.paused():
                return
            key = (gap.symbol, gap.first_id)
            attempts, retry_at = self._failed.get(key, (0, 0.0))
            if not final and now < retry_at:
                continue
            if now < self._unreachable_until:
                if not final:
                    return
                self._give_up_rest(gap)  # stopping: do not wait on an unreachable REST API
                continue
            try:
                self._fetch(gap, now)
            except RestError as exc:
                if exc.status is None:
                    self._unreachable_until = now + self.retry_seconds
                attempts += 1
                if attempts < self.max_attempts and not final:
                    logger.warning(
                        "%s: REST fill of ids %s..%s failed (attempt %s), retrying: %s",
                        gap.symbol,
                        gap.first_id,
                        gap.last_id,
                        attempts,
                        exc,
                    )
                    self._failed[key] = (attempts, now + self.retry_seconds)
                    continue
                logger.error(
                    "%s: REST fill of ids %s..%s failed: %s",
                    gap.symbol,
                    gap.first_id,
                    gap.last_id,
                    exc,
                )
            self._failed.pop(key, None)
            self._give_up_rest(gap)

    def reopen(self, dropped: Mapping[str, list[tuple[int, int]]], now: float) -> None:
        """Register trade id ranges that were accepted but dropped unlanded, as gaps to fill."""
        for symbol, ranges in sorted(dropped.items()):
            for first, last in ranges:
                self.sequencer.reopen(symbol, first, last, now)

    def fill_tail(self, until_ms: int, now: float) -> None:
        """Fetch trades after each symbol's last id up to `until_ms` (trade time), once, at stop.

        A connection dropped just before the end loses frames no later trade reveals as a gap;
        REST still has them. Bounded by `max_trades_per_gap` per symbol.
        """
        if self.rest is None or now < self._unreachable_until:
            return
        for symbol, high in self.sequencer.highs().items():
            before = self.filled_from_rest
            try:
                self._fetch(
                    Gap(symbol, high + 1, high + self.max_trades_per_gap, now), now, until_ms
                )
            except RestError as exc:
                logger.warning(
                    "%s: REST check for trades after id %s failed: %s", symbol, high, exc
                )
                if exc.status is None:
                    return
                continue
            if self.filled_from_rest > before:
                logger.warning(
                    "%s: %s trades after id %s were only on REST (lost in flight at the end)",
                    symbol,
                    self.filled_from_rest - before,
                    high,
                )
            self.tail_filled += self.filled_from_rest - before

    def _fetch(self, gap: Gap, now: float, until_ms: int | None = None) -> None:
        if self.rest is None:
            return
        next_id = gap.first_id
        budget = min(gap.size, self.max_trades_per_gap)
        if gap.size > budget:
            # E.g. a producer down for long: REST fills the oldest part, the rest counts unfilled.
            logger.warning(
                "%s: %s trades missing (ids %s..%s), more than the cap of %s per gap: "
                "fetching ids %s..%s only",
                gap.symbol,
                gap.size,
                gap.first_id,
                gap.last_id,
                budget,
                gap.first_id,
                gap.first_id + budget - 1,
            )
        fetched = 0
        while next_id <= gap.last_id and fetched < budget:
            limit = min(MAX_LIMIT, gap.last_id - next_id + 1, budget - fetched)
            rows = self.rest.historical_trades(gap.symbol, next_id, limit)
            self.rest_calls += 1
            received_ms = time.time_ns() // 1_000_000
            last_seen = next_id - 1
            for row in rows:
                trade_id = int(row["id"])
                if trade_id > gap.last_id or (until_ms is not None and row["time"] > until_ms):
                    next_id = gap.last_id + 1  # nothing beyond this is wanted
                    break
                last_seen = max(last_seen, trade_id)
                fetched += 1
                if self.sequencer.accept(gap.symbol, trade_id, now):
                    self.emit(trade_from_rest(gap.symbol, row, received_ms))
                    self.filled_from_rest += 1
            if next_id > gap.last_id or last_seen < next_id:
                break  # done, or REST has nothing more here (too old, or not there yet)
            next_id = last_seen + 1

    def _give_up_rest(self, gap: Gap) -> None:
        unfilled = self.sequencer.resolve(gap)
        if unfilled:
            logger.warning(
                "%s: %s trades with ids in %s..%s could not be filled (REST had none of them)",
                gap.symbol,
                unfilled,
                gap.first_id,
                gap.last_id,
            )
        else:
            logger.info("%s: gap %s..%s filled", gap.symbol, gap.first_id, gap.last_id)
