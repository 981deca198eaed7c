"""The producer against the real replay server: exactly once, with and without injected faults."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from crypto_assets.binance.stream_client import StreamUnavailableError
from crypto_assets.producer.producer import Producer, ProducerConfig, default_rest_url
from crypto_assets.replay.continuation import market_segment
from crypto_assets.replay.recording_feed import load_recordings
from crypto_assets.settings import SettingsError
from crypto_assets_tests.producer.landing_reader import read_landing
from crypto_assets_tests.producer.producer_runs import produce_recording
from crypto_assets_tests.recorded_trades import LANDING_FIELDS


def assert_landed_exactly_once(
    rows: list[dict],
    expected: dict[str, dict[int, dict]],
    symbols: set[str],
    started_ms: int,
    ended_ms: int,
) -> dict[str, int]:
    """Every expected trade of `symbols` appears once with the frame's values; returns counts."""
    ids = Counter((row["symbol"], row["trade_id"]) for row in rows)
    assert [key for key, n in ids.items() if n > 1] == []
    assert {row["symbol"] for row in rows} == symbols
    for symbol in symbols:
        landed = sorted(trade_id for s, trade_id in ids if s == symbol)
        assert landed == sorted(expected[symbol])
    for row in rows:
        want = expected[row["symbol"]][row["trade_id"]]
        ingestion_time = row.pop("ingestion_time")
        assert started_ms <= ingestion_time <= ended_ms
        if row["event_time"] != want["event_time"]:
            # Back-filled from REST, which has no event time: the trade time stands in for it.
            assert row["event_time"] == want["trade_time"]
            row["event_time"] = want["event_time"]
        assert row == want
    return {symbol: sum(1 for s, _ in ids if s == symbol) for symbol in symbols}


def test_every_recorded_trade_lands_exactly_once_with_the_frame_values(
    replay_server_factory: Callable[..., object],
    producer_config: Callable[..., ProducerConfig],
    expected_trades: dict[str, dict[int, dict]],
) -> None:
    server = replay_server_factory()
    config = producer_config(server)
    started_ms = time.time_ns() // 1_000_000
    summary = produce_recording(server, config)
    rows = read_landing(config.landing_dir)
    counts = assert_landed_exactly_once(
        rows, expected_trades, {"BTCUSDT", "ETHUSDT"}, started_ms, time.time_ns() // 1_000_000
    )
    assert summary.trades == len(rows) == 34_419
    assert dict(summary.per_symbol) == counts
    assert summary.files == len(list(config.landing_dir.glob("trades_*.json")))
    assert (summary.quarantined, summary.gaps_unfilled, summary.gaps_filled) == (0, 0, 0)
    assert not (config.landing_dir.parent / "_quarantine").exists()


def test_drops_shutdowns_corruption_and_gaps_together_still_land_everything_once(
    replay_server_factory: Callable[..., object],
    producer_config: Callable[..., ProducerConfig],
    expected_trades: dict[str, dict[int, dict]],
) -> None:
    server = replay_server_factory(
        drop_after=7000, shutdown_after=4000, corrupt_every=101, gap_every=97
    )
    config = producer_config(server)
    started_ms = time.time_ns() // 1_000_000
    summary = produce_recording(server, config)
    rows = read_landing(config.landing_dir)
    assert_landed_exactly_once(
        rows, expected_trades, {"BTCUSDT", "ETHUSDT"}, started_ms, time.time_ns() // 1_000_000
    )
    market = server.stats.market  # type: ignore[attr-defined]
    connections = server.stats.connections  # type: ignore[attr-defined]
    assert market.trades_withheld > 300
    assert market.trades_corrupted > 300
    assert connections.connections_dropped >= 1
    assert connections.shutdowns_sent >= 1
    # Corrupted frames are quarantined raw, with a reason; REST still has those trades.
    quarantined = read_landing_quarantine(config.landing_dir.parent / "_quarantine")
    # (a dropped connection also loses the corrupted frames it had in flight)
    assert 0 < len(quarantined) == summary.quarantined <= market.trades_corrupted
    assert {q["reason"] for q in quarantined} >= {"bad_json", "non_numeric_price_or_quantity"}
    assert all(isinstance(q["raw"], str) and q["received_time"] >= started_ms for q in quarantined)
    assert summary.gaps_filled >= market.trades_withheld + market.trades_corrupted
    assert summary.gaps_unfilled == 0
    assert summary.reconnects >= connections.connections_dropped
    assert summary.trades == len(rows)


def test_every_corrupted_frame_is_quarantined_and_every_withheld_trade_filled(
    replay_server_factory: Callable[..., object],
    producer_config: Callable[..., ProducerConfig],
    expected_trades: dict[str, dict[int, dict]],
) -> None:
    server = replay_server_factory(corrupt_every=50, gap_every=67)
    config = producer_config(server)
    started_ms = time.time_ns() // 1_000_000
    summary = produce_recording(server, config)
    rows = read_landing(config.landing_dir)
    assert_landed_exactly_once(
        rows, expected_trades, {"BTCUSDT", "ETHUSDT"}, started_ms, time.time_ns() // 1_000_000
    )
    market = server.stats.market  # type: ignore[attr-defined]
    quarantined = read_landing_quarantine(config.landing_dir.parent / "_quarantine")
    assert len(quarantined) == summary.quarantined == market.trades_corrupted
    assert summary.gaps_filled == market.trades_withheld + market.trades_corrupted
    assert (summary.gaps_unfilled, summary.duplicates_dropped, summary.reconnects) == (0, 0, 0)
    reasons = Counter(q["reason"] for q in quarantined)
    assert set(reasons) == {
        "bad_json",
        "non_numeric_price_or_quantity",
        "missing_field",
        "non_positive_price_or_quantity",
    }


def read_landing_quarantine(directory: Path) -> list[dict]:
    return [
        json.loads(line)
        for path in sorted(directory.glob("quarantine_*.json"))
        for line in path.read_text(encoding="utf-8").splitlines()
    ]


def assert_contiguous_prefix_once(
    rows: list[dict], expected: dict[str, dict[int, dict]], started_ms: int
) -> None:
    """The rows are the first N recorded trades of each symbol, once each, with frame values."""
    by_symbol: dict[str, list[int]] = {}
    for row in rows:
        by_symbol.setdefault(row["symbol"], []).append(row["trade_id"])
    assert set(by_symbol) == {"BTCUSDT", "ETHUSDT"}
    for symbol, ids in by_symbol.items():
        first = min(expected[symbol])
        assert sorted(ids) == list(range(first, first + len(ids)))  # contiguous, no duplicates
    prefix = {s: {i: expected[s][i] for i in ids} for s, ids in by_symbol.items()}
    assert_landed_exactly_once(
        rows, prefix, set(by_symbol), started_ms, time.time_ns() // 1_000_000
    )


def test_rotation_overlap_delivers_duplicates_that_are_dropped(
    replay_server_factory: Callable[..., object],
    producer_config: Callable[..., ProducerConfig],
    expected_trades: dict[str, dict[int, dict]],
) -> None:
    # At 20x the recording sends ~1000 frames/s: serverShutdown after ~0.5 s, then 2.5 s more
    # streaming on the old connection while the new one (opened ≥ 1 s after the first) streams.
    server = replay_server_factory(speed=20.0, shutdown_after=500, shutdown_grace=2.5)
    config = producer_config(server, duration_seconds=4.0)
    started_ms = time.time_ns() // 1_000_000
    summary = Producer(config).run()
    rows = read_landing(config.landing_dir)
    assert_contiguous_prefix_once(rows, expected_trades, started_ms)
    assert server.stats.connections.shutdowns_sent >= 1  # type: ignore[attr-defined]
    assert summary.duplicates_dropped > 0
    assert summary.reconnects >= 1
    assert summary.gaps_unfilled == 0


def test_connections_older_than_max_age_are_rotated_without_loss(
    replay_server_factory: Callable[..., object],
    producer_config: Callable[..., ProducerConfig],
    expected_trades: dict[str, dict[int, dict]],
) -> None:
    server = replay_server_factory(speed=20.0)  # the 11-minute recording in ~33 s
    config = producer_config(server, max_connection_age=1.5, duration_seconds=5.0)
    started_ms = time.time_ns() // 1_000_000
    summary = Producer(config).run()
    rows = read_landing(config.landing_dir)
    assert summary.reconnects >= 2  # rotations every 1.5 s over 5 s
    assert summary.duplicates_dropped > 0  # the connections overlapped
    assert_contiguous_prefix_once(rows, expected_trades, started_ms)


def test_requesting_only_btcusdt_lands_only_btcusdt(
    replay_server_factory: Callable[..., object],
    producer_config: Callable[..., ProducerConfig],
    expected_trades: dict[str, dict[int, dict]],
) -> None:
    server = replay_server_factory()
    config = producer_config(server, pairs=("btcusdt",))
    started_ms = time.time_ns() // 1_000_000
    summary = produce_recording(server, config)
    rows = read_landing(config.landing_dir)
    assert_landed_exactly_once(
        rows, expected_trades, {"BTCUSDT"}, started_ms, time.time_ns() // 1_000_000
    )
    assert dict(summary.per_symbol) == {"BTCUSDT": len(expected_trades["BTCUSDT"])}


def test_a_polling_reader_never_sees_a_partial_file_while_the_producer_writes(
    replay_server_factory: Callable[..., object],
    producer_config: Callable[..., ProducerConfig],
) -> None:
    server = replay_server_factory()
    config = producer_config(server, max_trades_per_batch=300)
    config.landing_dir.mkdir(parents=True)
    seen: set[str] = set()
    broken: list[str] = []
    done = threading.Event()

    def poll() -> None:
        while True:
            finished = done.is_set()
            for path in config.landing_dir.iterdir():
                if path.name.startswith(".") or path.name in seen:
                    continue
                text = path.read_text(encoding="utf-8")
                try:
                    rows = [json.loads(line) for line in text.splitlines()]
                except json.JSONDecodeError:
                    broken.append(path.name)
                    rows = []
                if not text.endswith("\n") or any(set(r) != LANDING_KEYS for r in rows):
                    broken.append(path.name)
                seen.add(path.name)
            if finished:
                return

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        summary = produce_recording(server, config)
    finally:
        done.set()
        reader.join()
    assert broken == []
    assert len(seen) == summary.files >= 34_419 // 300


LANDING_KEYS = set(LANDING_FIELDS)


def test_a_silent_connection_is_replaced(
    replay_server_factory: Callable[..., object],
    producer_config: Callable[..., ProducerConfig],
) -> None:
    # The recording ends quickly at max speed; afterwards the market is open and quiet.
    server = replay_server_factory()
    config = producer_config(server, silence_timeout=0.5)
    summary = produce_recording(server, config, linger_seconds=3.0)
    assert summary.trades == 34_419
    assert summary.reconnects >= 2
    assert server.stats.connections.connections_opened >= 3  # type: ignore[attr-defined]


def test_progress_is_reported_while_running(
    replay_server_factory: Callable[..., object],
    producer_config: Callable[..., ProducerConfig],
) -> None:
    server = replay_server_factory(speed=50.0)
    reports = []
    producer = Producer(producer_config(server, duration_seconds=2.0), on_progress=reports.append)
    summary = producer.run()
    assert len(reports) >= 3
    trades = [r.trades for r in reports]
    assert trades == sorted(trades)
    assert 0 < trades[-1] <= summary.trades


def test_a_stop_event_from_another_thread_ends_the_run_with_everything_landed(
    replay_server_factory: Callable[..., object],
    producer_config: Callable[..., ProducerConfig],
) -> None:
    server = replay_server_factory(speed=10.0)
    # Neither the interval nor the batch size is reached: only the stop writes files (the batch,
    # then, if a gap is still open, its back-fill: on a loaded machine a frame can come late).
    config = producer_config(server, batch_interval_seconds=60.0, max_trades_per_batch=100_000)
    stop_event = threading.Event()
    stopped_at: list[float] = []

    def stop() -> None:
        stopped_at.append(time.time())
        stop_event.set()

    timer = threading.Timer(1.5, stop)
    timer.start()
    summary = Producer(config).run(stop_event=stop_event)
    timer.join()
    rows = read_landing(config.landing_dir)
    assert summary.trades == len(rows) > 0
    files = sorted(config.landing_dir.glob("trades_*.json"))
    assert summary.files == len(files)
    assert len(files) == 1 or (len(files) == 2 and summary.gaps_filled > 0)
    assert all(path.stat().st_mtime >= stopped_at[0] for path in files), "landed before the stop"


def test_a_stream_lost_for_good_raises_after_landing_what_it_had(
    replay_server_factory: Callable[..., object],
    producer_config: Callable[..., ProducerConfig],
) -> None:
    server = replay_server_factory(speed=20.0)
    config = producer_config(server, max_consecutive_failures=2, fill_tail_on_stop=False)
    producer = Producer(config)
    killer = threading.Timer(1.5, server.stop)  # type: ignore[attr-defined]
    killer.start()
    try:
        with pytest.raises(StreamUnavailableError, match="attempts in a row failed") as caught:
            producer.run()
    finally:
        killer.cancel()
    assert "\n" not in str(caught.value)
    assert "CRYPTO_SOURCE=replay" in str(caught.value)
    landed = read_landing(config.landing_dir)
    assert len(landed) == producer.stats().trades > 0


def test_an_unreachable_url_fails_fast_with_one_line(tmp_path: Path) -> None:
    config = ProducerConfig(
        ws_url="ws://127.0.0.1:9", pairs=("btcusdt",), landing_dir=tmp_path / "trades"
    )
    with pytest.raises(StreamUnavailableError) as caught:
        Producer(config).run()
    message = str(caught.value)
    assert "cannot reach ws://127.0.0.1:9: connection refused" in message
    assert "\n" not in message
    assert not list((tmp_path / "trades").glob("trades_*"))


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"pairs": ()}, "pairs"),
        ({"ws_url": "http://x"}, "ws_url"),
        ({"batch_interval_seconds": 0}, "batch_interval_seconds"),
        ({"max_trades_per_batch": 0}, "max_trades_per_batch"),
        ({"duration_seconds": -1.0}, "duration_seconds"),
    ],
)
def test_invalid_configuration_is_a_settings_error(
    tmp_path: Path, overrides: dict, field: str
) -> None:
    options = {"ws_url": "ws://127.0.0.1:1", "pairs": ("btcusdt",), "landing_dir": tmp_path}
    options.update(overrides)
    with pytest.raises(SettingsError, match=field):
        ProducerConfig(**options)


def test_rest_url_defaults_to_the_same_loopback_host_else_binance() -> None:
    assert default_rest_url("ws://127.0.0.1:9443", "https://api.x") == "http://127.0.0.1:9443"
    assert default_rest_url("ws://localhost:81/", "https://api.x") == "http://localhost:81"
    assert default_rest_url("wss://stream.binance.com:9443", "https://api.x") == "https://api.x"


def test_the_state_file_lives_beside_the_landing_dir_unless_told(tmp_path: Path) -> None:
    options = {"ws_url": "ws://127.0.0.1:1", "pairs": ("btcusdt",), "landing_dir": tmp_path / "t"}
    default = ProducerConfig(**options).resolved_state_path
    assert default == tmp_path / "_state" / "t" / "producer_state.json"  # see ProducerFiles
    assert ProducerConfig(**options, state_path=None).resolved_state_path is None
    chosen = ProducerConfig(**options, state_path=tmp_path / "s.json").resolved_state_path
    assert chosen == tmp_path / "s.json"


def test_a_new_replay_of_the_same_recording_starts_afresh_instead_of_landing_nothing(
    replay_server_factory: Callable[..., object],
    producer_config: Callable[..., ProducerConfig],
    expected_trades: dict[str, dict[int, dict]],
    recording: Path,
) -> None:
    # A replay restarts its ids; keeping only ids above the saved high would land nothing.
    btc = expected_trades["BTCUSDT"]
    segment = market_segment(load_recordings([recording]))  # what each new replay publishes
    for run in (1, 2):
        server = replay_server_factory()
        config = producer_config(server, pairs=("btcusdt",), resume=segment.resume)
        summary = produce_recording(server, config)
        assert summary.trades == len(btc), run
        assert summary.duplicates_dropped == 0
        state_path = config.resolved_state_path
        assert state_path is not None
        saved = json.loads(state_path.read_text())["symbols"]
        assert saved == {"BTCUSDT": {"landed_high": max(btc), "missing": []}}
    assert len(read_landing(config.landing_dir)) == 2 * len(btc)


def test_a_landing_folder_beside_another_lands_every_trade_of_its_own_run(
    replay_server_factory: Callable[..., object],
    producer_config: Callable[..., ProducerConfig],
    expected_trades: dict[str, dict[int, dict]],
    tmp_path: Path,
) -> None:
    # /parent/a then /parent/b, each against a fresh replay of the same recording: b's run must
    # not take a's state for its own (it used to land nothing: every id looked landed already).
    btc = expected_trades["BTCUSDT"]
    for name in ("a", "b"):
        server = replay_server_factory()
        landing = tmp_path / "parent" / name
        summary = produce_recording(
            server, producer_config(server, pairs=("btcusdt",), landing_dir=landing)
        )
        assert summary.trades == len(read_landing(landing)) == len(btc), name
        assert summary.duplicates_dropped == 0, name


def test_two_producers_at_once_on_folders_under_one_parent_each_land_every_trade(
    replay_server_factory: Callable[..., object],
    producer_config: Callable[..., ProducerConfig],
    expected_trades: dict[str, dict[int, dict]],
    tmp_path: Path,
) -> None:
    # Neither refuses the other: each folder has its own lock.
    results: dict[str, object] = {}

    def produce(name: str) -> None:
        server = replay_server_factory()
        config = producer_config(server, pairs=("btcusdt",), landing_dir=tmp_path / "parent" / name)
        try:
            results[name] = produce_recording(server, config)
        except Exception as exc:  # reported below, with the other thread's result
            results[name] = exc

    threads = [threading.Thread(target=produce, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    btc = expected_trades["BTCUSDT"]
    for name in ("a", "b"):
        summary = results[name]
        assert not isinstance(summary, Exception), f"{name}: {summary}"
        assert summary.trades == len(read_landing(tmp_path / "parent" / name)) == len(btc)  # type: ignore[union-attr]
