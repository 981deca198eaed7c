"""Replay-area fixtures: the recording read independently (plain gzip + json) and small slices."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from crypto_assets_tests.producer.conftest import unused_port  # noqa: F401 - a fixture
from crypto_assets_tests.replay.recordings import read_frames, write_recording


@pytest.fixture(scope="session")
def recorded_frames(recording: Path) -> list[tuple[int, str, dict]]:
    """Every line of the bundled recording, parsed by the test, in file order."""
    return read_frames(recording)


@pytest.fixture(scope="session")
def recorded_trades(recorded_frames: list[tuple[int, str, dict]]) -> list[dict]:
    """The payload of every recorded trade frame, in file (receive) order."""
    return [parsed["data"] for _, _, parsed in recorded_frames]


@pytest.fixture(scope="session")
def raw_btc_recording(raw_recordings: list[Path]) -> Path:
    """One raw hftbacktest file: BTCUSDT trade, depth@100ms and bookTicker frames."""
    return next(path for path in raw_recordings if path.name.startswith("btcusdt_20240808"))


@pytest.fixture(scope="session")
def raw_btc_frames(raw_btc_recording: Path) -> list[tuple[int, str, dict]]:
    """Every stream frame of that file, parsed by the test."""
    return read_frames(raw_btc_recording)


@pytest.fixture
def small_recording(tmp_path: Path, recording: Path) -> Path:
    """The first 400 lines of the bundled recording (both symbols), as its own file."""
    with gzip.open(recording, "rt", encoding="utf-8") as lines:
        head = [next(lines).rstrip("\n") for _ in range(400)]
    return write_recording(tmp_path / "small.ndjson.gz", head)
