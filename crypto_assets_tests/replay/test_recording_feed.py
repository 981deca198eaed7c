"""Loading recordings: real files, merged by receive time, non-frames skipped, errors one line."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from crypto_assets.errors import CryptoAssetsError
from crypto_assets.replay.recording_feed import load_recordings
from crypto_assets_tests.replay.recordings import read_frames, write_recording


def test_bundled_recording_yields_every_trade_with_its_recorded_bytes(
    recording: Path, recorded_frames: list
) -> None:
    loaded = load_recordings([recording])

    assert len(loaded.events) == len(recorded_frames)
    for event, (recv, _, parsed) in zip(loaded.events, recorded_frames, strict=True):
        assert event.recv_ns == recv
        assert event.stream == parsed["stream"]
        assert json.loads(event.payload) == parsed["data"]
    ids = {}
    for _, _, parsed in recorded_frames:
        ids.setdefault(parsed["data"]["s"], []).append(parsed["data"]["t"])
    for symbol, symbol_ids in ids.items():
        assert loaded.symbols[symbol].ids == tuple(sorted(symbol_ids))
        assert loaded.symbols[symbol].span == max(symbol_ids) - min(symbol_ids) + 1


def test_raw_files_merge_by_receive_time_and_skip_the_depth_snapshot(
    raw_recordings: list[Path],
) -> None:
    loaded = load_recordings(raw_recordings)

    expected = [frame for path in raw_recordings for frame in read_frames(path)]
    assert len(loaded.events) == len(expected)
    receive_times = [event.recv_ns for event in loaded.events]
    assert receive_times == sorted(receive_times)
    streams = {event.stream for event in loaded.events}
    assert streams == {parsed["stream"] for _, _, parsed in expected}
    assert any(stream.endswith("@bookTicker") for stream in streams)
    assert any("@depth" in stream for stream in streams)


def test_the_same_trades_twice_are_served_once(recording: Path, recorded_frames: list) -> None:
    loaded = load_recordings([recording, recording])

    assert loaded.trade_count == len(recorded_frames)
    assert len(loaded.events) == len(recorded_frames)


def test_lap_is_longer_than_the_recorded_time_span(
    recording: Path, recorded_trades: list[dict]
) -> None:
    times = [trade["T"] for trade in recorded_trades] + [trade["E"] for trade in recorded_trades]

    loaded = load_recordings([recording])

    assert loaded.lap_ms > max(times) - min(times)
    assert loaded.first_trade_time == recorded_trades[0]["T"]


def test_missing_recording_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(CryptoAssetsError, match="recording not found") as info:
        load_recordings([tmp_path / "nope.gz"])
    assert "\n" not in str(info.value)


def test_plain_text_file_is_not_a_recording(tmp_path: Path) -> None:
    path = tmp_path / "plain.gz"
    path.write_text('1 {"stream":"btcusdt@trade","data":{}}\n')

    with pytest.raises(CryptoAssetsError, match="not a readable gzip file"):
        load_recordings([path])


def test_recording_without_trades_is_refused(tmp_path: Path, raw_recordings: list[Path]) -> None:
    with gzip.open(raw_recordings[0], "rt") as lines:
        depth_only = [line.rstrip("\n") for line in lines if "@trade" not in line][:50]
    path = write_recording(tmp_path / "depth.gz", depth_only)

    with pytest.raises(CryptoAssetsError, match="no @trade frames"):
        load_recordings([path])


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("not-a-number {}", "expected `<receive ns> <frame json>`"),
        ('1723161254087896568 {"stream":"btcusdt@trade","data":{"e":', "invalid"),
        ('1723161254087896568 {"stream":"btcusdt@trade","data":{"e":"trade"}}', "lacks"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path: Path, line: str, why: str) -> None:
    path = write_recording(tmp_path / "bad.gz", [line])

    with pytest.raises(CryptoAssetsError, match="line 1") as info:
        load_recordings([path])
    assert why in str(info.value)


def test_looped_positions_count_trades_from_lap_0_and_map_back_to_ids(
    recording: Path, recorded_trades: list[dict]
) -> None:
    loaded = load_recordings([recording])
    ids = [t["t"] for t in recorded_trades if t["s"] == "ETHUSDT"]
    table, low, span = loaded.symbols["ETHUSDT"], min(ids), max(ids) - min(ids) + 1

    assert table.looped_position(low) == 0
    assert table.looped_position(low + 2 * span + 7) == 2 * len(ids) + 7
    assert table.looped_position(low - 1) == -1  # below the recording
    for position in (0, 7, len(ids) - 1, len(ids), 3 * len(ids) + 5):
        assert table.looped_position(table.looped_id(position)) == position
    assert table.looped_id(len(ids)) == low + span  # lap 1's first


def test_a_timeline_can_open_mid_lap_and_counts_what_came_before(
    recording: Path, recorded_trades: list[dict]
) -> None:
    loaded = load_recordings([recording])
    opening = 1000
    before = loaded.trades_before(opening)
    timeline = loaded.timeline(loop=True, first_lap=2, first_event=opening)
    lap, event = next(timeline)

    assert (lap, event.trade.trade_id) == (2, recorded_trades[opening]["t"])
    assert before == {
        symbol: sum(1 for t in recorded_trades[:opening] if t["s"] == symbol)
        for symbol in ("BTCUSDT", "ETHUSDT")
    }
    rest_of_lap = [next(timeline) for _ in range(len(recorded_trades) - opening)]
    assert rest_of_lap[-1][0] == 3  # the next lap starts at its first event
    assert rest_of_lap[-1][1].trade.trade_id == recorded_trades[0]["t"]
