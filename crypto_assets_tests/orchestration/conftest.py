"""Fixtures of the Dagster layer: a temporary data dir, its definitions, a real Dagster instance."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from crypto_assets.orchestration.definitions import build_definitions
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
    overrides = {"telemetry": {"enabled": False}}
    with dg.DagsterInstance.local_temp(tempdir=str(home), overrides=overrides) as inst:
        yield inst


@pytest.fixture(scope="session")
def recorded_trades(recording: Path) -> dict[str, int]:
    """Distinct trades per symbol in the bundled recording, read with plain json."""
    ids: dict[str, set[int]] = {}
    with gzip.open(recording, "rt", encoding="utf-8") as handle:
        for line in handle:
            frame = json.loads(line.split(" ", 1)[1])
            data = frame.get("data", {})
            if data.get("e") == "trade":
                ids.setdefault(data["s"], set()).add(data["t"])
    return {symbol: len(trade_ids) for symbol, trade_ids in ids.items()}
