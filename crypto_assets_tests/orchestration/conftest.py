"""Fixtures of the Dagster layer: a temporary data dir, its definitions, a real Dagster instance."""

from __future__ import annotations

import gzip
import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from crypto_assets.orchestration.deployments import build_definitions
from crypto_assets.settings import Settings
from crypto_assets_tests.recorded_trades import recorded_landing_rows


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


def write_landing_file(landing_dir: Path, name: str, lines: list[str] | None = None) -> Path:
    """A complete landing file named `name` (one JSON object per line)."""
    landing_dir.mkdir(parents=True, exist_ok=True)
    path = landing_dir / name
    path.write_text("".join(f"{line}\n" for line in lines or []))
    return path


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


def landed_trades(landing_dir: Path) -> dict[str, int]:
    """Trades per symbol in the complete landing files under `landing_dir`, read with json."""
    counts: dict[str, int] = {}
    for path in sorted(landing_dir.glob("trades_*.json")):
        for line in path.read_text().splitlines():
            symbol = json.loads(line)["symbol"]
            counts[symbol] = counts.get(symbol, 0) + 1
    return counts


def landing_records(recording: Path, limit: int) -> list[dict]:
    """The first `limit` trades of the recording as DESIGN.md landing records (plain json)."""
    return list(itertools.islice(recorded_landing_rows(recording), limit))
