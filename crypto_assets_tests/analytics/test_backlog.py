"""Backlogs: data spread over years, a batch failed after any of its commits, a million trades.

The cost of a batch follows its data, not its time span, and a batch that failed part-way is
re-run by the next run to the same tables as the plain-Python reference.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from crypto_assets.analytics.pipeline import AnalyticsError
from crypto_assets.analytics.schema import (
    PRICE_ALERTS,
    TRADES_ANALYTICS,
    TRADES_QUARANTINE,
    TRADES_RAW,
)
from crypto_assets_tests.analytics.expectations import (
    assert_matches_reference,
    assert_raw_holds_each_trade_once,
)
from crypto_assets_tests.analytics.landing_files import (
    chunks,
    shifted,
    write_landing_files,
    write_lines,
)
from crypto_assets_tests.analytics.runs import run_local
from crypto_assets_tests.analytics.settings_for_tests import analytics_settings
from crypto_assets_tests.analytics.tables import rows

pytestmark = pytest.mark.spark

DAY_MS = 86_400_000
YEAR_MS = 365 * DAY_MS


def spread(records: list[dict], per_piece: int, step_days: int) -> list[dict]:
    """Consecutive pieces of `per_piece` trades, the k-th moved k x `step_days` days later."""
    out = []
    for k, piece in enumerate(chunks(records, max(1, len(records) // per_piece))):
        out += shifted(piece, k, 0, step_days * DAY_MS)
    return out


def years_apart(records: list[dict]) -> list[dict]:
    """Three stretches of real trades in 2017, 2020 and 2024, then one over 150 dates."""
    a, b, c, d = chunks(records, 4)
    return [
        *shifted(a, -1, 0, 7 * YEAR_MS),
        *shifted(b, -1, 0, 4 * YEAR_MS),
        *c,
        *spread(d, 20, 5),
    ]


def test_a_backlog_years_apart_in_one_batch(spark, tmp_path: Path, landing_records) -> None:
    records = years_apart(landing_records[:8000])
    dates = {r["trade_time"] // DAY_MS for r in records}
    assert len(dates) > 100  # more than one MERGE's worth of trade dates
    write_landing_files(tmp_path / "landing" / "trades", records, 5)
    summary = run_local(spark, analytics_settings(tmp_path))
    assert summary.batches == 1
    assert_raw_holds_each_trade_once(tmp_path, records)
    assert_matches_reference(tmp_path, records)


class InjectedFailureError(RuntimeError):
    """Raised by the step hook: the process died right after that commit."""


# A batch's first commit to each table in `make test`; its final commits (those carrying the
# batch's transaction) in the slow group, which CI runs too: each case costs three queries.
FAIL_AFTER = [
    TRADES_QUARANTINE,
    f"{TRADES_RAW}:0",
    pytest.param(TRADES_RAW, marks=pytest.mark.slow),
    f"{TRADES_ANALYTICS}:0",
    pytest.param(TRADES_ANALYTICS, marks=pytest.mark.slow),
    f"{PRICE_ALERTS}:0",
    pytest.param(PRICE_ALERTS, marks=pytest.mark.slow),
]


@pytest.mark.parametrize("step", FAIL_AFTER)
def test_a_batch_failed_after_any_commit_is_rerun_to_the_same_tables(
    spark, tmp_path: Path, landing_records, step: str
) -> None:
    before, after = landing_records[:2000], spread(landing_records[2000:5000], 20, 5)
    landing = tmp_path / "landing" / "trades"
    write_landing_files(landing, before, 2)
    run_local(spark, analytics_settings(tmp_path))
    write_landing_files(landing, after, 3, first_sequence=10)
    bad_lines = ['{"symbol": "BTCUSDT", "trade_id": 1}', "not json", "[]"]
    write_lines(landing, "trades_20240809_000000_0000ff.json", bad_lines)
    failed = []

    def fail(done: str, batch_id: int) -> None:
        if done == step and not failed:
            failed.append(batch_id)
            raise InjectedFailureError(f"died after {done} of batch {batch_id}")

    with pytest.raises(AnalyticsError, match="died after"):
        run_local(spark, analytics_settings(tmp_path), on_step=fail)
    assert failed, f"the batch never reached {step}"

    rerun = run_local(spark, analytics_settings(tmp_path))
    assert rerun.files_processed == 4  # the failed batch, whole, and nothing more
    assert_raw_holds_each_trade_once(tmp_path, before + after)
    assert_matches_reference(tmp_path, before + after)
    assert len(rows(tmp_path, TRADES_QUARANTINE)) == len(bad_lines)


@pytest.mark.slow
def test_a_million_trades_in_100_files_in_one_run(spark, tmp_path: Path, landing_records) -> None:
    span = landing_records[-1]["trade_time"] - landing_records[0]["trade_time"]
    lap_ms = (span // 60_000 + 2) * 60_000
    records: list[dict] = []
    lap = 0
    while len(records) < 1_000_000:
        records += shifted(landing_records, lap, 100_000, lap_ms)
        lap += 1
    records = records[:1_000_000]
    write_landing_files(tmp_path / "landing" / "trades", records, 100)
    summary = run_local(spark, analytics_settings(tmp_path))
    assert summary.files_processed == 100
    assert summary.batches > 1  # bounded batches, not one batch of everything
    assert summary.rows_written[TRADES_RAW] == 1_000_000
    assert_matches_reference(tmp_path, records)
