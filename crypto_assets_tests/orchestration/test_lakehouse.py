"""The landing folder's totals for landing_trades: complete files and their trade lines."""

from __future__ import annotations

from crypto_assets.orchestration.lakehouse import LandingCounter, LandingTotals
from crypto_assets_tests.orchestration.landing_for_tests import write_landing_file


def test_counts_complete_files_and_their_non_blank_lines(tmp_path):
    landing = tmp_path / "landing" / "trades"
    counter = LandingCounter(landing)
    assert counter.totals() == LandingTotals(files=0, rows=0)  # no folder yet
    write_landing_file(landing, "trades_20240809_000000_aaaaaa.json", ['{"a": 1}', '{"a": 2}'])
    # Blank lines and a last line without its newline: 3 rows.
    (landing / "trades_20240809_000005_bbbbbb.json").write_bytes(
        b'{"a": 3}\r\n\n{"a": 4}\n{"a": 5}'
    )
    # Still being written (a dot name) and not a landing file at all: not counted.
    (landing / ".trades_20240809_000010_cccccc.json").write_text('{"a": 6}\n')
    (landing / "notes.txt").write_text("x\n")
    assert counter.totals() == LandingTotals(files=2, rows=5)
    write_landing_file(landing, "trades_20240809_000010_cccccc.json", ['{"a": 6}'])
    assert counter.totals() == LandingTotals(files=3, rows=6)
    (landing / "trades_20240809_000000_aaaaaa.json").unlink()
    assert counter.totals() == LandingTotals(files=2, rows=4)
