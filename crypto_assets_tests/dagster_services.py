"""A real Dagster webserver and daemon on loopback for one temporary instance, with GraphQL calls.

Shared by the end-to-end test and benchmarks/landing_latency.py: both processes are started as
`dagster dev` starts them, on the dagster.yaml `make ui` writes, in a temporary DAGSTER_HOME and
CRYPTO_DATA_DIR under one root folder (which also holds their logs).
"""

from __future__ import annotations

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


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DagsterServices:
    """A webserver and a daemon on loopback under `root`, and the GraphQL calls both users need."""

    def __init__(self, root: Path, startup_seconds: float = STARTUP_SECONDS) -> None:
        self.root = root
        self.log_dir = root
        self.home = root / "dagster_home"
        self.data_dir = root / "data"
        self.landing_dir = self.data_dir / "landing" / "trades"
        self.startup_seconds = startup_seconds
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.processes: list[subprocess.Popen] = []

    def start(self) -> None:
        """Write the instance, start both processes (own process groups), wait for the code."""
        self.home.mkdir(parents=True, exist_ok=True)
        # The instance `make ui` runs on: no telemetry, no nux, the run queue's limits.
        (self.home / "dagster.yaml").write_text(instance_yaml())
        env = {
            **os.environ,
            "DAGSTER_HOME": str(self.home),
            "CRYPTO_DATA_DIR": str(self.data_dir),
            "TRADING_PAIRS": "btcusdt,ethusdt",
        }
        workspace = str(REPO / "workspace.yaml")
        commands = {
            "webserver": [
                str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(self.port),
                "-w", workspace,
            ],
            "daemon": [str(BIN / "dagster-daemon"), "run", "-w", workspace],
        }  # fmt: skip
        deadline = time.monotonic() + self.startup_seconds
        for name, command in commands.items():
            log = (self.log_dir / f"{name}.log").open("w")
            self.processes.append(
                subprocess.Popen(
                    command,
                    cwd=REPO,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            if name == "webserver":
                # The webserver creates the instance's SQLite storage; a daemon started at the
                # same moment races it to the schema ("alembic_version has more than one head").
                self._wait_for_server_info(deadline)
        while time.monotonic() < deadline:
            if self._code_location_loaded():
                return
            time.sleep(1)
        raise RuntimeError(f"the Dagster webserver did not come up; see {self.log_dir}")

    def _wait_for_server_info(self, deadline: float) -> None:
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/server_info", timeout=5):
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() >= deadline:
                    raise RuntimeError(f"webserver did not start; see {self.log_dir}") from None
                if self.processes[0].poll() is not None:
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

    def stop(self) -> None:
        """SIGTERM each process group started here, SIGKILL it if it does not end in 60 s."""
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)

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
        selector = {
            "repositoryLocationName": LOCATION,
            "repositoryName": REPOSITORY,
            "sensorName": name,
        }
        found = self.graphql(
            "query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) { "
            "... on Sensor { sensorState { id status } } } }",
            {"s": selector},
        )
        state_id = found["sensorOrError"]["sensorState"]["id"]
        stopped = self.graphql(
            "mutation($id: String!) { stopSensor(id: $id) { ... on StopSensorMutationResult { "
            "instigationState { status } } ... on PythonError { message } } }",
            {"id": state_id},
        )
        return stopped["stopSensor"]["instigationState"]["status"]
