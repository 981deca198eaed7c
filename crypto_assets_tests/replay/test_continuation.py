"""An in-process replay continues the landed market: a new segment above what was landed."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import websocket

from crypto_assets.producer.producer_state import ProducerStateFile, state_path_beside
from crypto_assets.producer.trade_sequencer import Gap, SymbolProgress, TradeSequencer
from crypto_assets.replay.continuation import (
    ContinuedReplay,
    MarketSegment,
    start_continuing_replay,
)

CONTINUATION_LOGGER = "crypto_assets.replay.continuation"


@pytest.fixture(scope="module")
def recorded_ids(recorded_trades: list[dict]) -> dict[str, list[int]]:
    """Trade ids by symbol, in recorded (receive) order, read independently of the replay."""
    ids: dict[str, list[int]] = {}
    for trade in recorded_trades:
        ids.setdefault(trade["s"], []).append(trade["t"])
    return ids


@contextmanager
def continuing_replay(landing_dir: Path) -> Iterator[ContinuedReplay]:
    """A continuing replay of `landing_dir`'s market, stopped on exit."""
    replay = start_continuing_replay(landing_dir)
    try:
        yield replay
    finally:
        replay.server.stop()


def first_streamed_ids(ws_url: str) -> dict[str, int]:
    """The first trade id the source streams for each of BTCUSDT and ETHUSDT."""
    first: dict[str, int] = {}
    ws = websocket.create_connection(
        f"{ws_url}/stream?streams=btcusdt@trade/ethusdt@trade", timeout=10
    )
    try:
        while len(first) < 2:
            data = json.loads(ws.recv())["data"]
            first.setdefault(data["s"], data["t"])
    finally:
        ws.close()
    return first


def feed(sequencer: TradeSequencer, symbol: str, ids: list[int], now: float = 0.0) -> list[int]:
    return [i for i in ids if sequencer.accept(symbol, i, now)]


def resumed_sequencer(
    segment: MarketSegment, landed: dict[str, SymbolProgress], **options: float
) -> TradeSequencer:
    """A sequencer seeded as the producer seeds it on `segment` after `landed`."""
    sequencer = TradeSequencer(**options)
    for symbol, progress in segment.resume(landed).items():
        sequencer.seed(symbol, progress, now=0.0)
    return sequencer


def test_the_replay_starts_above_every_symbols_landed_high(
    tmp_path: Path, recorded_ids: dict[str, list[int]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=CONTINUATION_LOGGER)
    landing_dir = tmp_path / "landing" / "trades"
    btc, eth = recorded_ids["BTCUSDT"], recorded_ids["ETHUSDT"]
    span = {"BTCUSDT": max(btc) - min(btc) + 1, "ETHUSDT": max(eth) - min(eth) + 1}
    # BTC landed into lap 0, ETH up to the last id of lap 2: lap 3 is the first above both.
    ProducerStateFile(state_path_beside(landing_dir)).save(
        {
            "BTCUSDT": SymbolProgress(min(btc) + 10),
            "ETHUSDT": SymbolProgress(max(eth) + 2 * span["ETHUSDT"]),
        }
    )

    with continuing_replay(landing_dir) as replay:
        first = first_streamed_ids(replay.server.url)

    assert first == {s: recorded_ids[s][0] + 3 * span[s] for s in ("BTCUSDT", "ETHUSDT")}
    assert replay.segment.first_ids == first
    assert "replay continues at lap 3" in caplog.text


@pytest.mark.parametrize("state", [None, "{not json"])
def test_no_or_a_corrupt_state_file_replays_from_lap_0(
    tmp_path: Path,
    recorded_ids: dict[str, list[int]],
    state: str | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=CONTINUATION_LOGGER)
    landing_dir = tmp_path / "landing" / "trades"
    if state is not None:
        path = state_path_beside(landing_dir)
        path.parent.mkdir(parents=True)
        path.write_text(state)

    with continuing_replay(landing_dir) as replay:
        first = first_streamed_ids(replay.server.url)

    assert first == {s: recorded_ids[s][0] for s in ("BTCUSDT", "ETHUSDT")}
    assert "replay continues" not in caplog.text


def test_a_segment_above_the_landed_high_is_new_no_backfill_from_the_high() -> None:
    segment = MarketSegment({"BTCUSDT": 500})
    sequencer = resumed_sequencer(segment, {"BTCUSDT": SymbolProgress(100)}, grace_seconds=0)
    assert sequencer.accept("BTCUSDT", 500, now=1.0)  # a new market segment: no gap 101..499
    assert sequencer.due_gaps(now=10.0, include_recent=True) == []
    assert not sequencer.accept("BTCUSDT", 100, now=1.0)  # landed by the earlier run
    assert sequencer.accept("BTCUSDT", 502, now=2.0)  # within the segment, gaps still count
    assert [(g.first_id, g.last_id) for g in sequencer.due_gaps(now=10.0)] == [(501, 501)]


def test_the_landed_holes_stay_holes_on_a_new_segment() -> None:
    segment = MarketSegment({"ETHUSDT": 900})
    sequencer = resumed_sequencer(segment, {"ETHUSDT": SymbolProgress(50, ((10, 12),))})
    assert sequencer.due_gaps(0.0, include_recent=True) == [Gap("ETHUSDT", 10, 12, 0.0)]


def test_a_segment_starting_below_the_landed_high_means_the_feed_restarted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=CONTINUATION_LOGGER)
    segment = MarketSegment({"BTCUSDT": 3})
    sequencer = resumed_sequencer(segment, {"BTCUSDT": SymbolProgress(1000, ((500, 510),))})
    assert feed(sequencer, "BTCUSDT", [3, 4, 4, 6]) == [3, 4, 6]
    assert "BTCUSDT: the replay starts at trade id 3, not above 1000" in caplog.text
    assert "starting BTCUSDT afresh" in caplog.text
    assert sequencer.duplicates == 1
    assert sequencer.progress() == {"BTCUSDT": SymbolProgress(6, ((5, 5),))}


def test_after_a_newer_trade_an_old_id_is_a_duplicate_not_a_restart(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=CONTINUATION_LOGGER)
    segment = MarketSegment({"BTCUSDT": 1001})
    sequencer = resumed_sequencer(segment, {"BTCUSDT": SymbolProgress(1000)})
    assert feed(sequencer, "BTCUSDT", [1001, 1002, 3]) == [1001, 1002]
    assert "afresh" not in caplog.text
    assert sequencer.duplicates == 1


def test_a_symbol_the_replay_does_not_trade_resumes_where_it_stopped() -> None:
    landed = {"BNBUSDT": SymbolProgress(70, ((60, 61),))}
    assert MarketSegment({"BTCUSDT": 5}).resume(landed) == landed
