"""The Java check before Spark starts: one line that says what to install."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from crypto_assets.analytics.java_runtime import JavaNotFoundError, check_java


def test_unusable_java_home_gives_one_line_cli_error(tmp_path: Path, landing_records) -> None:
    # A fresh process, so the shared Spark session of this run is untouched.
    (tmp_path / "landing" / "trades").mkdir(parents=True)
    env = {**os.environ, "JAVA_HOME": str(tmp_path / "no-jdk"), "PATH": "/usr/bin/false-dir"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "crypto_assets.cli",
            "analytics",
            "--data-dir",
            str(tmp_path),
            "--once",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == (
        f"crypto-assets analytics: error: Spark needs Java 17 or newer, but "
        f"JAVA_HOME={tmp_path / 'no-jdk'} has no bin/java: install a JDK 17+ and set JAVA_HOME "
        "to it (or put its bin/ on PATH)"
    )
    assert "Traceback" not in result.stderr
    assert "Exception" not in result.stderr


def fake_java(directory: Path, banner: str) -> Path:
    java = directory / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text(f"#!/bin/sh\necho '{banner}' >&2\n")
    java.chmod(0o755)
    return directory


@pytest.mark.parametrize(
    ("banner", "major"),
    [('openjdk version "11.0.22" 2024-01-16', 11), ('java version "1.8.0_392"', 8)],
)
def test_old_java_is_refused(tmp_path: Path, monkeypatch, banner: str, major: int) -> None:
    monkeypatch.setenv("JAVA_HOME", str(fake_java(tmp_path, banner)))
    with pytest.raises(JavaNotFoundError, match=f"is Java {major}: install a JDK 17"):
        check_java()


def test_java_17_passes(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(
        "JAVA_HOME", str(fake_java(tmp_path, 'openjdk version "17.0.15" 2025-04-15'))
    )
    check_java()


def test_no_java_on_path(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(JavaNotFoundError, match="no java on PATH"):
        check_java()
