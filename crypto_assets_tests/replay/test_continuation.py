"""An in-process replay continues the landed market: the recording's next trades, ids contiguous."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import websocket

from crypto_assets.producer.producer_files import ProducerFiles
from crypto_assets.producer.producer_state import ProducerStateFile, landing_folder_name
from crypto_assets.producer.trade_sequencer import Gap, SymbolProgress, TradeSequencer
from crypto_assets.replay.continuation import (
    ContinuedReplay,
    MarketSegment,
    start_continuing_replay,
)
from crypto_assets.settings import Settings
from crypto_assets_tests.landing_folder import landing_of
from crypto_assets_tests.producer.landing_reader import read_landing
from crypto_assets_tests.producer.producer_runs import produce_from_source

CONTINUATION_LOGGER = "crypto_assets.replay.continuation"


@pytest.fixture(scope="module")
def recorded_ids(recorded_trades: list[dict]) -> dict[str, list[int]]:
    """Trade ids by symbol, in recorded (receive) order, read independently of the replay."""
    ids: dict[str, list[int]] = {}
    for trade in recorded_trades:
        ids.setdefault(trade["s"], []).append(trade["t"])
    return ids


@pytest.fixture(scope="module")
def recorded_by_id(recorded_trades: list[dict]) -> dict[str, dict[int, tuple[float, float]]]:
    """Per symbol, each recorded trade id's (price, quantity), read independently of the replay."""
    by_id: dict[str, dict[int, tuple[float, float]]] = {}
    for trade in recorded_trades:
        by_id.setdefault(trade["s"], {})[trade["t"]] = (float(trade["p"]), float(trade["q"]))
    return by_id


def recorded_trade(table: dict[int, tuple[float, float]], trade_id: int) -> tuple[float, float]:
    """The recorded (price, quantity) a replayed id stands for, in any lap of the recording."""
    low = min(table)
    return table[low + (trade_id - low) % (max(table) - low + 1)]


def rows_by_symbol(rows: list[dict]) -> dict[str, list[dict]]:
    """Landing rows per symbol, in trade id order."""
    by_symbol: dict[str, list[dict]] = {}
    for row in sorted(rows, key=lambda row: row["trade_id"]):
        by_symbol.setdefault(row["symbol"], []).append(row)
    return by_symbol


def save_landed(landing_dir: Path, highs: dict[str, int]) -> None:
    """Write the producer state an earlier run would have left: these highs landed."""
    state = ProducerStateFile(
        ProducerFiles.of(landing_dir).state_path, landing_folder_name(landing_dir)
    )
    state.save({symbol: SymbolProgress(high) for symbol, high in highs.items()})
    state.close()


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


def test_the_market_opens_after_the_latest_landed_trade_a_symbol_far_behind_starts_anew(
    tmp_path: Path,
    recorded_ids: dict[str, list[int]],
    recorded_trades: list[dict],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=CONTINUATION_LOGGER)
    landing_dir = tmp_path / "landing" / "trades"
    btc, eth = recorded_ids["BTCUSDT"], recorded_ids["ETHUSDT"]
    span = {"BTCUSDT": max(btc) - min(btc) + 1, "ETHUSDT": max(eth) - min(eth) + 1}
    # ETH landed up to the last id of lap 2, BTC only into lap 0 (over a lap behind).
    save_landed(landing_dir, {"BTCUSDT": min(btc) + 10, "ETHUSDT": max(eth) + 2 * span["ETHUSDT"]})
    last_eth = max(i for i, t in enumerate(recorded_trades) if t["s"] == "ETHUSDT")
    btc_after = [t["t"] for t in recorded_trades[last_eth:] if t["s"] == "BTCUSDT"]
    assert btc_after  # the recording ends with BTC trades after ETH's last

    with continuing_replay(landing_dir) as replay:
        first = first_streamed_ids(replay.server.url)

    # The market opens after ETH's last trade of lap 2: ETH goes on with lap 3, BTC with the
    # rest of lap 2, as a new segment (no back-fill of two laps).
    assert first == {
        "ETHUSDT": min(eth) + 3 * span["ETHUSDT"],
        "BTCUSDT": btc_after[0] + 2 * span["BTCUSDT"],
    }
    assert replay.segment.first_ids == first
    assert replay.segment.history_from == {}
    assert replay.segment.resume({"BTCUSDT": SymbolProgress(min(btc) + 10)}) == {
        "BTCUSDT": SymbolProgress(first["BTCUSDT"] - 1)
    }
    assert f"replay continues the recording at lap 2, event {last_eth + 1} of" in caplog.text


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
        path = ProducerFiles.of(landing_dir).state_path
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


def test_a_segment_whose_rest_serves_the_landed_past_keeps_the_high_for_back_fill() -> None:
    segment = MarketSegment({"ETHUSDT": 900}, history_from={"ETHUSDT": 101})
    sequencer = resumed_sequencer(segment, {"ETHUSDT": SymbolProgress(100)}, grace_seconds=0)
    assert sequencer.accept("ETHUSDT", 900, now=1.0)
    assert [(g.first_id, g.last_id) for g in sequencer.due_gaps(now=10.0)] == [(101, 899)]
    # Landed further below than REST serves: the ids in between never existed in this market.
    assert segment.resume({"ETHUSDT": SymbolProgress(50, ((10, 12),))}) == {
        "ETHUSDT": SymbolProgress(100, ((10, 12),))
    }


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


def test_a_second_run_continues_the_recording_after_the_first_runs_last_trade(
    tmp_path: Path, recorded_by_id: dict[str, dict[int, tuple[float, float]]]
) -> None:
    settings = Settings(source="replay", data_dir=tmp_path)
    produce_from_source(settings, 3.0)
    first_files = set(landing_of(settings).glob("trades_*.json"))
    first = rows_by_symbol(read_landing(landing_of(settings)))
    second_started_ms = time.time() * 1000
    second_summary = produce_from_source(settings, 3.0)
    new_files = set(landing_of(settings).glob("trades_*.json")) - first_files
    second = rows_by_symbol(
        [json.loads(line) for path in new_files for line in path.read_text().splitlines()]
    )

    assert set(first) == set(second) == {"BTCUSDT", "ETHUSDT"}
    for symbol, table in recorded_by_id.items():
        first_ids = [row["trade_id"] for row in first[symbol]]
        second_ids = [row["trade_id"] for row in second[symbol]]
        assert first_ids[0] == min(table)  # run 1 opens at the recording's first trade
        # Run 2 opens at the trade after run 1's last: ids contiguous, each id once.
        assert second_ids[0] == first_ids[-1] + 1
        assert first_ids + second_ids == list(range(first_ids[0], second_ids[-1] + 1))
        # Every landed trade is the recording's trade at that place, so run 2 is the next
        # stretch of the market, not run 1's minute again.
        for row in first[symbol] + second[symbol]:
            assert (row["price"], row["quantity"]) == recorded_trade(table, row["trade_id"])
        opening = [(row["price"], row["quantity"]) for row in first[symbol][:5]]
        assert [(row["price"], row["quantity"]) for row in second[symbol][:5]] != opening
        # Times moved to now, after run 1's.
        assert second[symbol][0]["trade_time"] > first[symbol][-1]["trade_time"]
        assert second[symbol][0]["trade_time"] >= second_started_ms - 2_000
    assert second_summary.duplicates_dropped == 0
    assert second_summary.gaps_unfilled == 0


def test_a_symbol_landed_behind_the_others_is_back_filled_from_rest(
    tmp_path: Path,
    recorded_trades: list[dict],
    recorded_by_id: dict[str, dict[int, tuple[float, float]]],
) -> None:
    # BTC landed up to its trade at receive position 2,000, ETH only up to position 1,500 (say a
    # run of btcusdt alone came between): the market opens after BTC's; ETH's trades in between
    # are the market's past, which REST serves and the producer back-fills.
    btc_place = next(i for i, t in enumerate(recorded_trades) if i >= 2000 and t["s"] == "BTCUSDT")
    btc_high = recorded_trades[btc_place]["t"]
    eth_high = next(t["t"] for t in reversed(recorded_trades[:1500]) if t["s"] == "ETHUSDT")
    eth_streamed = next(t["t"] for t in recorded_trades[btc_place:] if t["s"] == "ETHUSDT")
    settings = Settings(source="replay", data_dir=tmp_path)
    save_landed(landing_of(settings), {"BTCUSDT": btc_high, "ETHUSDT": eth_high})

    summary = produce_from_source(settings, 2.0)

    landed = rows_by_symbol(read_landing(landing_of(settings)))
    ids = {symbol: [row["trade_id"] for row in rows] for symbol, rows in landed.items()}
    assert ids["BTCUSDT"][0] == btc_high + 1
    assert ids["ETHUSDT"][0] == eth_high + 1
    for symbol, symbol_ids in ids.items():
        assert symbol_ids == list(range(symbol_ids[0], symbol_ids[-1] + 1))
        for row in landed[symbol]:
            assert (row["price"], row["quantity"]) == recorded_trade(
                recorded_by_id[symbol], row["trade_id"]
            )
    assert eth_streamed - eth_high > 100
    assert summary.gaps_filled >= eth_streamed - eth_high - 1
    assert summary.gaps_unfilled == 0
    assert summary.duplicates_dropped == 0
