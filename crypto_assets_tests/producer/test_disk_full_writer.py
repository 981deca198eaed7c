"""The landing writer on a real, full tmpfs: bounded pending trades, exact drop accounting, resume.

ENOSPC comes from the kernel (a real small tmpfs filled by `small_disk`), not from a seam; only
the clock is a plain settable object, so backoff and report intervals are exact.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from crypto_assets.producer.landing_writer import LandingWriter, trade_id_ranges
from crypto_assets.producer.producer import ProducerConfig
from crypto_assets.producer.trade_sequencer import Gap, TradeSequencer
from crypto_assets.settings import SettingsError
from crypto_assets_tests.producer.small_disk import small_disk

WRITER_LOG = "crypto_assets.producer.landing_writer"
PAD = "x" * 200  # ~250-byte lines, like real landing rows


class SettableClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def trade_line(symbol: str, trade_id: int) -> str:
    return json.dumps({"symbol": symbol, "trade_id": trade_id, "pad": PAD})


def sent_trades(n: int) -> list[tuple[str, int]]:
    """Interleaved BTCUSDT/ETHUSDT trades with contiguous ids per symbol."""
    return [
        ("BTCUSDT", 5000 + i // 2) if i % 2 == 0 else ("ETHUSDT", 900 + i // 2) for i in range(n)
    ]


def landed(directory: Path) -> list[tuple[str, int]]:
    rows = [
        json.loads(line)
        for path in sorted(directory.glob("trades_*.json"))
        for line in path.read_text().splitlines()
    ]
    return [(row["symbol"], row["trade_id"]) for row in rows]


def messages(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == WRITER_LOG and text in r.getMessage()
    ]


def test_a_full_disk_bounds_pending_drops_the_oldest_exactly_and_resumes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=WRITER_LOG)
    clock = SettableClock()
    dropped_reports: list[dict[str, list[tuple[int, int]]]] = []
    with small_disk(tmp_path / "disk", 512 * 1024) as disk:
        landing = disk.path / "trades"
        writer = LandingWriter(
            landing,
            disk.path / "_quarantine",
            batch_interval_seconds=1.0,
            max_trades_per_batch=10,
            clock=clock,
            max_pending_trades=100,
            on_dropped=lambda ranges: dropped_reports.append(dict(ranges)),
            report_interval_seconds=10.0,
        )
        trades = sent_trades(400)
        for symbol, trade_id in trades[:25]:
            writer.add(trade_line(symbol, trade_id))
        assert len(landed(landing)) == 20
        assert writer.pending == 5

        disk.fill()
        highest_pending = 0
        for symbol, trade_id in trades[25:]:
            writer.add(trade_line(symbol, trade_id))
            highest_pending = max(highest_pending, writer.pending)
            clock.now += 0.05  # 20 trades/s
            writer.flush_if_due()
        assert writer.disk_full
        assert highest_pending == 100  # the bound is reached, never passed
        # No hidden temporary file is left behind to hold the little space there is.
        assert [p.name for p in landing.iterdir() if p.name.startswith(".")] == []
        (first,) = messages(caplog, "landing disk full")
        assert str(landing) in first
        assert "No space left on device" in first
        assert "100 trades" in first

        # The drops are the oldest unlanded trades, and the reports name exactly those ids.
        unlanded = trades[20:]
        dropped = unlanded[: writer.dropped_trades]
        assert writer.dropped_trades == len(unlanded) - writer.pending > 0
        reported = {
            (symbol, trade_id)
            for report in dropped_reports
            for symbol, ranges in report.items()
            for first_id, last_id in ranges
            for trade_id in range(first_id, last_id + 1)
        }
        assert reported == set(dropped)
        assert sum(len(r) for r in dropped_reports) >= 1
        # 375 trades over 18.75 s: reports at 10 s only (one per interval), each with ranges.
        still = messages(caplog, "landing disk still full")
        assert len(still) == 1
        assert "trades pending (bound 100)" in still[0]
        assert "BTCUSDT" in still[0]

        disk.free()
        clock.now += 6.0  # past the longest backoff (5 s)
        writer.flush_if_due()
        assert not writer.disk_full
        (back,) = messages(caplog, "landing disk writable again")
        blocked_for = writer.disk_full_seconds
        assert f"after {blocked_for:.1f} s" in back
        for symbol in ("BTCUSDT", "ETHUSDT"):
            ids = [i for s, i in dropped if s == symbol]
            (only_range,) = trade_id_ranges(ids)  # the oldest of each symbol: one range
            assert f"{symbol} {len(ids)} trades (ids {only_range[0]}..{only_range[1]})" in back

        on_disk = landed(landing)
        assert len(on_disk) == len(set(on_disk))
        assert set(on_disk) | set(dropped) == set(trades)
        assert not set(on_disk) & set(dropped)
        assert all(len(p.read_text().splitlines()) <= 10 for p in landing.glob("trades_*.json"))


def test_the_quarantine_on_a_full_disk_waits_instead_of_failing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=WRITER_LOG)
    with small_disk(tmp_path / "disk", 256 * 1024) as disk:
        quarantine = disk.path / "_quarantine"
        writer = LandingWriter(disk.path / "trades", quarantine, 1.0, 10, clock=SettableClock())
        disk.fill()
        writer.reject("{bad json" + PAD, "bad_json", "Expecting value", 1)
        writer.flush()
        writer.reject("{worse" + PAD, "bad_json", "Expecting value", 2)
        writer.flush()
        assert len(messages(caplog, "quarantine disk full")) == 1
        assert list(quarantine.glob("quarantine_*.json")) == []
        disk.free()
        writer.flush()
        (path,) = quarantine.glob("quarantine_*.json")
        assert [json.loads(line)["received_time"] for line in path.read_text().splitlines()] == [
            1,
            2,
        ]
        assert messages(caplog, "quarantine writable again")


def test_reopened_ids_are_gaps_again_and_survive_an_older_gap_given_up() -> None:
    sequencer = TradeSequencer(grace_seconds=0.0)
    for trade_id in (10, 11, 12, 20, 21, 22, 23):
        assert sequencer.accept("BTCUSDT", trade_id, now=1.0)
    (older,) = sequencer.due_gaps(now=1.0)  # ids 13..19, detected at 1.0
    sequencer.reopen("BTCUSDT", 20, 21, now=2.0)  # dropped unlanded
    assert sequencer.progress()["BTCUSDT"].missing == ((13, 19), (20, 21))
    # Giving up the older gap over a wider range keeps what was reopened after it.
    assert sequencer.resolve(Gap("BTCUSDT", older.first_id, 22, older.detected_at)) == 7
    assert sequencer.progress()["BTCUSDT"].missing == ((20, 21),)
    assert sequencer.accept("BTCUSDT", 20, now=3.0)  # the REST back-fill lands it once
    assert not sequencer.accept("BTCUSDT", 20, now=3.0)
    with pytest.raises(ValueError, match="never accepted"):
        sequencer.reopen("BTCUSDT", 30, 31, now=3.0)


def test_the_pending_bound_is_a_whole_batch_at_least() -> None:
    base = {"ws_url": "ws://127.0.0.1:9", "pairs": ("btcusdt",), "landing_dir": Path("l")}
    assert ProducerConfig(**base).pending_bound == 200_000
    assert ProducerConfig(**base, max_trades_per_batch=500_000).pending_bound == 500_000
    assert ProducerConfig(**base, max_pending_trades=5000).pending_bound == 5000
    with pytest.raises(
        SettingsError, match=r"max_pending_trades=10: must be ≥ max_trades_per_batch"
    ):
        ProducerConfig(**base, max_trades_per_batch=100, max_pending_trades=10)
