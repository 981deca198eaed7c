"""Producer fixtures: expected landing rows read from the recording with plain gzip + json."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from crypto_assets.producer.producer import ProducerConfig
from crypto_assets_tests.recorded_trades import recorded_landing_rows


@pytest.fixture(scope="session")
def expected_trades(recording: Path) -> dict[str, dict[int, dict]]:
    """Symbol -> trade id -> the landing row its recorded frame must become (no ingestion_time)."""
    expected: dict[str, dict[int, dict]] = {}
    for row in recorded_landing_rows(recording):
        del row["ingestion_time"]
        expected.setdefault(row["symbol"], {})[row["trade_id"]] = row
    return expected


@pytest.fixture
def producer_config(tmp_path: Path) -> Callable[..., ProducerConfig]:
    """A ProducerConfig for a replay server, landing under tmp_path; keyword overrides."""

    def make(server: object, **overrides: object) -> ProducerConfig:
        options = {
            "ws_url": server.url,  # type: ignore[attr-defined]
            "rest_url": server.rest_url,  # type: ignore[attr-defined]
            "pairs": ("btcusdt", "ethusdt"),
            "landing_dir": tmp_path / "landing" / "trades",
            "batch_interval_seconds": 0.5,
            "max_trades_per_batch": 1000,
            "duration_seconds": 120.0,  # a safety net: the tests stop the producer long before
            "gap_grace_seconds": 0.3,
            "progress_interval_seconds": 0.2,
        }
        options.update(overrides)
        return ProducerConfig(**options)  # type: ignore[arg-type]

    return make


@pytest.fixture
def unused_port() -> int:
    """A loopback port nobody listens on (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
