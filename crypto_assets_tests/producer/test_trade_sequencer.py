"""The sequencer: duplicates, gaps, out-of-order fills and bounded memory."""

from __future__ import annotations

import random

from crypto_assets.producer.trade_sequencer import Gap, SymbolProgress, TradeSequencer


def feed(sequencer: TradeSequencer, symbol: str, ids: list[int], now: float = 0.0) -> list[int]:
    return [i for i in ids if sequencer.accept(symbol, i, now)]


def test_first_trade_is_the_baseline_and_contiguous_ids_pass() -> None:
    sequencer = TradeSequencer()
    assert feed(sequencer, "BTCUSDT", [500, 501, 502]) == [500, 501, 502]
    assert sequencer.due_gaps(1e9, include_recent=True) == []
    assert sequencer.high("BTCUSDT") == 502
    assert sequencer.high("ETHUSDT") is None


def test_duplicates_are_dropped_and_counted() -> None:
    sequencer = TradeSequencer()
    assert feed(sequencer, "BTCUSDT", [1, 2, 3, 2, 3, 1, 4]) == [1, 2, 3, 4]
    assert sequencer.duplicates == 3


def test_symbols_are_independent() -> None:
    sequencer = TradeSequencer()
    assert feed(sequencer, "BTCUSDT", [10, 11]) == [10, 11]
    assert feed(sequencer, "ETHUSDT", [10, 11]) == [10, 11]
    assert sequencer.duplicates == 0


def test_a_jump_opens_a_gap_that_becomes_due_after_the_grace_period() -> None:
    sequencer = TradeSequencer(grace_seconds=2.0)
    feed(sequencer, "BTCUSDT", [1, 2], now=100.0)
    assert sequencer.accept("BTCUSDT", 10, 100.5)
    assert sequencer.gap_trades_detected == 7
    assert sequencer.due_gaps(102.4) == []
    assert sequencer.due_gaps(102.5) == [Gap("BTCUSDT", 3, 9, 100.5)]
    assert sequencer.missing_trades() == 7


def test_late_arrivals_fill_the_gap_exactly_once() -> None:
    sequencer = TradeSequencer()
    feed(sequencer, "BTCUSDT", [1, 10])
    assert feed(sequencer, "BTCUSDT", [5, 5, 3, 9, 2, 10, 1]) == [5, 3, 9, 2]
    assert sequencer.filled == 4
    assert sequencer.duplicates == 3
    remaining = sequencer.due_gaps(0.0, include_recent=True)
    assert [(g.first_id, g.last_id) for g in remaining] == [(4, 4), (6, 8)]


def test_resolve_gives_up_only_the_ids_still_missing() -> None:
    sequencer = TradeSequencer()
    feed(sequencer, "BTCUSDT", [1, 10, 4, 7])
    gap = Gap("BTCUSDT", 2, 9, 0.0)
    assert sequencer.resolve(gap) == 6  # 2, 3, 5, 6, 8, 9
    assert sequencer.unfilled == 6
    assert sequencer.missing_trades() == 0
    assert not sequencer.accept("BTCUSDT", 3, 0.0)  # given up: now a duplicate


def test_two_overlapping_connections_out_of_order_lose_and_duplicate_nothing() -> None:
    ids = list(range(1000, 3000))
    rng = random.Random(7)
    # Connection A delivers 1000..2199, connection B 1800..2999; they interleave in chunks,
    # and B's first frames overtake A's last ones.
    a, b = ids[:1200], ids[800:]
    merged: list[int] = []
    while a or b:
        source = a if (a and (not b or rng.random() < 0.5)) else b
        take = rng.randint(1, 40)
        merged.extend(source[:take])
        del source[:take]
    sequencer = TradeSequencer()
    emitted = feed(sequencer, "BTCUSDT", merged)
    assert sorted(emitted) == ids
    assert len(emitted) == len(set(emitted))
    assert sequencer.missing_trades() == 0
    assert sequencer.duplicates == len(merged) - len(ids)


def test_random_shuffles_within_a_window_emit_every_id_once() -> None:
    rng = random.Random(11)
    ids = list(range(1, 20_001))
    # Local disorder: swap neighbours up to 50 apart, then duplicate 10% of them.
    for i in range(0, len(ids) - 50, 25):
        j = i + rng.randint(1, 49)
        ids[i], ids[j] = ids[j], ids[i]
    stream = ids + rng.sample(ids, 2000)
    sequencer = TradeSequencer()
    emitted = feed(sequencer, "ETHUSDT", stream)
    # Ids below the first one seen (the baseline) are not missing: they come before the start.
    assert sorted(emitted) == sorted(i for i in set(stream) if i >= stream[0])
    assert len(emitted) == len(set(emitted))


def test_memory_is_bounded_and_overflow_is_counted_as_unfilled() -> None:
    sequencer = TradeSequencer(max_missing_ranges=100)
    sequencer.accept("BTCUSDT", 0, 0.0)
    # 1000 gaps of 2 ids each: 0, 3, 6, ...
    for trade_id in range(3, 3001, 3):
        sequencer.accept("BTCUSDT", trade_id, 0.0)
    gaps = sequencer.due_gaps(0.0, include_recent=True)
    assert len(gaps) == 100
    assert sequencer.gap_trades_detected == 2000
    assert sequencer.unfilled == 2000 - 200
    # The ranges kept are the newest ones.
    assert gaps[-1] == Gap("BTCUSDT", 2998, 2999, 0.0)
    assert sequencer.missing_trades() == 200


def test_a_seeded_symbol_drops_landed_ids_and_opens_the_gap_from_the_saved_high() -> None:
    sequencer = TradeSequencer(grace_seconds=1.0)
    sequencer.seed("BTCUSDT", SymbolProgress(100), now=5.0)
    assert feed(sequencer, "BTCUSDT", [120, 121, 99, 100, 121], now=5.0) == [120, 121]
    assert sequencer.duplicates == 3
    assert sequencer.due_gaps(6.0) == [Gap("BTCUSDT", 101, 119, 5.0)]
    assert feed(sequencer, "BTCUSDT", list(range(95, 122)), now=6.0) == list(range(101, 120))
    assert sequencer.missing_trades() == 0


def test_seeded_holes_are_due_and_fillable_and_nothing_else_below_the_high() -> None:
    sequencer = TradeSequencer(grace_seconds=1.0)
    sequencer.seed("ETHUSDT", SymbolProgress(50, ((10, 12), (40, 40))), now=0.0)
    assert sequencer.due_gaps(1.0) == [Gap("ETHUSDT", 10, 12, 0.0), Gap("ETHUSDT", 40, 40, 0.0)]
    assert feed(sequencer, "ETHUSDT", [11, 51]) == [11, 51]  # a REST fill, a live trade
    assert feed(sequencer, "ETHUSDT", list(range(1, 52))) == [10, 12, 40]
    assert sequencer.progress() == {"ETHUSDT": SymbolProgress(51)}


def test_progress_round_trips_through_seed() -> None:
    first = TradeSequencer()
    feed(first, "BTCUSDT", [1, 2, 5, 9])
    feed(first, "ETHUSDT", [7])
    saved = first.progress()
    assert saved == {"BTCUSDT": SymbolProgress(9, ((3, 4), (6, 8))), "ETHUSDT": SymbolProgress(7)}
    second = TradeSequencer()
    for symbol, progress in saved.items():
        second.seed(symbol, progress, now=0.0)
    assert second.progress() == saved
    assert feed(second, "BTCUSDT", [10, 1, 2, 3, 4, 5, 6, 9, 10]) == [10, 3, 4, 6]
