"""The ``crypto-assets replay-server`` command as a real subprocess."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

from crypto_assets_tests.replay.ws_client import stream_client

CLI = Path(sys.executable).with_name("crypto-assets")


def test_prints_listening_serves_and_exits_zero_on_sigterm(
    recording: Path, recorded_trades: list[dict]
) -> None:
    process = subprocess.Popen(
        [str(CLI), "replay-server", "--recording", str(recording), "--port", "0", "--speed", "max"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline().strip()
        match = re.fullmatch(r"listening on ws://127\.0\.0\.1:(\d+)", line)
        assert match, line
        url = f"ws://127.0.0.1:{match.group(1)}/ws/btcusdt@trade"
        with stream_client(url) as ws:
            first = json.loads(ws.recv(timeout=5))
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        process.kill()
        process.communicate()

    assert first == next(trade for trade in recorded_trades if trade["s"] == "BTCUSDT")


def test_missing_recording_is_one_line_and_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "missing.ndjson.gz"

    result = subprocess.run(
        [str(CLI), "replay-server", "--recording", str(missing)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"crypto-assets replay-server: error: recording not found: {missing}"
    ]


def test_bad_flag_values_are_refused(recording: Path) -> None:
    result = subprocess.run(
        [str(CLI), "replay-server", "--recording", str(recording), "--gap-every", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2
    assert "gap_every (--gap-every) must be at least 1" in result.stderr


def test_first_lap_flag_starts_the_market_at_that_lap(
    recording: Path, recorded_trades: list[dict]
) -> None:
    process = subprocess.Popen(
        [
            *(str(CLI), "replay-server", "--recording", str(recording)),
            *("--speed", "max", "--loop", "--first-lap", "4"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline().strip()
        match = re.fullmatch(r"listening on ws://127\.0\.0\.1:(\d+)", line)
        assert match, line
        with stream_client(f"ws://127.0.0.1:{match.group(1)}/ws/ethusdt@trade") as ws:
            first = json.loads(ws.recv(timeout=5))
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        process.kill()
        process.communicate()

    eth_ids = [trade["t"] for trade in recorded_trades if trade["s"] == "ETHUSDT"]
    span = max(eth_ids) - min(eth_ids) + 1
    assert first["t"] == eth_ids[0] + 4 * span
