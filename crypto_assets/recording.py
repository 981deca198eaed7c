"""Where the bundled recording of real Binance trades lives inside the installed package."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

BUNDLED_RECORDING_NAME = "spot_trades_btcusdt_ethusdt_2024-08-08T2354_2024-08-09T0005.ndjson.gz"


def bundled_recording() -> Path:
    """Path of the packaged BTCUSDT/ETHUSDT trade recording (see ``data/SOURCES.md``)."""
    return Path(str(files("crypto_assets") / "data" / BUNDLED_RECORDING_NAME))
