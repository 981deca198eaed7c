"""Take the UI screenshots in docs/ that the README's demo links, from real runs.

Starts the webserver and daemon (`crypto_assets_tests/dagster_services.py`, on `make ui`'s
instance, in a temporary DAGSTER_HOME) and fills the instance with real runs: the producer
job reading the bundled recording from a replay server at 6x speed (its times the wall clock's),
then the analytics job, six times over, so the VWAP chart has windows; then, through the real
webserver and daemon, a continuous producer run that is terminated as the UI's *Terminate*
button does. Then it photographs the pages with headless Chromium driven over its DevTools
protocol (`docs/chromium_devtools.py`), which also clicks: *Materialize all*'s dropdown (▾) →
*Open launchpad* for the analytics job's Launchpad modal (an asset job has no Launchpad tab),
and *[Show Markdown]* for the VWAP chart.
Everything listens on 127.0.0.1. Usage: `.venv/bin/python docs/take_screenshots.py [--keep DIR]`
(with --keep, a DIR that already holds the runs is photographed again without new runs).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# Run as a script, docs/ is on sys.path (chromium_devtools), not the repository's root with the
# webserver-and-daemon harness the end-to-end test and the latency benchmark share.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chromium_devtools import Chromium

from crypto_assets_tests.dagster_services import LOCATION, REPOSITORY, DagsterServices

DOCS = Path(__file__).resolve().parent
CYCLES = 6
SPEED = 6.0
# Each producer run of the fill streams this long: six of them, about six one-minute windows.
PRODUCE_SECONDS = 40.0
PAIRS = ("btcusdt", "ethusdt")  # what the bundled recording carries
STOPPED_RUN_FILE = "stopped_producer_run.txt"
WIDTH = 1500
# A continuous producer run streams this long before it is terminated.
STREAM_SECONDS = 20.0
RUN_SECONDS = 300.0

logger = logging.getLogger("take_screenshots")


@dataclass(frozen=True)
class Shot:
    """One screenshot: the page, a text that shows it has loaded, the viewport's height."""

    name: str
    path: str
    wait_for: str
    height: int
    # After loading: clicks or scrolls, given the browser.
    then: Callable[[Chromium], None] | None = None


def _shots(stopped_run: str) -> list[Shot]:
    def show_vwap_chart(browser: Chromium) -> None:
        browser.click_text("[Show Markdown]", row_label="vwap_volume_last_hour")

    def scroll_to_columns(browser: Chromium) -> None:
        browser.scroll_to_text("Columns")

    def open_analytics_launchpad(browser: Chromium) -> None:
        # README step 3: an asset job's Launchpad is a modal behind Materialize all's ▾.
        browser.click_button("arrow_drop_down", after="Materialize all")
        browser.click_text("Open launchpad")
        browser.wait_for_text("trigger_seconds")
        browser.wait_while_text("Loading")

    return [
        Shot(
            "asset_graph.png",
            "/assets/trades_analytics?view=lineage&lineageScope=neighbors&lineageDepth=3",
            "price_alerts",
            850,
        ),
        Shot(
            "launchpad_producer_config.png",
            f"/locations/{LOCATION}/jobs/binance_producer_job/playground",
            "duration_minutes",
            1000,
        ),
        Shot(
            "analytics_launchpad.png",
            f"/locations/{LOCATION}/jobs/streaming_analytics_job",
            "Materialize all",
            1000,
            open_analytics_launchpad,
        ),
        Shot("stopped_producer_run.png", f"/runs/{stopped_run}", "stopped on request", 1100),
        Shot("trades_analytics_overview.png", "/assets/trades_analytics", "Columns", 1300),
        Shot(
            "trades_analytics_columns.png",
            "/assets/trades_analytics",
            "Columns",
            1000,
            scroll_to_columns,
        ),
        Shot(
            "trades_analytics_metadata.png",
            "/assets/trades_analytics?view=events",
            "vwap_volume_last_hour",
            1200,  # down to windows_written's last table
        ),
        Shot(
            "vwap_volume_chart.png",
            "/assets/trades_analytics?view=events",
            "vwap_volume_last_hour",
            1000,
            show_vwap_chart,
        ),
    ]


def _producer_config(url: str, **extra: object) -> dict:
    return {
        "ws_url": url,
        "source": "replay",
        "batch_interval_seconds": 2.0,
        "report_interval_seconds": 4.0,
        **extra,
    }


def fill(home: Path, data_dir: Path, replay_url: str) -> None:
    """Producer then analytics runs against the replay server, recorded in `home`'s instance."""
    os.environ["DAGSTER_HOME"] = str(home)
    import dagster as dg  # noqa: PLC0415 - after DAGSTER_HOME is set

    from crypto_assets.orchestration.definitions import build_definitions  # noqa: PLC0415
    from crypto_assets.settings import Settings  # noqa: PLC0415

    defs = build_definitions(Settings(data_dir=data_dir, trading_pairs=PAIRS))
    config = _producer_config(replay_url, duration_seconds=PRODUCE_SECONDS)
    producer = {"ops": {"produce_trades": {"config": config}}}
    with dg.DagsterInstance.get() as instance:
        for cycle in range(CYCLES):
            for job, run_config in (
                ("binance_producer_job", producer),
                ("streaming_analytics_job", {}),
            ):
                result = defs.resolve_job_def(job).execute_in_process(
                    run_config=run_config, instance=instance
                )
                logger.info("cycle %s/%s: %s %s ok", cycle + 1, CYCLES, job, result.run_id)


def stopped_producer_run(dagster: DagsterServices, replay_url: str) -> str:
    """Launch a continuous producer run, let it stream, terminate it; its run id once it ended."""
    import dagster as dg  # noqa: PLC0415
    from dagster_graphql import DagsterGraphQLClient  # noqa: PLC0415

    client = DagsterGraphQLClient("127.0.0.1", port_number=dagster.port)
    config = _producer_config(replay_url, continuous=True)
    run_id = client.submit_job_execution(
        "binance_producer_job",
        repository_location_name=LOCATION,
        repository_name=REPOSITORY,
        run_config={"ops": {"produce_trades": {"config": config}}},
    )
    deadline = time.monotonic() + RUN_SECONDS
    while client.get_run_status(run_id) != dg.DagsterRunStatus.STARTED:
        if time.monotonic() > deadline:
            raise SystemExit(f"producer run {run_id} never started; see {dagster.log_dir}")
        time.sleep(1)
    time.sleep(STREAM_SECONDS)
    client.terminate_run(run_id)  # what the UI's Terminate button calls
    ended = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE}
    ended.add(dg.DagsterRunStatus.CANCELED)
    while (status := client.get_run_status(run_id)) not in ended:
        if time.monotonic() > deadline:
            raise SystemExit(f"producer run {run_id} did not end; see {dagster.log_dir}")
        time.sleep(1)
    logger.info("continuous producer run %s terminated: %s", run_id, status.value)
    return run_id


def photograph(base_url: str, profile: Path, stopped_run: str) -> None:
    """One screenshot per shot of `_shots`, into docs/."""
    with Chromium(profile, width=WIDTH) as browser:
        for shot in _shots(stopped_run):
            browser.open(base_url + shot.path, shot.wait_for, shot.height)
            if shot.then is not None:
                shot.then(browser)
            browser.screenshot(DOCS / shot.name)


def main() -> int:
    """Serve, fill, photograph, clean up."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="use (and keep) this directory for the data")
    args = parser.parse_args()
    root = (args.keep or Path(tempfile.mkdtemp(prefix="crypto_assets_screens_"))).resolve()
    root.mkdir(parents=True, exist_ok=True)
    from crypto_assets.recording import bundled_recording  # noqa: PLC0415
    from crypto_assets.replay.server import ReplayOptions, ReplayServer  # noqa: PLC0415

    stopped_file = root / STOPPED_RUN_FILE
    # `make ui`'s instance (no telemetry, no nux, the run queue's limits) in root/dagster_home.
    dagster = DagsterServices(root)
    # One market for every run: the recording looped at SPEED, so the continuous run after the
    # others streams the trades that follow theirs (the gaps in between back-filled over REST).
    # Every trade's time is the wall clock when the replay sends it (the recording's pace, six
    # times as dense): the pages show today's windows, none ahead of the clock, and real lags,
    # not the recording's age (2024).
    options = ReplayOptions(
        recordings=(bundled_recording(),), speed=SPEED, loop=True, clock_time=True
    )
    replay = ReplayServer(options)
    try:
        dagster.start()
        # Before anything lands: else the daemon launches analytics runs of its own.
        dagster.stop_sensor("landing_files_sensor")
        if not stopped_file.exists():  # --keep DIR reuses the runs already made there
            replay.start()
            fill(dagster.home, dagster.data_dir, replay.url)
            stopped_file.write_text(stopped_producer_run(dagster, replay.url))
            replay.stop()
        photograph(dagster.url, root / "chromium_profile", stopped_file.read_text())
    finally:
        replay.stop()
        dagster.stop()
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
