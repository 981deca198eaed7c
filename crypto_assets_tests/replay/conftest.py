"""Replay-area fixtures: the recording read independently (plain gzip + json) and small slices."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest


def read_frames(path: Path) -> list[tuple[int, str, dict]]:
    """``(receive ns, frame text, parsed frame)`` for every stream frame line of a recording."""
    frames = []
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            recv, frame = line.rstrip("\n").split(" ", 1)
            parsed = json.loads(frame)
            if "stream" in parsed:
                frames.append((int(recv), frame, parsed))
    return frames


def write_recording(path: Path, lines: list[str]) -> Path:
    """Write ``lines`` (without newlines) as a gzip recording."""
    with gzip.open(path, "wt", encoding="utf-8") as out:
        out.writelines(line + "\n" for line in lines)
    return path


@pytest.fixture(scope="session")
def recorded_frames(recording: Path) -> list[tuple[int, str, dict]]:
    """Every line of the bundled recording, parsed by the test, in file order."""
    return read_frames(recording)


@pytest.fixture(scope="session")
def recorded_trades(recorded_frames: list[tuple[int, str, dict]]) -> list[dict]:
    """The payload of every recorded trade frame, in file (receive) order."""
    return [parsed["data"] for _, _, parsed in recorded_frames]


@pytest.fixture
def small_recording(tmp_path: Path, recording: Path) -> Path:
    """The first 400 lines of the bundled recording (both symbols), as its own file."""
    with gzip.open(recording, "rt", encoding="utf-8") as lines:
        head = [next(lines).rstrip("\n") for _ in range(400)]
    return write_recording(tmp_path / "small.ndjson.gz", head)
