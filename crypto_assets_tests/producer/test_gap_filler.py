"""Back-filling gaps from the replay server's REST API, and what happens when REST is down."""

from __future__ import annotations

from crypto_assets.binance.parsing import TradeRecord
from crypto_assets.binance.rest_client import BinanceRestClient
from crypto_assets.producer.gap_filler import GapFiller
from crypto_assets.producer.trade_sequencer import TradeSequencer


def test_due_gaps_are_filled_in_chunks_through_the_sequencer(
    published_server: object, expected_trades: dict[str, dict[int, dict]]
) -> None:
    ids = sorted(expected_trades["BTCUSDT"])
    sequencer = TradeSequencer(grace_seconds=1.0)
    emitted: list[TradeRecord] = []
    filler = GapFiller(
        BinanceRestClient(published_server.rest_url),  # type: ignore[attr-defined]
        sequencer=sequencer,
        emit=emitted.append,
    )
    sequencer.accept("BTCUSDT", ids[0], 0.0)
    sequencer.accept("BTCUSDT", ids[2500], 0.0)  # ids[1..2499] missing
    sequencer.accept("BTCUSDT", ids[700], 0.5)  # arrived late on the stream meanwhile
    filler.fill_due(0.9)
    assert emitted == []  # still within the grace period
    filler.fill_due(1.0)
    assert sorted(r.trade_id for r in emitted) == [i for i in ids[1:2500] if i != ids[700]]
    assert filler.rest_calls >= 3  # 1000 per call at most
    assert sequencer.missing_trades() == 0
    assert (sequencer.unfilled, filler.filled_from_rest) == (0, 2498)
    for record in emitted[:50]:
        want = expected_trades["BTCUSDT"][record.trade_id]
        assert (record.price, record.quantity, record.trade_time) == (
            want["price"],
            want["quantity"],
            want["trade_time"],
        )


def test_a_gap_bigger_than_the_budget_is_partly_unfilled_and_counted(
    published_server: object, expected_trades: dict[str, dict[int, dict]]
) -> None:
    ids = sorted(expected_trades["ETHUSDT"])
    sequencer = TradeSequencer(grace_seconds=0.0)
    emitted: list[TradeRecord] = []
    filler = GapFiller(
        BinanceRestClient(published_server.rest_url),  # type: ignore[attr-defined]
        sequencer=sequencer,
        emit=emitted.append,
        max_trades_per_gap=1500,
    )
    sequencer.accept("ETHUSDT", ids[0], 0.0)
    sequencer.accept("ETHUSDT", ids[4001], 0.0)
    filler.fill_due(0.0)
    assert [r.trade_id for r in emitted] == ids[1:1501]
    assert sequencer.unfilled == 2500
    assert sequencer.missing_trades() == 0


def test_the_tail_after_the_last_streamed_id_is_fetched_at_stop(
    published_server: object, expected_trades: dict[str, dict[int, dict]]
) -> None:
    ids = sorted(expected_trades["BTCUSDT"])
    sequencer = TradeSequencer()
    emitted: list[TradeRecord] = []
    filler = GapFiller(
        BinanceRestClient(published_server.rest_url),  # type: ignore[attr-defined]
        sequencer=sequencer,
        emit=emitted.append,
    )
    sequencer.accept("BTCUSDT", ids[-1200], 0.0)
    cutoff = expected_trades["BTCUSDT"][ids[-200]]["trade_time"]
    filler.fill_tail(until_ms=cutoff, now=0.0)
    landed = [r.trade_id for r in emitted]
    assert landed == [
        i for i in ids[-1199:] if expected_trades["BTCUSDT"][i]["trade_time"] <= cutoff
    ]
    assert filler.tail_filled == len(landed) >= 1000


def test_unreachable_rest_gives_up_quickly_and_counts_unfilled(unused_port: int) -> None:
    sequencer = TradeSequencer(grace_seconds=0.0)
    filler = GapFiller(
        BinanceRestClient(f"http://127.0.0.1:{unused_port}"),
        sequencer=sequencer,
        emit=lambda record: None,
    )
    for symbol in ("BTCUSDT", "ETHUSDT"):
        sequencer.accept(symbol, 100, 0.0)
        sequencer.accept(symbol, 200, 0.0)
    filler.fill_due(1.0)  # first gap: refused; REST is marked unreachable for a while
    assert filler.rest_calls == 0
    assert sequencer.missing_trades() == 2 * 99
    filler.fill_due(1.0, final=True)  # stopping: no more waiting on REST
    assert sequencer.unfilled == 2 * 99
    assert sequencer.missing_trades() == 0
