"""A real Dagster webserver and daemon on loopback for one temporary instance, with GraphQL calls.

Shared by the end-to-end test, the fault harness and the benchmarks (landing_latency, soak): both
processes are started as `dagster dev` starts them, on the dagster.yaml `make ui` writes, in a
temporary DAGSTER_HOME and CRYPTO_DATA_DIR under one root folder (which also holds their logs).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from crypto_assets.orchestration.instance_config import instance_yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LOCATION = "crypto_assets"
REPOSITORY = "__repository__"
STARTUP_SECONDS = 120.0
FINISHED = frozenset({"SUCCESS", "FAILURE", "CANCELED"})


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DagsterServices:
    """A webserver and a daemon on loopback under `root`, and the GraphQL calls both users need."""

    def __init__(
        self,
        root: Path,
        startup_seconds: float = STARTUP_SECONDS,
        env: dict[str, str] | None = None,
    ) -> None:
        """`env`: variables for both processes (and so the code servers and runs) on top of ours."""
        self.root = root
        self.extra_env = dict(env or {})
        self.log_dir = root
        self.home = root / "dagster_home"
        self.data_dir = root / "data"
        self.landing_dir = self.data_dir / "landing" / "trades"
        self.startup_seconds = startup_seconds
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.processes: dict[str, subprocess.Popen] = {}
        self.orphan_groups: list[int] = []

    def start(self) -> None:
        """Write the instance, start both processes (own process groups), wait for the code."""
        self.home.mkdir(parents=True, exist_ok=True)
        # The instance `make ui` runs on: no telemetry, no nux, the run queue's limits.
        (self.home / "dagster.yaml").write_text(instance_yaml())
        deadline = time.monotonic() + self.startup_seconds
        self.spawn("webserver")
        # The webserver creates the instance's SQLite storage; a daemon started at the same
        # moment races it to the schema ("alembic_version has more than one head").
        self._wait_for_server_info(deadline)
        self.spawn("daemon")
        while time.monotonic() < deadline:
            if self._code_location_loaded():
                return
            time.sleep(1)
        raise RuntimeError(f"the Dagster webserver did not come up; see {self.log_dir}")

    @property
    def env(self) -> dict[str, str]:
        """The environment both processes get."""
        return {
            **os.environ,
            "DAGSTER_HOME": str(self.home),
            "CRYPTO_DATA_DIR": str(self.data_dir),
            "TRADING_PAIRS": "btcusdt,ethusdt",
            **self.extra_env,
        }

    def spawn(self, name: str) -> subprocess.Popen:
        """Start `name` (webserver or daemon) in its own process group, logging to its file."""
        workspace = str(REPO / "workspace.yaml")
        commands = {
            "webserver": [
                str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(self.port),
                "-w", workspace,
            ],
            "daemon": [str(BIN / "dagster-daemon"), "run", "-w", workspace],
        }  # fmt: skip
        with (self.log_dir / f"{name}.log").open("a") as log:
            process = subprocess.Popen(
                commands[name],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes[name] = process
        return process

    def _wait_for_server_info(self, deadline: float) -> None:
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/server_info", timeout=5):
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() >= deadline:
                    raise RuntimeError(f"webserver did not start; see {self.log_dir}") from None
                if self.processes["webserver"].poll() is not None:
                    raise RuntimeError(f"webserver exited; see {self.log_dir}") from None
                time.sleep(0.5)

    def _code_location_loaded(self) -> bool:
        try:
            data = self.graphql(
                "{ workspaceOrError { ... on Workspace { locationEntries { name "
                "locationOrLoadError { __typename } } } } }"
            )
            entries = data["workspaceOrError"]["locationEntries"]
        except (urllib.error.URLError, ConnectionError, KeyError, TypeError):
            return False
        return bool(entries) and (
            entries[0]["locationOrLoadError"]["__typename"] == "RepositoryLocation"
        )

    def restart_daemon(self) -> None:
        """SIGKILL the daemon process alone and start a new one, as a crashed daemon restarts.

        Its code server and the runs it launched live on (the code server ends once its runs
        have, as Dagster does after losing the daemon's heartbeat); `stop` ends them too.
        """
        daemon = self.processes["daemon"]
        self.orphan_groups.append(daemon.pid)  # the group keeps the daemon's pid as its id
        with contextlib.suppress(ProcessLookupError):
            os.kill(daemon.pid, signal.SIGKILL)
        daemon.wait(timeout=30)
        self.spawn("daemon")

    def stop(self) -> None:
        """SIGTERM each process group started here, SIGKILL it if it does not end in 60 s."""
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                _end_group(process, signal.SIGKILL)
        for group in self.orphan_groups:  # what earlier daemons left running
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        self.orphan_groups.clear()

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        """POST one GraphQL query and return its `data`; GraphQL errors raise."""
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            payload = json.loads(response.read())
        if payload.get("errors"):
            raise RuntimeError(f"GraphQL errors: {payload['errors']}")
        return payload["data"]

    def stop_sensor(self, name: str) -> str:
        """Turn a sensor off, as the UI's toggle does; returns its new status."""
        state_id = self._sensor_state(name)["id"]
        stopped = self.graphql(
            "mutation($id: String!) { stopSensor(id: $id) { ... on StopSensorMutationResult { "
            "instigationState { status } } ... on PythonError { message } } }",
            {"id": state_id},
        )
        return stopped["stopSensor"]["instigationState"]["status"]

    def start_sensor(self, name: str) -> str:
        """Turn a sensor on, as the UI's toggle does; returns its new status."""
        data = self.graphql(
            "mutation($s: SensorSelector!) { startSensor(sensorSelector: $s) { __typename "
            "... on Sensor { sensorState { status } } ... on PythonError { message } } }",
            {"s": self._sensor_selector(name)},
        )
        result = data["startSensor"]
        if result["__typename"] != "Sensor":
            raise RuntimeError(f"starting {name} failed: {result}")
        return result["sensorState"]["status"]

    def has_sensor(self, name: str) -> bool:
        """Whether the code location defines a sensor called `name`."""
        found = self.graphql(
            "query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) { __typename } }",
            {"s": self._sensor_selector(name)},
        )
        return found["sensorOrError"]["__typename"] == "Sensor"

    def _sensor_selector(self, name: str) -> dict:
        return {
            "repositoryLocationName": LOCATION,
            "repositoryName": REPOSITORY,
            "sensorName": name,
        }

    def _sensor_state(self, name: str) -> dict:
        found = self.graphql(
            "query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) { "
            "... on Sensor { sensorState { id status } } } }",
            {"s": self._sensor_selector(name)},
        )
        return found["sensorOrError"]["sensorState"]

    def launch(self, job: str, run_config: dict) -> str:
        """Launch `job` with `run_config` as the Launchpad does; the run id."""
        selector = {
            "repositoryLocationName": LOCATION,
            "repositoryName": REPOSITORY,
            "jobName": job,
        }
        data = self.graphql(
            "mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename "
            "... on LaunchRunSuccess { run { runId } } ... on PythonError { message } "
            "... on RunConfigValidationInvalid { errors { message } } } }",
            {"p": {"selector": selector, "runConfigData": run_config}},
        )
        result = data["launchRun"]
        if result["__typename"] != "LaunchRunSuccess":
            raise RuntimeError(f"launching {job} failed: {result}")
        return result["run"]["runId"]

    def terminate(self, run_id: str) -> None:
        """Terminate a run, as the UI's Terminate button does."""
        self.graphql(
            "mutation($id: String!) { terminateRun(runId: $id) { __typename } }", {"id": run_id}
        )

    def runs(self, job: str) -> list[dict]:
        """Runs of `job`, newest first: id, status, start and end (epoch seconds)."""
        data = self.graphql(
            "query($f: RunsFilter) { runsOrError(filter: $f) { ... on Runs { results { "
            "runId status startTime endTime } } } }",
            {"f": {"pipelineName": job}},
        )
        return data["runsOrError"]["results"]

    def run_tags(self, run_id: str) -> dict[str, str]:
        """The run's tags."""
        data = self.graphql(
            "query($id: ID!) { runOrError(runId: $id) { ... on Run { tags { key value } } } }",
            {"id": run_id},
        )
        return {tag["key"]: tag["value"] for tag in data["runOrError"]["tags"]}

    def asset_reports(self, asset: str, limit: int = 500) -> list[dict]:
        """The newest `limit` materializations of `asset`, oldest first: run, time, int metadata."""
        data = self.graphql(
            "query($key: AssetKeyInput!, $limit: Int!) { assetOrError(assetKey: $key) { "
            "... on Asset { assetMaterializations(limit: $limit) { runId timestamp "
            "metadataEntries { label ... on IntMetadataEntry { intValue } } } } } }",
            {"key": {"path": [asset]}, "limit": limit},
        )
        found = [
            {
                "run_id": event["runId"],
                "time": int(event["timestamp"]) / 1000,
                **{e["label"]: e["intValue"] for e in event["metadataEntries"] if "intValue" in e},
            }
            for event in data["assetOrError"]["assetMaterializations"]
        ]
        return sorted(found, key=lambda report: report["time"])

    def status(self, run_id: str) -> str:
        """A run's status name (QUEUED, STARTED, SUCCESS …)."""
        data = self.graphql(
            "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }", {"id": run_id}
        )
        return data["runOrError"]["status"]

    def wait_for(self, run_id: str, statuses: set[str] | frozenset[str], timeout: float) -> str:
        """Poll a run until its status is one of `statuses`; the status (or the last seen)."""
        deadline = time.monotonic() + timeout
        status = self.status(run_id)
        while status not in statuses and time.monotonic() < deadline:
            time.sleep(1)
            status = self.status(run_id)
        return status


def _end_group(process: subprocess.Popen, signum: int) -> None:
    """Signal the process group of `process` and reap it (SIGKILL after 60 s)."""
    try:
        os.killpg(process.pid, signum)
        process.wait(timeout=60)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
