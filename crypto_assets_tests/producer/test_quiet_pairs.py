"""Quiet pairs: a pair whose count stops growing for quiet_seconds is quiet until it trades."""

from __future__ import annotations

from crypto_assets.producer.producer import ProducerStats
from crypto_assets.producer.quiet_pairs import QuietPairs


def _stats(seconds: float, **per_symbol: int) -> ProducerStats:
    return ProducerStats(
        trades=sum(per_symbol.values()),
        files=0,
        quarantined=0,
        duplicates_dropped=0,
        gaps_filled=0,
        gaps_unfilled=0,
        reconnects=0,
        seconds=seconds,
        per_symbol=per_symbol,
    )


def test_a_pair_without_trades_goes_quiet_after_the_threshold_and_wakes_when_it_trades():
    quiet = QuietPairs(("btcusdt", "bnbusdt"), quiet_seconds=120)
    assert quiet.update(_stats(60, BTCUSDT=10)) == (frozenset(), frozenset())
    # BNBUSDT never traded: quiet from 120 s into the run; BTCUSDT keeps trading.
    assert quiet.update(_stats(120, BTCUSDT=20)) == ({"BNBUSDT"}, frozenset())
    assert quiet.quiet == {"BNBUSDT"}
    assert quiet.silent_seconds("bnbusdt", 150) == 150
    # Reported once, not at every update.
    assert quiet.update(_stats(180, BTCUSDT=30)) == (frozenset(), frozenset())
    assert quiet.update(_stats(200, BTCUSDT=30, BNBUSDT=1)) == (frozenset(), {"BNBUSDT"})
    assert quiet.quiet == frozenset()


def test_a_pair_that_stops_trading_is_quiet_counted_from_its_last_trade():
    quiet = QuietPairs(("ethusdt",), quiet_seconds=30)
    quiet.update(_stats(10, ETHUSDT=5))
    assert quiet.update(_stats(39, ETHUSDT=5)) == (frozenset(), frozenset())
    assert quiet.update(_stats(40, ETHUSDT=5)) == ({"ETHUSDT"}, frozenset())
