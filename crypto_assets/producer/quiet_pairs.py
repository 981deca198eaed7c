"""Which subscribed pairs have received no trade for a while, judged from progress counts.

A pair Binance lists but that trades rarely (or one a replay does not carry) is silent without
any error; the producer's per-symbol counts show it. `QuietPairs` compares successive counts.
"""

from __future__ import annotations

from crypto_assets.producer.producer import ProducerStats


class QuietPairs:
    """Pairs whose trade count has not grown for `quiet_seconds` of the producer's run."""

    def __init__(self, pairs: tuple[str, ...], quiet_seconds: float) -> None:
        self.quiet_seconds = quiet_seconds
        self._count = {pair.upper(): 0 for pair in pairs}
        self._changed_at = dict.fromkeys(self._count, 0.0)
        self.quiet: frozenset[str] = frozenset()

    def update(self, stats: ProducerStats) -> tuple[frozenset[str], frozenset[str]]:
        """Take new counts; the pairs that just went quiet, and those that traded again."""
        for symbol, before in self._count.items():
            count = stats.per_symbol.get(symbol, 0)
            if count != before:
                self._count[symbol] = count
                self._changed_at[symbol] = stats.seconds
        quiet = frozenset(
            symbol
            for symbol, changed_at in self._changed_at.items()
            if stats.seconds - changed_at >= self.quiet_seconds
        )
        went_quiet, woke = quiet - self.quiet, self.quiet - quiet
        self.quiet = quiet
        return went_quiet, woke

    def silent_seconds(self, symbol: str, now_seconds: float) -> float:
        """How long `symbol` has had no new trade, as of `now_seconds` into the run."""
        return now_seconds - self._changed_at[symbol.upper()]
