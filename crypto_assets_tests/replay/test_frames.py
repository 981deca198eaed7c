"""Frame rendering on recorded events: envelope, time unit, lap shifts and corruption."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crypto_assets.replay.frames import (
    CORRUPTION_KINDS,
    FrameFormat,
    render_frame,
    server_shutdown_frame,
)
from crypto_assets.replay.recording_feed import load_recordings

COMBINED_MS = FrameFormat(combined=True, micro=False)
RAW_MICRO = FrameFormat(combined=False, micro=True)


@pytest.fixture(scope="module")
def raw_events(raw_btc_recording: Path):
    return load_recordings([raw_btc_recording]).events


def first(events, suffix: str):
    return next(event for event in events if event.stream.endswith(suffix))


def test_unshifted_combined_frame_is_the_recorded_text(recorded_frames: list, recording: Path):
    events = load_recordings([recording]).events

    frame = render_frame(events[0], COMBINED_MS, time_shift_ms=0, id_shift=0)

    assert frame.decode() == recorded_frames[0][1]


def test_shifted_trade_moves_times_and_id_only(raw_events) -> None:
    trade = first(raw_events, "@trade")
    recorded = json.loads(trade.payload)

    shifted = json.loads(render_frame(trade, RAW_MICRO, time_shift_ms=5, id_shift=100))

    assert shifted["E"] == (recorded["E"] + 5) * 1000
    assert shifted["T"] == (recorded["T"] + 5) * 1000
    assert shifted["t"] == recorded["t"] + 100
    assert {k: v for k, v in shifted.items() if k not in "ETt"} == {
        k: v for k, v in recorded.items() if k not in "ETt"
    }


def test_depth_event_time_shifts_and_book_ticker_has_none(raw_events) -> None:
    depth = first(raw_events, "@depth@100ms")
    ticker = first(raw_events, "@bookTicker")

    shifted = json.loads(render_frame(depth, RAW_MICRO, time_shift_ms=7, id_shift=0))
    ticker_frame = json.loads(render_frame(ticker, RAW_MICRO, time_shift_ms=7, id_shift=0))

    recorded = json.loads(depth.payload)
    assert shifted == {**recorded, "E": (recorded["E"] + 7) * 1000}
    assert ticker_frame == json.loads(ticker.payload)


@pytest.mark.parametrize("kind", CORRUPTION_KINDS)
def test_every_corruption_breaks_the_trade(raw_events, kind: str) -> None:
    trade = first(raw_events, "@trade")

    frame = render_frame(trade, COMBINED_MS, time_shift_ms=0, id_shift=0, corruption=kind)

    if kind == "truncated":
        with pytest.raises(json.JSONDecodeError):
            json.loads(frame)
        return
    data = json.loads(frame)["data"]
    recorded = json.loads(trade.payload)
    if kind == "missing_quantity":
        assert "q" not in data
    elif kind == "non_numeric_price":
        with pytest.raises(ValueError, match="could not convert"):
            float(data["p"])
    else:
        assert float(data["p"]) == -float(recorded["p"])
    assert {k: v for k, v in data.items() if k not in "pq"} == {
        k: v for k, v in recorded.items() if k not in "pq"
    }


def test_server_shutdown_notice_formats() -> None:
    combined = json.loads(server_shutdown_frame(1_700_000_000_000, COMBINED_MS))
    raw = json.loads(server_shutdown_frame(1_700_000_000_000, RAW_MICRO))

    assert combined == {
        "stream": "!serverShutdown",
        "data": {"e": "serverShutdown", "E": 1_700_000_000_000},
    }
    assert raw == {"e": "serverShutdown", "E": 1_700_000_000_000_000}
