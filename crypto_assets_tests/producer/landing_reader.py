"""Test-side reader of the producer's landing files (plain json)."""

from __future__ import annotations

import json
from pathlib import Path


def read_landing(landing_dir: Path) -> list[dict]:
    """Every row of every visible landing file."""
    return [
        json.loads(line)
        for path in sorted(landing_dir.glob("trades_*.json"))
        for line in path.read_text(encoding="utf-8").splitlines()
    ]
