"""The ``crypto-assets`` producer commands as real subprocesses: signals, errors, summaries."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from crypto_assets.producer.producer import ProducerConfig
from crypto_assets.producer.producer_state import landed_highs
from crypto_assets_tests.producer.landing_reader import read_landing
from crypto_assets_tests.producer.producer_runs import produce_recording

SUMMARY = re.compile(r"^produced (\d+) trades \((.*)\) in (\d+) files in [\d.]+ s from (\S+); ")


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "crypto_assets.cli", *args]


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRYPTO_", "BINANCE_"))}
    env.update(extra)
    return env


def wait_for_files(
    directory: Path, count: int, process: subprocess.Popen, timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if len(list(directory.glob("trades_*.json"))) >= count:
            return
        time.sleep(0.05)
    pytest.fail(f"fewer than {count} landing files appeared (exit code {process.poll()})")


def assert_contiguous_from_start(rows: list[dict], expected: dict[str, dict[int, dict]]) -> None:
    by_symbol: dict[str, list[int]] = {}
    for row in rows:
        by_symbol.setdefault(row["symbol"], []).append(row["trade_id"])
    assert by_symbol
    for symbol, ids in by_symbol.items():
        first = min(expected[symbol])
        assert sorted(ids) == list(range(first, first + len(ids))), symbol


def test_sigterm_lands_everything_received_and_exits_zero_with_the_summary(
    replay_server_factory: Callable[..., object],
    expected_trades: dict[str, dict[int, dict]],
    tmp_path: Path,
) -> None:
    server = replay_server_factory(speed=5.0)
    landing = tmp_path / "landing" / "trades"
    process = subprocess.Popen(
        cli(
            "produce",
            "--ws-url",
            server.url,  # type: ignore[attr-defined]
            "--pairs",
            "btcusdt,ethusdt",
            "--landing-dir",
            str(landing),
            "--max-trades-per-batch",
            "100",
            "--batch-interval-seconds",
            "30",
            "--duration-minutes",
            "none",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(),
    )
    wait_for_files(landing, 3, process)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    match = SUMMARY.match(stdout.strip().splitlines()[-1])
    assert match, stdout
    rows = read_landing(landing)
    # The summary counts every trade received and accepted, pending batch included (the batch
    # interval is 30 s): all of them are in visible files.
    assert int(match.group(1)) == len(rows)
    assert_contiguous_from_start(rows, expected_trades)
    assert "Traceback" not in stderr


def test_sigkill_never_leaves_a_partial_visible_file(
    replay_server_factory: Callable[..., object],
    expected_trades: dict[str, dict[int, dict]],
    tmp_path: Path,
) -> None:
    server = replay_server_factory()
    landing = tmp_path / "trades"
    process = subprocess.Popen(
        cli(
            "produce",
            "--ws-url",
            server.url,  # type: ignore[attr-defined]
            "--pairs",
            "btcusdt,ethusdt",
            "--landing-dir",
            str(landing),
            "--max-trades-per-batch",
            "50",
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=environment(),
    )
    wait_for_files(landing, 20, process)
    process.kill()
    process.wait(timeout=30)
    rows = read_landing(landing)  # raises if any visible file is partial
    assert rows
    assert all(len(row) == 10 for row in rows)
    assert_contiguous_from_start(rows, expected_trades)
    assert all(
        p.name.startswith(".") for p in landing.iterdir() if not p.name.startswith("trades_")
    )


def test_an_unreachable_url_is_one_line_on_stderr_and_exit_code_2(
    tmp_path: Path, unused_port: int
) -> None:
    result = subprocess.run(
        cli(
            "produce",
            "--ws-url",
            f"ws://127.0.0.1:{unused_port}",
            "--pairs",
            "btcusdt",
            "--landing-dir",
            str(tmp_path),
        ),
        check=False,
        capture_output=True,
        text=True,
        env=environment(),
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"crypto-assets produce: error: cannot reach ws://127.0.0.1:{unused_port}: connection "
        "refused (nothing listening on that host and port) — check --ws-url/BINANCE_WS_URL, "
        "or set CRYPTO_SOURCE=replay"
    ]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--pairs", "BTC/USDT"], "--pairs='BTC/USDT'"),
        (["--duration-minutes", "soon"], "--duration-minutes='soon'"),
        (["--max-trades-per-batch", "0"], "max_trades_per_batch=0"),
    ],
)
def test_bad_flags_are_one_line_errors(tmp_path: Path, args: list[str], fragment: str) -> None:
    base = ["produce", "--ws-url", "ws://127.0.0.1:9", "--landing-dir", str(tmp_path)]
    result = subprocess.run(
        cli(*base, *args),
        check=False,
        capture_output=True,
        text=True,
        env=environment(),
        timeout=60,
    )
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("crypto-assets produce: error: ")
    assert fragment in line


def test_test_connection_prints_rates_per_symbol(
    replay_server_factory: Callable[..., object],
) -> None:
    server = replay_server_factory(speed=20.0, rebase_time=True)
    result = subprocess.run(
        cli(
            "test-connection",
            "--ws-url",
            server.url,  # type: ignore[attr-defined]
            "--pairs",
            "btcusdt,ethusdt",
            "--duration",
            "2",
        ),
        check=False,
        capture_output=True,
        text=True,
        env=environment(),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith(f"connected to {server.url}: ")  # type: ignore[attr-defined]
    for symbol, line in zip(("BTCUSDT", "ETHUSDT"), lines[1:], strict=True):
        match = re.match(rf"^{symbol}: (\d+) trades, ([\d.]+) trades/s, latency ms mean ", line)
        assert match, line
        assert int(match.group(1)) > 0
        assert float(match.group(2)) > 0


def test_summary_line_is_the_last_stdout_line_for_a_duration_run(
    replay_server_factory: Callable[..., object], tmp_path: Path
) -> None:
    server = replay_server_factory(speed=50.0)
    result = subprocess.run(
        cli(
            "produce",
            "--ws-url",
            server.url,  # type: ignore[attr-defined]
            "--pairs",
            "btcusdt",
            "--landing-dir",
            str(tmp_path / "t"),
            "--duration-seconds",
            "1.5",
        ),
        check=False,
        capture_output=True,
        text=True,
        env=environment(),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.strip().splitlines()
    match = SUMMARY.match(line)
    assert match
    assert match.group(2).startswith("BTCUSDT ")
    assert int(match.group(1)) == len(read_landing(tmp_path / "t")) > 0


def test_test_connection_to_an_unreachable_url_is_one_line_and_exit_code_2(
    unused_port: int,
) -> None:
    result = subprocess.run(
        cli("test-connection", "--ws-url", f"ws://127.0.0.1:{unused_port}", "--duration", "1"),
        check=False,
        capture_output=True,
        text=True,
        env=environment(),
        timeout=60,
    )
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(
        f"crypto-assets test-connection: error: cannot reach ws://127.0.0.1:{unused_port}: "
        "connection refused"
    )
    assert line.endswith("or set CRYPTO_SOURCE=replay")


def produce_process(server: object, landing: Path) -> subprocess.Popen:
    return subprocess.Popen(
        cli(
            "produce",
            "--ws-url",
            server.url,  # type: ignore[attr-defined]
            "--pairs",
            "btcusdt,ethusdt",
            "--landing-dir",
            str(landing),
            "--max-trades-per-batch",
            "300",
            "--batch-interval-seconds",
            "2",
            "--duration-minutes",
            "none",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(),
    )


def test_a_restart_after_kill_9_back_fills_what_was_missed_without_duplicates(
    replay_server_factory: Callable[..., object],
    expected_trades: dict[str, dict[int, dict]],
    tmp_path: Path,
) -> None:
    server = replay_server_factory(speed=20.0)
    landing = tmp_path / "landing" / "trades"
    first = produce_process(server, landing)
    wait_for_files(landing, 3, first)
    first.kill()  # its pending batch is lost with it
    first.communicate(timeout=30)
    files_before = len(list(landing.glob("trades_*.json")))
    time.sleep(2.0)  # the market moves on while no producer runs
    second = produce_process(server, landing)
    wait_for_files(landing, files_before + 3, second)
    second.send_signal(signal.SIGTERM)
    stdout, stderr = second.communicate(timeout=60)
    assert second.returncode == 0, stderr
    summary = stdout.strip().splitlines()[-1]
    filled = re.search(r"gap trades filled (\d+), unfilled (\d+)", summary)
    assert filled, summary
    assert int(filled.group(1)) > 0
    assert int(filled.group(2)) == 0
    rows = read_landing(landing)
    assert_contiguous_from_start(rows, expected_trades)  # no id missing, none twice
    back_filled = 0
    for row in rows:
        del row["ingestion_time"]
        want = expected_trades[row["symbol"]][row["trade_id"]]
        if row["event_time"] != want["event_time"]:
            # From REST, which has no event time: the trade time stands in for it.
            assert row["event_time"] == want["trade_time"]
            row["event_time"] = want["event_time"]
            back_filled += 1
        assert row == want
    assert back_filled <= int(filled.group(1))
    state = json.loads((tmp_path / "landing" / "_state" / "producer_state.json").read_text())
    highs = {s: v["landed_high"] for s, v in state["symbols"].items()}
    assert highs == {s: max(r["trade_id"] for r in rows if r["symbol"] == s) for s in highs}
    assert set(highs) == {"BTCUSDT", "ETHUSDT"}


PROGRESS = re.compile(
    r" INFO crypto_assets\.producer\.producer: progress after (\d+) s: (\d+) trades landed in "
    r"(\d+) files, (\d+) more in the open batch \((.*) received\), ([\d.]+) trades/s, "
    r"gaps: (\d+) trades filled, (\d+) pending, (\d+) unfilled; reconnects (\d+)$"
)


def test_produce_logs_a_progress_line_every_interval(
    replay_server_factory: Callable[..., object], tmp_path: Path
) -> None:
    # Real speed: the recording's trades flow for the whole run, so every line has news.
    server = replay_server_factory(speed=1.0)
    result = subprocess.run(
        cli(
            "produce",
            "--ws-url",
            server.url,  # type: ignore[attr-defined]
            "--pairs",
            "btcusdt,ethusdt",
            "--landing-dir",
            str(tmp_path / "t"),
            "--batch-interval-seconds",
            "0.5",
            "--duration-seconds",
            "4.7",
            "--progress-seconds",
            "1",
        ),
        check=False,
        capture_output=True,
        text=True,
        env=environment(),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    matches = [m for m in map(PROGRESS.search, result.stderr.splitlines()) if m]
    # One line a second for 4.7 s: four of them (the summary closes the run on stdout).
    assert len(matches) == 4, result.stderr
    seconds = [int(m.group(1)) for m in matches]
    assert seconds == sorted(set(seconds))
    assert seconds[0] >= 1
    landed = [int(m.group(2)) for m in matches]
    assert landed == sorted(landed)
    assert landed[-1] > 0
    files = [int(m.group(3)) for m in matches]
    assert files == sorted(files)
    assert files[-1] >= 2
    last = matches[-1]
    per_symbol = dict(item.rsplit(" ", 1) for item in last.group(5).split(", "))
    assert set(per_symbol) == {"BTCUSDT", "ETHUSDT"}
    # Per symbol counts what was received: landed plus what waits in the open batch.
    assert sum(int(n) for n in per_symbol.values()) == landed[-1] + int(last.group(4))
    assert all(float(m.group(6)) > 0 for m in matches)
    assert last.group(9) == "0"  # nothing unfilled on a clean replay
    assert last.group(10) == "0"
    # The files on disk hold at least what the last line reported as landed.
    assert len(read_landing(tmp_path / "t")) >= landed[-1]


def test_a_moved_landing_folder_is_refused_in_one_line_until_its_state_is_told(
    replay_server_factory: Callable[..., object],
    producer_config: Callable[..., ProducerConfig],
    tmp_path: Path,
    unused_port: int,
) -> None:
    server = replay_server_factory()
    config = producer_config(server, pairs=("btcusdt",), landing_dir=tmp_path / "old" / "trades")
    produce_recording(server, config)
    shutil.move(tmp_path / "old", tmp_path / "new")  # the folder with its _state beside it
    landing = tmp_path / "new" / "trades"
    state_path = tmp_path / "new" / "_state" / "producer_state.json"
    saved = state_path.read_text()

    refused = subprocess.run(
        cli(
            "produce",
            "--ws-url",
            f"ws://127.0.0.1:{unused_port}",
            "--pairs",
            "btcusdt,ethusdt",
            "--landing-dir",
            str(landing),
        ),
        check=False,
        capture_output=True,
        text=True,
        env=environment(),
        timeout=60,
    )
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        f"crypto-assets produce: error: the producer state {state_path} describes the landing "
        f"folder {tmp_path / 'old' / 'trades'}, not {landing}: if {landing} is that folder moved "
        f'here, set "landing_dir" in {state_path} to "{landing}" to resume; to start afresh, '
        "delete that state file or pass another --state-file"
    ]
    assert state_path.read_text() == saved
    # Doing what it says resumes: the moved folder's producer takes the state as its own.
    state = json.loads(saved)
    state["landing_dir"] = str(landing)
    state_path.write_text(json.dumps(state))
    highs = {s: v["landed_high"] for s, v in state["symbols"].items()}
    assert landed_highs(state_path, landing, highs) == highs
