"""One producer per landing folder: two real ``crypto-assets produce`` processes, one replay."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from crypto_assets.folder_lock import FolderLock
from crypto_assets.producer.producer import Producer
from crypto_assets.producer.producer_files import ProducerFiles
from crypto_assets_tests.producer.landing_reader import read_landing

SUMMARY = re.compile(r"^produced (\d+) trades ")


def _produce(server: object, landing: Path, *extra: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRYPTO_", "BINANCE_"))}
    command = [
        sys.executable, "-m", "crypto_assets.cli", "produce",
        "--ws-url", server.url,  # type: ignore[attr-defined]
        "--pairs", "btcusdt,ethusdt", "--landing-dir", str(landing),
        "--max-trades-per-batch", "100", *extra,
    ]  # fmt: skip
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def _wait_for_a_file(landing: Path, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if any(landing.glob("trades_*.json")):
            return
        time.sleep(0.05)
    pytest.fail(f"the first producer landed nothing (exit code {process.poll()})")


def test_a_second_producer_on_the_same_folder_is_refused_and_the_first_goes_on(
    replay_server_factory: Callable[..., object], tmp_path: Path
) -> None:
    server = replay_server_factory(speed=5.0)
    landing = tmp_path / "landing" / "trades"
    first = _produce(server, landing, "--duration-minutes", "none")
    try:
        _wait_for_a_file(landing, first)
        second = _produce(server, landing, "--duration-seconds", "30")
        _, refusal = second.communicate(timeout=60)
        files_before_stop = len(list(landing.glob("trades_*.json")))
    finally:
        first.send_signal(signal.SIGTERM)
        stdout, stderr = first.communicate(timeout=60)

    assert second.returncode != 0
    lock = ProducerFiles.of(landing).lock_path
    assert refusal.splitlines() == [
        f"crypto-assets produce: error: landing folder {landing} is in use by another producer "
        f"(pid {first.pid}, lock {lock}): stop that producer first, or give this one another "
        "landing folder"
    ]
    # The first producer went on landing after the refusal and stopped cleanly with everything.
    assert first.returncode == 0, stderr
    rows = read_landing(landing)
    match = SUMMARY.match(stdout.strip().splitlines()[-1])
    assert match, stdout
    assert int(match.group(1)) == len(rows) > 0
    assert len(list(landing.glob("trades_*.json"))) >= files_before_stop
    assert len({(r["symbol"], r["trade_id"]) for r in rows}) == len(rows)


def test_a_finished_producer_frees_the_folder_though_still_referenced(
    replay_server_factory: Callable[..., object], producer_config: Callable[..., object]
) -> None:
    config = producer_config(replay_server_factory(), duration_seconds=1.0)
    producer = Producer(config)  # kept referenced: the end of its run, not the collector, unlocks
    producer.run()
    lock_path = ProducerFiles.of(config.landing_dir).lock_path
    assert lock_path.read_text() == f"{os.getpid()}\n"  # it was held by this process
    with FolderLock(lock_path, config.landing_dir, "landing folder", "a test", "-") as lock:
        assert lock.held
