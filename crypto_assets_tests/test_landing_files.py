"""The landing-file name rule: what the writer names, the glob and the predicate agree."""

from __future__ import annotations

import calendar
import fnmatch
import re

from crypto_assets.landing_files import LANDING_FILE_GLOB, is_landing_file, landing_file_name

# DESIGN.md "Landing records": trades_<YYYYmmdd>_<HHMMSS>_<6+ hex>.json
DESIGN_NAME = re.compile(r"trades_\d{8}_\d{6}_[0-9a-f]{6,}\.json")


def test_a_written_name_follows_design_in_utc_and_is_unique() -> None:
    wall = calendar.timegm((2024, 8, 9, 0, 5, 7, 0, 0, 0))
    names = {landing_file_name(wall) for _ in range(50)}
    assert len(names) == 50
    for name in names:
        assert DESIGN_NAME.fullmatch(name)
        assert name.startswith("trades_20240809_000507_")
        assert is_landing_file(name)
        assert fnmatch.fnmatch(name, LANDING_FILE_GLOB)
    assert landing_file_name(wall, prefix="quarantine").startswith("quarantine_20240809_000507_")


def test_hidden_temporary_and_other_names_are_not_landing_files() -> None:
    for name in (
        ".trades_20240809_000100_abcdef.json.tmp",
        ".trades_20240809_000100_abcdef.json",
        "_trades_20240809_000100_abcdef.json",
        "quarantine_20240809_000100_abcdef.json",
        "trades_20240809_000100_abcdef.json.tmp",
    ):
        assert not is_landing_file(name), name
        assert not fnmatch.fnmatch(name, LANDING_FILE_GLOB), name
