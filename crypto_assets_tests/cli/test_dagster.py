"""``crypto-assets run`` as a new user runs it (through `make run`): a real subprocess."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from crypto_assets_tests.orchestration.landing_for_tests import landed_trades


def run_cli(tmp_path: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRYPTO_", "BINANCE_"))}
    env.pop("DAGSTER_HOME", None)
    env.update(CRYPTO_DATA_DIR=str(tmp_path / "data"), TRADING_PAIRS="btcusdt,ethusdt", **settings)
    return subprocess.run(
        [sys.executable, "-m", "crypto_assets.cli", "run"],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_run_against_an_unreachable_live_source_is_one_line_and_exit_code_2(
    tmp_path: Path,
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connection refused
        result = run_cli(tmp_path, CRYPTO_SOURCE="live", BINANCE_WS_URL=f"ws://127.0.0.1:{port}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"crypto-assets run: error: cannot reach ws://127.0.0.1:{port}: connection refused "
        "(nothing listening on that host and port) — check --ws-url/BINANCE_WS_URL, "
        "or set CRYPTO_SOURCE=replay"
    ]
    assert not (tmp_path / "data" / "landing").exists()


@pytest.mark.spark
@pytest.mark.slow  # a minute: `make run` itself, a replayed producer run then the analytics
def test_run_replays_loudly_then_prints_the_tables(tmp_path: Path) -> None:
    result = run_cli(
        tmp_path, CRYPTO_SOURCE="replay", RUN_DURATION_MINUTES="0.1", BATCH_INTERVAL_SECONDS="1"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "*** REPLAYED DATA" in result.stderr
    landed = sum(landed_trades(tmp_path / "data" / "landing" / "trades").values())
    assert landed > 0
    out = result.stdout
    assert re.search(rf"^landing_trades: {landed} trades in \d+ files from replay", out, re.M)
    assert re.search(rf"^trades_raw: {landed} rows \(\+{landed} new\)", out, re.M)
    # The `show` table: a row per symbol under the header, with the replayed symbols.
    assert "Latest window per symbol" in out
    assert re.search(r"^\s*BTCUSDT\s", out, re.M)
    assert re.search(r"^\s*ETHUSDT\s", out, re.M)
