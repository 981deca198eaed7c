"""Fixtures shared across the suite: the real recording, replay servers and one Spark session."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from crypto_assets.analytics.spark_session import get_spark_session
from crypto_assets.binance.stream_client import StreamClient, combined_stream_url
from crypto_assets.recording import bundled_recording
from crypto_assets.replay.server import ReplayOptions, ReplayServer

# A slice of the raw hftbacktest recordings, committed with the tests (see data/SOURCES.md).
RAW_RECORDINGS_DIR = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def recording() -> Path:
    """The packaged recording of real BTCUSDT/ETHUSDT trade frames."""
    return bundled_recording()


@pytest.fixture(scope="session")
def raw_recordings() -> list[Path]:
    """The raw hftbacktest files (trade, depth and bookTicker frames), first 4,000 lines of each."""
    paths = sorted(RAW_RECORDINGS_DIR.glob("*usdt_2024080*.gz"))
    if not paths:
        pytest.fail(f"raw recordings not found under {RAW_RECORDINGS_DIR}")
    return paths


@pytest.fixture
def replay_server_factory(recording: Path) -> Iterator[Callable[..., object]]:
    """Start real replay servers on loopback (port 0, --speed max unless told); stop them after."""
    servers: list[ReplayServer] = []

    def start(**overrides: object) -> ReplayServer:
        options = {"recordings": (recording,), "host": "127.0.0.1", "port": 0, "speed": None}
        options.update(overrides)
        server = ReplayServer(ReplayOptions(**options))  # type: ignore[arg-type]
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    """One local Spark session for the whole test run (local[2], UI off, Delta-Spark loaded)."""
    session = get_spark_session(app_name="crypto_assets_tests", delta=True)
    yield session
    session.stop()


@pytest.fixture
def published_server(replay_server_factory: Callable[..., object]) -> object:
    """A replay server whose market has published the whole recording (REST serves only that)."""
    server = replay_server_factory()
    client = StreamClient(combined_stream_url(server.url, ["btcusdt"]))  # type: ignore[attr-defined]
    client.start()
    deadline = time.monotonic() + 60
    while not server.stats.market.finished and time.monotonic() < deadline:  # type: ignore[attr-defined]
        client.take(100_000, timeout=0.01)
    client.stop()
    return server
