"""Take the UI screenshots in docs/ that the README's demo links, from real runs.

Fills a temporary DAGSTER_HOME (`make ui`'s instance) and data dir with real runs: the producer
job reading the bundled recording from a replay server at 6x speed, then the analytics job, four
times over, so the VWAP chart has windows; then, through the real webserver and daemon, a
continuous producer run that is terminated as the UI's *Terminate* button does. Then it
photographs the pages with headless Chromium driven over its DevTools protocol
(`docs/chromium_devtools.py`), which also clicks *[Show Markdown]* for the VWAP chart.
Everything listens on 127.0.0.1. Usage: `.venv/bin/python docs/take_screenshots.py [--keep DIR]`
(with --keep, a DIR that already holds the runs is photographed again without new runs).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# docs/ is the script's folder, so on sys.path.
from chromium_devtools import Chromium, free_port

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
BIN = Path(sys.executable).parent
CYCLES = 4
SPEED = 6.0
PAIRS = ("btcusdt", "ethusdt")  # what the bundled recording carries
LOCATION = "crypto_assets"
REPOSITORY = "__repository__"
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
            1100,
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

    from crypto_assets.orchestration.deployments import build_definitions  # noqa: PLC0415
    from crypto_assets.settings import Settings  # noqa: PLC0415

    defs = build_definitions(Settings(data_dir=data_dir, trading_pairs=PAIRS))
    config = _producer_config(replay_url, duration_seconds=12.0)
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


class Dagster:
    """`dagster-webserver` and `dagster-daemon` on loopback, as `make ui` runs them."""

    def __init__(self, home: Path, data_dir: Path, log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "CRYPTO_DATA_DIR": str(data_dir),
            "TRADING_PAIRS": ",".join(PAIRS),
        }
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen] = []

    def _start(self, name: str, command: list[str]) -> None:
        log = (self.log_dir / f"{name}.log").open("w")
        self.processes.append(
            subprocess.Popen(
                [*command, "-w", str(REPO / "workspace.yaml")],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )

    def start_webserver(self) -> None:
        """Start the webserver; return once its code location has loaded."""
        self._start(
            "webserver",
            [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(self.port)],
        )
        deadline = time.monotonic() + 180
        query = (
            "{ workspaceOrError { ... on Workspace { locationEntries { "
            "locationOrLoadError { __typename } } } } }"
        )
        while time.monotonic() < deadline:
            try:
                entries = self.graphql(query)["workspaceOrError"]["locationEntries"]
                if entries and entries[0]["locationOrLoadError"]["__typename"] == (
                    "RepositoryLocation"
                ):
                    return
            except (urllib.error.URLError, ConnectionError, KeyError, TypeError):
                pass
            time.sleep(1)
        raise SystemExit(f"the webserver did not come up; see {self.log_dir / 'webserver.log'}")

    def start_daemon(self) -> None:
        """Start the daemon, which launches queued runs (after the webserver made the storage)."""
        self._start("daemon", [str(BIN / "dagster-daemon"), "run"])

    def stop(self) -> None:
        """SIGTERM each process group started here, then wait for it."""
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            process.wait(timeout=60)

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        """POST one GraphQL query and return its `data`."""
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            payload = json.loads(response.read())
        if payload.get("errors"):
            raise SystemExit(f"GraphQL errors: {payload['errors']}")
        return payload["data"]

    def stop_sensor(self, name: str) -> None:
        """Turn a sensor off, as the UI's toggle does."""
        selector = {
            "repositoryLocationName": LOCATION,
            "repositoryName": REPOSITORY,
            "sensorName": name,
        }
        found = self.graphql(
            "query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) { "
            "... on Sensor { sensorState { id } } } }",
            {"s": selector},
        )
        self.graphql(
            "mutation($id: String!) { stopSensor(id: $id) { __typename } }",
            {"id": found["sensorOrError"]["sensorState"]["id"]},
        )


def stopped_producer_run(dagster: Dagster, replay_url: str) -> str:
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
    """Fill, serve, photograph, clean up."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="use (and keep) this directory for the data")
    args = parser.parse_args()
    root = (args.keep or Path(tempfile.mkdtemp(prefix="crypto_assets_screens_"))).resolve()
    home, data_dir = root / "dagster_home", root / "data"
    home.mkdir(parents=True, exist_ok=True)
    from crypto_assets.orchestration.instance_config import instance_yaml  # noqa: PLC0415
    from crypto_assets.recording import bundled_recording  # noqa: PLC0415
    from crypto_assets.replay.server import ReplayOptions, ReplayServer  # noqa: PLC0415

    # `make ui`'s instance: no telemetry, no "join the community" dialog, the run queue's limits.
    (home / "dagster.yaml").write_text(instance_yaml())
    stopped_file = root / STOPPED_RUN_FILE
    dagster = Dagster(home, data_dir, root)
    # One market for every run: the recording looped at SPEED, so the continuous run after the
    # others streams the trades that follow theirs (the gaps in between back-filled over REST).
    options = ReplayOptions(recordings=(bundled_recording(),), speed=SPEED, loop=True)
    replay = ReplayServer(options)
    replay.start()
    try:
        if not (data_dir / "delta").exists():  # --keep DIR reuses the runs already made there
            fill(home, data_dir, replay.url)
        dagster.start_webserver()
        if not stopped_file.exists():
            # Else the daemon's first tick launches analytics for the files landed above.
            dagster.stop_sensor("landing_files_sensor")
            dagster.start_daemon()
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
