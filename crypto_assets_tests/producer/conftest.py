"""Producer fixtures: expected landing rows read from the recording with plain gzip + json."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from crypto_assets.producer.producer import Producer, ProducerConfig, ProducerSummary
from crypto_assets_tests.recorded_trades import recorded_landing_rows


@pytest.fixture(scope="session")
def expected_trades(recording: Path) -> dict[str, dict[int, dict]]:
    """Symbol -> trade id -> the landing row its recorded frame must become (no ingestion_time)."""
    expected: dict[str, dict[int, dict]] = {}
    for row in recorded_landing_rows(recording):
        del row["ingestion_time"]
        expected.setdefault(row["symbol"], {})[row["trade_id"]] = row
    return expected


def read_landing(landing_dir: Path) -> list[dict]:
    """Every row of every visible landing file."""
    return [
        json.loads(line)
        for path in sorted(landing_dir.glob("trades_*.json"))
        for line in path.read_text(encoding="utf-8").splitlines()
    ]


def produce_recording(
    server: object, config: ProducerConfig, linger_seconds: float = 0.0
) -> ProducerSummary:
    """Run the producer until the replay market has published and sent everything, then stop it.

    Stops once the market is finished, the server has sent nothing new for half a second, the
    producer's queue is empty and no gap is pending (everything sent has then been handled),
    plus `linger_seconds` of the quiet market.
    """
    producer = Producer(config)
    done = threading.Event()

    def quiet() -> bool:
        stats = server.stats  # type: ignore[attr-defined]
        return (
            stats.market.finished
            and producer.client.queued == 0
            and (producer.stats().gaps_pending == 0)
        )

    def stop_when_everything_is_handled() -> None:
        last_sent, quiet_since = -1, None
        while not done.wait(0.1):
            sent = server.stats.connections.frames_sent  # type: ignore[attr-defined]
            if sent != last_sent or not quiet():
                last_sent, quiet_since = sent, None
            elif quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= 0.5:
                done.wait(linger_seconds)
                break
        producer.stop()

    watcher = threading.Thread(target=stop_when_everything_is_handled)
    watcher.start()
    try:
        return producer.run()
    finally:
        done.set()
        watcher.join()


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
