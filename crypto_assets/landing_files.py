"""The landing-file name rule (DESIGN "Landing records"), shared by the writer and every reader.

A complete landing file is named ``trades_<YYYYmmdd>_<HHMMSS>_<6+ hex>.json`` (UTC). It is first
written under a name starting with ``.``, which no reader's rule matches: no reader sees it partial.
"""

from __future__ import annotations

import secrets
import time

LANDING_FILE_PREFIX = "trades"
# What Spark's file source reads (`pathGlobFilter`); `is_landing_file` says the same.
LANDING_FILE_GLOB = f"{LANDING_FILE_PREFIX}_*.json"


def landing_file_name(wall_time: float, prefix: str = LANDING_FILE_PREFIX) -> str:
    """``<prefix>_<YYYYmmdd>_<HHMMSS>_<12 hex>.json`` in UTC; the random part keeps names unique."""
    stamp = time.strftime("%Y%m%d_%H%M%S", time.gmtime(wall_time))
    return f"{prefix}_{stamp}_{secrets.token_hex(6)}.json"


def is_landing_file(name: str) -> bool:
    """True for a complete landing file (`LANDING_FILE_GLOB`); hidden and temporary names aren't."""
    return name.startswith(f"{LANDING_FILE_PREFIX}_") and name.endswith(".json")
