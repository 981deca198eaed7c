"""Take the UI screenshots in docs/: the asset graph and trades_analytics' metadata.

Fills a temporary DAGSTER_HOME and data dir with real runs (the producer job reading the bundled
recording from a replay server at 10x speed, then the analytics job, four times over, so the
VWAP plots have points), starts `dagster-webserver` on loopback, and photographs its pages with
headless Chromium. Usage: `.venv/bin/python docs/take_screenshots.py [--keep DIR]` (with
--keep, a DIR that already holds runs is photographed again without new runs).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
BIN = Path(sys.executable).parent
CYCLES = 4
SPEED = 6.0
PAGES = {
    "asset_graph.png": (
        "/assets/trades_analytics?view=lineage&lineageScope=neighbors&lineageDepth=3",
        "1600,900",
    ),
    "trades_analytics_metadata.png": ("/assets/trades_analytics?view=events", "1600,1100"),
    "trades_analytics_overview.png": ("/assets/trades_analytics", "1600,1400"),
}


def fill(home: Path, data_dir: Path) -> None:
    """Producer then analytics runs against a replay server, recorded in `home`'s instance."""
    os.environ["DAGSTER_HOME"] = str(home)
    import dagster as dg  # noqa: PLC0415 - after DAGSTER_HOME is set

    from crypto_assets.orchestration.deployments import build_definitions  # noqa: PLC0415
    from crypto_assets.recording import bundled_recording  # noqa: PLC0415
    from crypto_assets.replay.server import ReplayOptions, ReplayServer  # noqa: PLC0415
    from crypto_assets.settings import Settings  # noqa: PLC0415

    settings = Settings(data_dir=data_dir, trading_pairs=("btcusdt", "ethusdt"))
    defs = build_definitions(settings)
    server = ReplayServer(ReplayOptions(recordings=(bundled_recording(),), speed=SPEED))
    server.start()
    producer_config = {
        "ws_url": server.url,
        "source": "replay",
        "duration_seconds": 12.0,
        "batch_interval_seconds": 2.0,
        "report_interval_seconds": 4.0,
    }
    try:
        with dg.DagsterInstance.get() as instance:
            for cycle in range(CYCLES):
                for job, run_config in (
                    (
                        "binance_producer_job",
                        {"ops": {"produce_trades": {"config": producer_config}}},
                    ),
                    ("streaming_analytics_job", {}),
                ):
                    result = defs.resolve_job_def(job).execute_in_process(
                        run_config=run_config, instance=instance
                    )
                    print(f"cycle {cycle + 1}/{CYCLES}: {job} {result.run_id} ok", flush=True)
    finally:
        server.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(1)
    raise SystemExit(f"{url} did not answer within {seconds:.0f} s")


def photograph(base_url: str, profile: Path) -> None:
    """One headless-Chromium screenshot per page of PAGES, into docs/."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium not found: apt-get install -y chromium")
    for name, (path, size) in PAGES.items():
        subprocess.run(
            [
                chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", f"--user-data-dir={profile}", "--hide-scrollbars",
                f"--window-size={size}", "--virtual-time-budget=30000",
                f"--screenshot={DOCS / name}", base_url + path,
            ],
            check=True,
            capture_output=True,
            timeout=180,
        )  # fmt: skip
        print(f"wrote {DOCS / name}", flush=True)


def main() -> int:
    """Fill, serve, photograph, clean up."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="use (and keep) this directory for the data")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="crypto_assets_screens_"))
    home, data_dir = root / "dagster_home", root / "data"
    home.mkdir(parents=True, exist_ok=True)
    # No telemetry, and no "join the community" dialog over the pages.
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\nnux:\n  enabled: false\n")
    if not (data_dir / "delta").exists():  # --keep DIR reuses the runs already made there
        fill(home, data_dir)
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "CRYPTO_DATA_DIR": str(data_dir)}
    command = [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port)]
    webserver = subprocess.Popen(
        [*command, "-w", str(REPO / "workspace.yaml")],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_for(f"http://127.0.0.1:{port}/server_info", 120)
        time.sleep(5)  # the code location loads after the server answers
        photograph(f"http://127.0.0.1:{port}", root / "chromium_profile")
    finally:
        os.killpg(webserver.pid, signal.SIGTERM)
        webserver.wait(timeout=60)
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
