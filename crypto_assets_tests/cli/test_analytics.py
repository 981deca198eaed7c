"""The ``analytics`` and ``show`` sub-commands, through the real console-script entry point."""

from __future__ import annotations

from pathlib import Path

import pytest

from crypto_assets.cli import main
from crypto_assets_tests.analytics import reference
from crypto_assets_tests.analytics.landing_files import write_landing_files
from crypto_assets_tests.analytics.settings_for_tests import RULES, WINDOW_MS
from crypto_assets_tests.analytics.tables import rows


def test_show_prints_latest_window_per_symbol_and_recent_alerts(
    full_run, landing_records, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show", "--data-dir", str(full_run.data_dir), "--alerts", "5"]) == 0
    out = capsys.readouterr().out
    windows = reference.windows(landing_records, WINDOW_MS)
    for symbol in ("BTCUSDT", "ETHUSDT"):
        last = max(start for sym, start in windows if sym == symbol)
        line = next(text for text in out.splitlines() if text.startswith(symbol))
        assert "2024-08-09 00:05" in line
        assert str(windows[(symbol, last)]["trade_count"]) in line.split()
        assert f"{windows[(symbol, last)]['vwap']:,.2f}" in line
    alerts = reference.alerts(windows, RULES, WINDOW_MS)
    assert f"Recent alerts (5 of {len(alerts)})" in out
    assert out.count("PRICE_MOVE") + out.count("VOLUME_SPIKE") == 5


def test_show_without_tables_is_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("crypto-assets show: error: no Delta table ")
    assert "--once" in err
    assert len(err.splitlines()) == 1


def test_show_missing_data_dir_is_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show", "--data-dir", str(tmp_path / "absent")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"crypto-assets show: error: data directory {tmp_path / 'absent'} does not exist"
    ]


@pytest.mark.spark
def test_analytics_once_prints_summary_last(
    spark, tmp_path: Path, landing_records, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    monkeypatch.setenv("PRICE_CHANGE_THRESHOLD_PCT", "0.05")
    write_landing_files(tmp_path / "landing" / "trades", landing_records[:3000], 3)
    assert main(["analytics", "--data-dir", str(tmp_path), "--once"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("analytics: 3 files in 1 batches")
    assert "trades_raw +3000 new (3000 in the table)" in last
    assert "late rows 0, bad rows 0" in last
    assert len(rows(tmp_path, "trades_raw")) == 3000
    moves = [r for r in rows(tmp_path, "price_alerts") if r["alert_type"] == "PRICE_MOVE"]
    assert {r["threshold"] for r in moves} <= {0.05}  # the environment's setting was used


def test_analytics_requires_a_mode(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["analytics", "--data-dir", str(tmp_path)])
    assert "--once" in capsys.readouterr().err
