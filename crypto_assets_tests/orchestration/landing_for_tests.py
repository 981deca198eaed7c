"""Test-side landing files of the Dagster tests: write one, count what landed, recorded rows."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from crypto_assets.analytics.landing_retention import archive_dir_for
from crypto_assets_tests.recorded_trades import recorded_landing_rows


def write_landing_file(landing_dir: Path, name: str, lines: list[str] | None = None) -> Path:
    """A complete landing file named `name` (one JSON object per line)."""
    landing_dir.mkdir(parents=True, exist_ok=True)
    path = landing_dir / name
    path.write_text("".join(f"{line}\n" for line in lines or []))
    return path


def landed_files(landing_dir: Path) -> list[Path]:
    """The complete landing files of `landing_dir`: still there, or archived after processing."""
    archived = archive_dir_for(landing_dir).rglob("trades_*.json")
    return sorted([*landing_dir.glob("trades_*.json"), *archived], key=lambda path: path.name)


def landed_trades(landing_dir: Path) -> dict[str, int]:
    """Trades per symbol in the landed files of `landing_dir` (`landed_files`), read with json."""
    counts: dict[str, int] = {}
    for path in landed_files(landing_dir):
        for line in path.read_text().splitlines():
            symbol = json.loads(line)["symbol"]
            counts[symbol] = counts.get(symbol, 0) + 1
    return counts


def landing_records(recording: Path, limit: int) -> list[dict]:
    """The first `limit` trades of the recording as DESIGN.md landing records (plain json)."""
    return list(itertools.islice(recorded_landing_rows(recording), limit))
