"""One analytics query per checkpoint: a CLI run refused while another process holds it."""

from __future__ import annotations

from pathlib import Path

import pytest

from crypto_assets.cli import main
from crypto_assets_tests.analytics.landing_files import write_landing_files
from crypto_assets_tests.lock_holder import lock_held_by_a_child


@pytest.mark.spark
def test_a_second_analytics_process_on_one_data_dir_is_refused_in_one_line(
    spark, tmp_path: Path, landing_records, capsys: pytest.CaptureFixture[str]
) -> None:
    write_landing_files(tmp_path / "landing" / "trades", landing_records[:500], 2)
    checkpoint = tmp_path / "checkpoints" / "landing_trades_to_delta"
    lock = tmp_path / "checkpoints" / "landing_trades_to_delta.lock"
    with lock_held_by_a_child(lock, checkpoint) as holder:
        assert main(["analytics", "--data-dir", str(tmp_path), "--once"]) == 2
        refused = capsys.readouterr()
        assert holder.poll() is None  # the holder is unaffected
    assert refused.err.splitlines() == [
        f"crypto-assets analytics: error: checkpoint folder {checkpoint} is in use by another "
        f"analytics run (pid {holder.pid}, lock {lock}): wait for it to end (or stop it), or "
        "give this one another --data-dir"
    ]
    assert not (tmp_path / "delta").exists()  # refused before it touched anything

    # Once the other process is gone the same command runs, and lets go of the lock at its end.
    assert main(["analytics", "--data-dir", str(tmp_path), "--once"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("analytics: 2 files in ")
    with lock_held_by_a_child(lock, checkpoint) as holder:
        assert holder.poll() is None
