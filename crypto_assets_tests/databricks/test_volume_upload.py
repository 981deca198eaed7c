"""The producer's upload to a Unity Catalog Volume, against the emulator and the real replay server.

Every trade must be on the Volume exactly once (counted from the emulator's own folder), the spool
must end empty and the producer state must be on the Volume, under failed uploads and a kill -9.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from databricks.sdk import WorkspaceClient

from crypto_assets.backoff import RestartBackoff
from crypto_assets.databricks.layout import VolumeLayout
from crypto_assets.databricks.setup import set_up
from crypto_assets.databricks.volume_upload import (
    VolumeUploader,
    VolumeUploadError,
    default_spool_dir,
)
from crypto_assets.databricks.workspace import workspace_client
from crypto_assets.producer.producer import Producer, ProducerConfig
from crypto_assets.settings import Settings
from crypto_assets_tests.databricks.emulator import Emulator, running_emulator
from crypto_assets_tests.producer.producer_runs import produce_recording
from crypto_assets_tests.recorded_trades import recorded_landing_rows

TOKEN = "dapi-upload-test-00112233445566778899"
LAYOUT = VolumeLayout("takamol_demo", "crypto_streaming")
LANDING_FILES = f"/api/2.0/fs/files{LAYOUT.landing_dir}/"
FAST_RETRY = RestartBackoff(base_seconds=0.2, max_seconds=1.0)


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Emulator]:
    """An emulated workspace with the catalog, on which databricks-setup's code has run."""
    with running_emulator(tmp_path / "workspace", TOKEN, catalogs=(LAYOUT.catalog,)) as running:
        set_up(client_of(running), LAYOUT)
        yield running


def client_of(emulator: Emulator) -> WorkspaceClient:
    settings = Settings(databricks_host=emulator.host)
    return workspace_client(settings, {"DATABRICKS_TOKEN": TOKEN}, retry_timeout_seconds=5)


def volume_dir(emulator: Emulator) -> Path:
    """The emulator's folder behind the Volume (what a reader of the Volume would list)."""
    return emulator.volumes_root / LAYOUT.catalog / LAYOUT.schema / LAYOUT.volume


def volume_rows(emulator: Emulator) -> list[dict]:
    """Every row of every landing file on the Volume, read from the emulator's disk."""
    return [
        json.loads(line)
        for path in sorted((volume_dir(emulator) / "trades").glob("trades_*.json"))
        for line in path.read_text(encoding="utf-8").splitlines()
    ]


def volume_state(emulator: Emulator) -> dict[str, int]:
    """landed_high per symbol of the state file on the Volume."""
    document = json.loads((volume_dir(emulator) / "_producer" / "state.json").read_text())
    return {symbol: entry["landed_high"] for symbol, entry in document["symbols"].items()}


def ids_by_symbol(rows: list[dict]) -> dict[str, list[int]]:
    by_symbol: dict[str, list[int]] = {}
    for row in rows:
        by_symbol.setdefault(row["symbol"], []).append(row["trade_id"])
    return by_symbol


def test_failed_uploads_keep_the_batches_and_every_trade_reaches_the_volume_once(
    emulator: Emulator,
    replay_server_factory: Callable[..., object],
    recording: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    expected = ids_by_symbol(list(recorded_landing_rows(recording)))
    server = replay_server_factory()
    spool = default_spool_dir(tmp_path / "data")
    uploader = VolumeUploader(client_of(emulator), LAYOUT, spool, backoff=FAST_RETRY)
    # 500 is not retried by the SDK itself: each one is a failed upload of ours.
    emulator.fail_next(
        "PUT",
        LANDING_FILES,
        3,
        status=500,
        error_code="INTERNAL_ERROR",
        message="Internal error while writing the file.",
    )
    config = ProducerConfig(
        ws_url=server.url,  # type: ignore[attr-defined]
        rest_url=server.rest_url,  # type: ignore[attr-defined]
        pairs=("btcusdt", "ethusdt"),
        landing_dir=spool,
        state_path=uploader.state_path,
        batch_interval_seconds=0.5,
        max_trades_per_batch=1000,
        duration_seconds=120.0,
        gap_grace_seconds=0.3,
        progress_interval_seconds=0.2,
    )
    with caplog.at_level(logging.INFO, logger="crypto_assets"):
        summary = produce_recording(server, config, upload=uploader)

    rows = volume_rows(emulator)
    landed = ids_by_symbol(rows)
    assert {s: sorted(ids) for s, ids in landed.items()} == {
        s: sorted(ids) for s, ids in expected.items()
    }
    assert [
        key for key, n in Counter((r["symbol"], r["trade_id"]) for r in rows).items() if n > 1
    ] == []
    assert summary.trades == len(rows) == uploader.trades_uploaded
    assert uploader.files_uploaded == summary.files
    assert len(list((volume_dir(emulator) / "trades").glob("trades_*.json"))) == summary.files
    assert list(spool.iterdir()) == []
    assert volume_state(emulator) == {s: max(ids) for s, ids in expected.items()}

    failed = [r.getMessage() for r in caplog.records if "failed (" in r.getMessage()]
    assert len(failed) == 3
    for line in failed:
        assert re.match(
            rf"upload of trades_\S+\.json to {LAYOUT.landing_dir}/trades_\S+\.json failed "
            r"\(InternalError \(INTERNAL_ERROR\): Internal error while writing the file\.\); ",
            line,
        ), line
    resumed = [r.getMessage() for r in caplog.records if "resumed after" in r.getMessage()]
    assert len(resumed) == 1
    assert resumed[0].startswith(f"uploads to {LAYOUT.landing_dir} resumed after 3 failed attempts")
    assert TOKEN not in caplog.text


def test_a_file_uploaded_but_not_yet_deleted_replaces_itself(
    emulator: Emulator, tmp_path: Path
) -> None:
    spool = default_spool_dir(tmp_path / "data")
    spool.mkdir(parents=True)
    rows = [{"symbol": "BTCUSDT", "trade_id": n} for n in (7, 8, 9)]
    content = "".join(json.dumps(row) + "\n" for row in rows)
    name = "trades_20240809_000000_0123456789ab.json"
    (spool / name).write_text(content)
    uploader = VolumeUploader(client_of(emulator), LAYOUT, spool, backoff=FAST_RETRY)
    assert uploader.upload_once()
    # A crash between the upload and the local delete leaves the file in the spool.
    (spool / name).write_text(content)
    assert uploader.upload_once()
    on_volume = list((volume_dir(emulator) / "trades").iterdir())
    assert [p.name for p in on_volume] == [name]
    assert on_volume[0].read_text() == content
    assert not (spool / name).exists()
    puts = [
        r
        for r in emulator.requests
        if r == ("PUT", f"/api/2.0/fs/files{LAYOUT.landing_dir}/{name}")
    ]
    assert len(puts) == 2


def cli_environment(emulator: Emulator, data_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CRYPTO_", "BINANCE_", "DATABRICKS_"))
        and k not in ("CATALOG", "SCHEMA")
    }
    env.update(
        CRYPTO_DEPLOYMENT="databricks",
        CRYPTO_DATA_DIR=str(data_dir),
        DATABRICKS_HOST=emulator.host,
        DATABRICKS_TOKEN=TOKEN,
    )
    return env


def produce_to_volume(server: object, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "crypto_assets.cli",
            "produce",
            "--ws-url",
            server.url,  # type: ignore[attr-defined]
            "--pairs",
            "btcusdt,ethusdt",
            "--max-trades-per-batch",
            "300",
            "--batch-interval-seconds",
            "1",
            "--duration-minutes",
            "none",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def wait_until(condition: Callable[[], bool], process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and process.poll() is None:
        if condition():
            return
        time.sleep(0.05)
    pytest.fail(f"{what} did not happen (exit code {process.poll()})")


def test_a_kill_9_while_uploads_fail_then_a_restart_puts_every_trade_on_the_volume_once(
    emulator: Emulator,
    replay_server_factory: Callable[..., object],
    recording: Path,
    tmp_path: Path,
) -> None:
    recorded = {(r["symbol"], r["trade_id"]): r for r in recorded_landing_rows(recording)}
    server = replay_server_factory(speed=20.0)
    env = cli_environment(emulator, tmp_path / "data")
    spool = default_spool_dir(tmp_path / "data")
    on_volume = volume_dir(emulator) / "trades"

    def volume_files() -> int:
        return len(list(on_volume.glob("trades_*.json")))

    def spool_files() -> int:
        return len(list(spool.glob("trades_*.json"))) if spool.exists() else 0

    first = produce_to_volume(server, env)
    wait_until(lambda: volume_files() >= 2, first, "two uploads")
    emulator.deny("PUT", LANDING_FILES)  # uploads fail from now on; the producer goes on
    wait_until(lambda: spool_files() >= 3, first, "three files waiting in the spool")
    first.kill()  # its open batch is lost with it; the spool keeps what it landed
    _, first_stderr = first.communicate(timeout=30)
    assert "PermissionDenied (PERMISSION_DENIED)" in first_stderr
    waiting = spool_files()
    assert waiting >= 3
    # The state on the Volume never claims a trade that is not in the Volume's files.
    before = ids_by_symbol(volume_rows(emulator))
    for symbol, high in volume_state(emulator).items():
        assert high <= max(before[symbol])
    emulator.allow("PUT", LANDING_FILES)
    time.sleep(2.0)  # the market moves on while no producer runs

    second = produce_to_volume(server, env)
    wait_until(lambda: spool_files() == 0, second, "the spool uploaded at start")
    count = volume_files()
    wait_until(lambda: volume_files() >= count + 3, second, "three more uploads")
    second.send_signal(signal.SIGTERM)
    stdout, stderr = second.communicate(timeout=60)
    assert second.returncode == 0, stderr
    summary = stdout.strip().splitlines()[-1]
    filled = re.search(r"gap trades filled (\d+), unfilled (\d+)", summary)
    assert filled, summary
    assert int(filled.group(1)) > 0  # the killed run's open batch and the downtime
    assert int(filled.group(2)) == 0

    rows = volume_rows(emulator)
    keys = Counter((row["symbol"], row["trade_id"]) for row in rows)
    assert [key for key, n in keys.items() if n > 1] == []
    for symbol, ids in ids_by_symbol(rows).items():
        first_id = min(trade_id for s, trade_id in recorded if s == symbol)
        assert sorted(ids) == list(range(first_id, first_id + len(ids))), symbol
    for row in rows:
        want = dict(recorded[(row["symbol"], row["trade_id"])])
        del want["ingestion_time"], row["ingestion_time"]
        if row["event_time"] != want["event_time"]:  # back-filled from REST: no event time
            assert row["event_time"] == want["trade_time"]
            row["event_time"] = want["event_time"]
        assert row == want
    assert spool_files() == 0
    highs = volume_state(emulator)
    assert highs == {s: max(ids) for s, ids in ids_by_symbol(rows).items()}
    assert set(highs) == {"BTCUSDT", "ETHUSDT"}
    assert TOKEN not in first_stderr + stdout + stderr


def test_a_state_the_volume_will_not_serve_stops_the_start_in_one_line_and_frees_the_spool(
    emulator: Emulator,
    replay_server_factory: Callable[..., object],
    tmp_path: Path,
) -> None:
    server = replay_server_factory()
    spool = default_spool_dir(tmp_path / "data")
    emulator.deny("GET", f"/api/2.0/fs/files{LAYOUT.producer_state_path}")

    def producer() -> Producer:
        uploader = VolumeUploader(client_of(emulator), LAYOUT, spool, backoff=FAST_RETRY)
        config = ProducerConfig(
            ws_url=server.url,  # type: ignore[attr-defined]
            pairs=("btcusdt",),
            landing_dir=spool,
            state_path=uploader.state_path,
            duration_seconds=1.0,
        )
        return Producer(config, upload=uploader)

    with pytest.raises(VolumeUploadError) as caught:
        producer().run()
    assert str(caught.value).startswith(
        f"cannot read the producer state {LAYOUT.producer_state_path} on the Volume "
        "(PermissionDenied (PERMISSION_DENIED): User does not have READ VOLUME"
    )
    assert "\n" not in str(caught.value)
    emulator.allow("GET", f"/api/2.0/fs/files{LAYOUT.producer_state_path}")
    summary = producer().run()  # the spool's lock was released: a new producer may start
    assert summary.trades > 0
    assert volume_state(emulator) == {
        s: max(ids) for s, ids in ids_by_symbol(volume_rows(emulator)).items()
    }
