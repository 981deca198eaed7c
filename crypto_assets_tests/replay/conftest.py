"""Replay-area fixtures: the recording read independently (plain gzip + json) and small slices."""

from __future__ import annotations

import gzip
import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
from websockets.sync.client import ClientConnection, connect


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


@contextmanager
def stream_client(url: str) -> Iterator[ClientConnection]:
    """The websockets library's client, cut off abruptly on exit.

    At --speed max the server has pushed megabytes into the socket by then; a polite close
    would have to read them all to reach the server's close frame.
    """
    with connect(url, close_timeout=1) as ws:
        try:
            yield ws
        finally:
            with suppress(OSError):  # already closed by the server
                ws.socket.shutdown(socket.SHUT_RDWR)


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
