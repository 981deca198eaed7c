"""`make ui` started in the background stops on SIGTERM and SIGINT, services and code servers too.

A non-interactive shell starts a background job with SIGINT ignored (`make ui &` in a script, a CI
step); the tests start the real `make ui` that way, on a temporary instance and a free port.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from crypto_assets_tests.dagster_services import REPO, free_port

# In the slow group, which runs in one process: in make test's parallel run on 2 cores, with the
# other workers running Spark, `make ui` did not stop within 45 s of a SIGTERM to make, twice on
# fresh clones (why is not known yet); alone, or with make test's workers on this file only, it
# stops in seconds.
pytestmark = [pytest.mark.e2e, pytest.mark.slow]

STARTUP_SECONDS = 90.0
# How long `dg dev` may take to stop its webserver, daemon and code servers.
STOP_SECONDS = 45.0
# Processes `make ui` runs once it serves: `dg dev`, its webserver and daemon, code servers.
SERVICES = ("dg dev", "dagster_webserver", "dagster._daemon", "code-server")


def process_state(pid: int) -> tuple[int, str] | None:
    """(parent pid, state letter) of a process, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), fields[0]


def command_line(pid: int) -> str:
    """A process's command line, arguments joined by spaces ("" once it is gone)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def descendants(pid: int) -> dict[int, str]:
    """Every living process below `pid`, with its command line."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (state := process_state(int(entry))) is not None:
            children.setdefault(state[0], []).append(int(entry))
    found: dict[int, str] = {}
    pending = list(children.get(pid, []))
    while pending:
        child = pending.pop()
        found[child] = command_line(child)
        pending.extend(children.get(child, []))
    return found


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie has exited: it only waits for its parent to reap it)."""
    state = process_state(pid)
    return state is not None and state[1] != "Z"


def serving(port: int) -> bool:
    """Whether the webserver answers on `port`."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2):
            return True
    except (urllib.error.URLError, OSError):
        return False


def make_ui_in_the_background(home: Path, port: int, log: Path) -> subprocess.Popen:
    """`make ui &` from a non-interactive bash (its own session), on `home` and `port`.

    The venv is this interpreter's and counts as installed: the test runs what `ui` runs.
    """
    venv = Path(sys.prefix)
    make = [
        "make",
        "-C",
        str(REPO),
        "-o",
        "install",
        "-o",
        str(venv / ".installed-stamp"),
        "ui",
        f"VENV={venv}",
        f"DAGSTER_HOME={home}",
        f"DAGSTER_PORT={port}",
    ]
    outer_make = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")
    env = {k: v for k, v in os.environ.items() if k not in outer_make}
    with log.open("wb") as out:
        return subprocess.Popen(
            ["bash", "-c", f"{shlex.join(make)} & wait"],
            env={**env, "DAGSTER_HOME": str(home)},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def pid_of(target: str, processes: dict[int, str]) -> int:
    """The pid of `make` itself, or of the process whose command line contains `target`."""
    if target == "make":
        return next(pid for pid, line in processes.items() if Path(line.split()[0]).name == "make")
    return next(pid for pid, line in processes.items() if target in line)


@pytest.mark.parametrize(
    ("signum", "target"),
    [(signal.SIGTERM, "make"), (signal.SIGINT, "dg dev")],
    ids=["sigterm-to-make", "sigint-to-dg-dev"],
)
def test_make_ui_in_the_background_stops_on_a_signal(
    tmp_path: Path, signum: signal.Signals, target: str
) -> None:
    port, log = free_port(), tmp_path / "make_ui.log"
    shell = make_ui_in_the_background(tmp_path / "dagster_home", port, log)
    processes: dict[int, str] = {}
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not serving(port):
            assert shell.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"make ui did not serve: {log.read_text()}"
            time.sleep(0.5)
        processes = descendants(shell.pid)
        for service in SERVICES:
            assert any(service in line for line in processes.values()), (
                service,
                [line[:80] for line in processes.values()],
            )
        # As the user would: `kill $!` after `make ui &` (make passes SIGTERM on to its child),
        # or `kill -INT` to `dg dev`.
        os.kill(pid_of(target, processes), signum)

        stop_deadline = time.monotonic() + STOP_SECONDS
        while any(alive(p) for p in processes) and time.monotonic() < stop_deadline:
            time.sleep(0.2)
        left = {p: line[:80] for p, line in processes.items() if alive(p)}
        assert not left, f"still running {STOP_SECONDS} s after {signum.name}: {left}"
        assert "Dagster services shut down." in log.read_text()
    finally:
        for pid in [*processes, shell.pid]:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        shell.wait(10)
