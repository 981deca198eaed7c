"""Fixtures of the Dagster layer: a temporary data dir, its definitions, a real Dagster instance."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from crypto_assets.orchestration.deployments import build_definitions
from crypto_assets.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings of the embedded default with the data dir in a temporary directory."""
    return Settings(data_dir=tmp_path / "data", trading_pairs=("btcusdt", "ethusdt"))


@pytest.fixture
def defs(settings: Settings) -> dg.Definitions:
    """The project's definitions built for `settings`."""
    return build_definitions(settings)


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    """A real Dagster instance on disk (run storage, event log) in a temporary DAGSTER_HOME."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.DagsterInstance.local_temp(tempdir=str(home)) as inst:
        yield inst


def write_landing_file(landing_dir: Path, name: str, lines: list[str] | None = None) -> Path:
    """A complete landing file named `name` (one JSON object per line)."""
    landing_dir.mkdir(parents=True, exist_ok=True)
    path = landing_dir / name
    path.write_text("".join(f"{line}\n" for line in lines or []))
    return path
