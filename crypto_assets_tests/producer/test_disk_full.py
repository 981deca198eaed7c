"""The real producer against the real replay server, landing on a real tmpfs that fills up.

The disk is filled while the market trades; the producer must keep running with its pending
trades within `max_pending_trades`, say what it drops, resume by itself when space is freed, and
end with every published trade landed exactly once (REST back-fills what was dropped) — also when
it is stopped while the disk is full and started again.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from crypto_assets.producer.producer import Producer, ProducerConfig, ProducerStats
from crypto_assets_tests.producer.landing_reader import read_landing
from crypto_assets_tests.producer.producer_runs import produce_recording
from crypto_assets_tests.producer.small_disk import SmallDisk, small_disk

WRITER_LOG = "crypto_assets.producer.landing_writer"
BOUND = 3000
SPEED = 30.0  # the 11-minute recording in about 22 s: ~1,500 trades/s
DROPPED = re.compile(r"(BTCUSDT|ETHUSDT) (\d+) trades \(ids ")


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {seconds} s waiting for {what}")
        time.sleep(0.05)


def assert_every_trade_once(rows: list[dict], expected: dict[str, dict[int, dict]]) -> None:
    """Each recorded trade exactly once, with the recorded price and quantity."""
    counts = Counter((row["symbol"], row["trade_id"]) for row in rows)
    assert [key for key, n in counts.items() if n > 1] == []
    wanted = {(symbol, trade_id) for symbol, ids in expected.items() for trade_id in ids}
    assert set(counts) == wanted
    for row in rows:
        want = expected[row["symbol"]][row["trade_id"]]
        assert (row["price"], row["quantity"]) == (want["price"], want["quantity"])


def messages(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


class Watch:
    """Progress reports of a running producer, kept for the test to look at."""

    def __init__(self) -> None:
        self.reports: list[ProducerStats] = []

    def __call__(self, stats: ProducerStats) -> None:
        self.reports.append(stats)

    @property
    def last(self) -> ProducerStats | None:
        return self.reports[-1] if self.reports else None


def fill_until_drops(disk: SmallDisk, watch: Watch, thread: threading.Thread) -> None:
    """Fill the disk once some files landed; keep it full until trades were dropped."""
    wait_for(lambda: bool(watch.last and watch.last.trades_landed >= 2000), 30, "first files")
    disk.fill()
    wait_for(lambda: bool(watch.last and watch.last.disk_full), 10, "the disk-full state")
    wait_for(lambda: bool(watch.last and watch.last.dropped_trades > 0), 20, "dropped trades")
    received = watch.last.trades + watch.last.dropped_trades  # type: ignore[union-attr]
    time.sleep(1.0)
    assert thread.is_alive()  # still running, and still receiving
    assert watch.last.trades + watch.last.dropped_trades > received  # type: ignore[union-attr]


def test_a_full_landing_disk_is_survived_and_back_filled_to_exactly_once(
    tmp_path: Path,
    replay_server_factory: Callable[..., object],
    producer_config: Callable[..., ProducerConfig],
    expected_trades: dict[str, dict[int, dict]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    with small_disk(tmp_path / "disk", 24 * 1024 * 1024) as disk:
        server = replay_server_factory(speed=SPEED)
        config = producer_config(
            server,
            landing_dir=disk.path / "landing" / "trades",
            max_trades_per_batch=500,
            max_pending_trades=BOUND,
        )
        watch = Watch()
        result: dict[str, object] = {}
        thread = threading.Thread(
            target=lambda: result.update(
                summary=produce_recording(server, config, on_progress=watch)
            )
        )
        thread.start()
        try:
            fill_until_drops(disk, watch, thread)
            disk.free()
            wait_for(lambda: not watch.last.disk_full, 15, "the producer to resume")  # type: ignore[union-attr]
        finally:
            disk.free()
            thread.join(timeout=120)
        assert not thread.is_alive()
        summary = result["summary"]
        rows = read_landing(config.landing_dir)
        state = json.loads(config.resolved_state_path.read_text())  # type: ignore[union-attr]

    assert max(report.pending_trades for report in watch.reports) <= BOUND
    assert_every_trade_once(rows, expected_trades)
    assert summary.dropped_trades > 0  # type: ignore[attr-defined]
    assert summary.trades == len(rows)  # type: ignore[attr-defined]
    assert summary.gaps_unfilled == 0  # type: ignore[attr-defined]
    assert summary.gaps_filled_from_rest >= summary.dropped_trades  # type: ignore[attr-defined]
    assert summary.disk_full_seconds > 1.0  # type: ignore[attr-defined]
    assert "dropped" in summary.summary_line()  # type: ignore[attr-defined]
    highs = {symbol: max(ids) for symbol, ids in expected_trades.items()}
    assert state["symbols"] == {s: {"landed_high": h, "missing": []} for s, h in highs.items()}

    (first,) = messages(caplog, "landing disk full:")
    assert str(config.landing_dir) in first
    assert "No space left on device" in first
    # Every drop is said once, with its trades: the resume line sums the whole episode.
    (back,) = messages(caplog, "landing disk writable again")
    assert sum(int(n) for _, n in DROPPED.findall(back)) == summary.dropped_trades  # type: ignore[attr-defined]


def test_stopped_while_the_disk_is_full_a_restart_back_fills_what_was_never_landed(
    tmp_path: Path,
    replay_server_factory: Callable[..., object],
    producer_config: Callable[..., ProducerConfig],
    expected_trades: dict[str, dict[int, dict]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    with small_disk(tmp_path / "disk", 24 * 1024 * 1024) as disk:
        server = replay_server_factory(speed=SPEED)
        config = producer_config(
            server,
            landing_dir=disk.path / "landing" / "trades",
            max_trades_per_batch=500,
            max_pending_trades=BOUND,
        )
        state_path = config.resolved_state_path
        assert state_path is not None
        watch = Watch()
        producer = Producer(config, on_progress=watch)
        result: dict[str, object] = {}
        thread = threading.Thread(target=lambda: result.update(summary=producer.run()))
        thread.start()
        try:
            fill_until_drops(disk, watch, thread)
            saved_while_full = json.loads(state_path.read_text())
            producer.stop()
            thread.join(timeout=60)
        finally:
            disk.free()
        first_run = result["summary"]
        landed_first = read_landing(config.landing_dir)
        # The state claims nothing beyond what is in visible files.
        for symbol, entry in saved_while_full["symbols"].items():
            assert entry["landed_high"] == max(
                row["trade_id"] for row in landed_first if row["symbol"] == symbol
            )
        assert first_run.pending_trades > 0  # type: ignore[attr-defined]
        (unlanded,) = messages(caplog, "stopping with the landing disk full")
        assert f"{first_run.pending_trades} trades not landed" in unlanded  # type: ignore[attr-defined]

        produce_recording(server, config)  # the restart, with space again
        rows = read_landing(config.landing_dir)

    assert_every_trade_once(rows, expected_trades)


def test_a_producer_started_on_a_full_disk_runs_and_lands_everything_once_space_returns(
    tmp_path: Path,
    replay_server_factory: Callable[..., object],
    producer_config: Callable[..., ProducerConfig],
    expected_trades: dict[str, dict[int, dict]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    with small_disk(tmp_path / "disk", 24 * 1024 * 1024) as disk:
        disk.fill()  # before the producer writes its lock, its state or any landing file
        server = replay_server_factory(speed=SPEED)
        config = producer_config(
            server,
            landing_dir=disk.path / "landing" / "trades",
            max_trades_per_batch=500,
            max_pending_trades=BOUND,
        )
        watch = Watch()
        result: dict[str, object] = {}
        thread = threading.Thread(
            target=lambda: result.update(
                summary=produce_recording(server, config, on_progress=watch)
            )
        )
        thread.start()
        try:
            wait_for(lambda: bool(watch.last and watch.last.dropped_trades > 0), 30, "drops")
            assert thread.is_alive()
            assert watch.last.trades_landed == 0  # type: ignore[union-attr]
            disk.free()
        finally:
            disk.free()
            thread.join(timeout=120)
        assert not thread.is_alive()
        rows = read_landing(config.landing_dir)

    assert max(report.pending_trades for report in watch.reports) <= BOUND
    assert_every_trade_once(rows, expected_trades)
    assert result["summary"].dropped_trades > 0  # type: ignore[attr-defined]
    assert messages(caplog, "cannot write the producer state file")
