"""A producer stopped and restarted: the minutes without data raise no VOLUME_SPIKE by themselves.

The real recording is cut at a minute boundary and its second part moved 15 minutes later, as
if the producer had been stopped for 15 minutes; each part is landed and processed by its own
run. Minutes without a row are missing data, not a quiet market: the windows after the gap are
compared with the plain-Python reference, and the rule that counted them as 0 trades is shown to
fire there.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from crypto_assets.settings import Settings
from crypto_assets_tests.analytics import reference
from crypto_assets_tests.analytics.expectations import assert_matches_reference
from crypto_assets_tests.analytics.landing_files import shifted, write_landing_files
from crypto_assets_tests.analytics.runs import run_local
from crypto_assets_tests.analytics.settings_for_tests import RULES, WINDOW_MS, analytics_settings
from crypto_assets_tests.analytics.tables import epoch_ms, rows

pytestmark = pytest.mark.spark

STOP_MS = 1723161600000  # 2024-08-09 00:00 UTC: the producer stops at this minute boundary
GAP_MS = 15 * 60_000  # and starts again 15 minutes later


def old_rule_spikes(windows: dict[tuple[str, int], dict]) -> set[tuple[str, int]]:
    """(symbol, window start) of the VOLUME_SPIKEs of the replaced rule: the history slots were
    those of the previous lookback slots after the symbol's first window, an empty one 0 trades."""
    first: dict[str, int] = {}
    for symbol, start in windows:
        first[symbol] = min(start, first.get(symbol, start))
    spikes = set()
    for (symbol, start), row in windows.items():
        slots = [start - k * WINDOW_MS for k in range(1, RULES.volume_spike_lookback + 1)]
        history = [slot for slot in slots if slot > first[symbol]]
        if not history or len(history) < RULES.volume_spike_min_history:
            continue
        counts = [
            windows.get((symbol, slot), {"trade_count": 0})["trade_count"] for slot in history
        ]
        baseline = sum(counts) / len(history)
        if row["trade_count"] >= max(
            RULES.volume_spike_min_trades, RULES.volume_spike_factor * baseline
        ):
            spikes.add((symbol, start))
    return spikes


def test_a_producer_stopped_for_15_minutes_raises_no_volume_spike_on_restart(
    spark, tmp_path: Path, landing_records
) -> None:
    before = [r for r in landing_records if r["trade_time"] < STOP_MS]
    after = shifted([r for r in landing_records if r["trade_time"] >= STOP_MS], 1, 0, GAP_MS)
    restart_ms = STOP_MS + GAP_MS
    landing = tmp_path / "landing" / "trades"
    write_landing_files(landing, before, 3)
    run_local(spark, analytics_settings(tmp_path))  # the producer's first run, then a stop
    write_landing_files(landing, after, 3, first_sequence=3)
    run_local(spark, analytics_settings(tmp_path))  # the producer's run after its restart

    records = before + after
    windows = reference.windows(records, WINDOW_MS)
    starts = {start for _, start in windows}
    assert not starts & set(range(STOP_MS, restart_ms, WINDOW_MS))  # 15 minutes without a row
    assert min(start for start in starts if start >= STOP_MS) == restart_ms
    got = rows(tmp_path, "price_alerts")
    after_gap = {
        (r["symbol"], epoch_ms(r["window_start"]))
        for r in got
        if r["alert_type"] == "VOLUME_SPIKE" and epoch_ms(r["window_start"]) >= restart_ms
    }
    assert after_gap == set()
    # The replaced rule would have fired there: at the restart's first window on a baseline of
    # 0.0 (its 10 looked-back slots all empty), for both symbols.
    old = old_rule_spikes(windows)
    assert {("BTCUSDT", restart_ms), ("ETHUSDT", restart_ms)} <= old
    # Before the stop the spikes are those of the uninterrupted recording (BTCUSDT at 23:58).
    assert ("VOLUME_SPIKE", "BTCUSDT", STOP_MS - 2 * WINDOW_MS) in {
        (r["alert_type"], r["symbol"], epoch_ms(r["window_start"])) for r in got
    }
    assert_matches_reference(tmp_path, records)


def _trades(minute_counts: dict[int, int], first_id: int) -> list[dict]:
    """`count` BTCUSDT landing records in each minute after STOP_MS, at a steady price of 100."""
    records = []
    trade_id = first_id
    for minute, count in minute_counts.items():
        for index in range(count):
            trade_time = STOP_MS + minute * WINDOW_MS + 1_000 + 100 * index
            records.append(
                {
                    "event_type": "trade",
                    "event_time": trade_time,
                    "symbol": "BTCUSDT",
                    "trade_id": trade_id,
                    "price": 100.0,
                    "quantity": 0.5,
                    "trade_value_usdt": 50.0,
                    "trade_time": trade_time,
                    "is_buyer_maker": index % 2 == 0,
                    "ingestion_time": trade_time + 5,
                }
            )
            trade_id += 1
    return records


def test_a_back_filled_minute_revises_the_alerts_its_next_window_stops_being_an_edge_for(
    spark, tmp_path: Path
) -> None:
    # Lookback 10, min_history 3, factor 1.5. Minute 4 is missing at first, so 5 (100 trades)
    # is an edge: minute 15's history is 6..14, (2 + 8 x 20) / 9 = 18, threshold 27 <= 30.
    # Back-filling minute 4 makes 5 a history slot: minute 15 (= 4 + 1 + lookback) has
    # (100 + 2 + 8 x 20) / 10 = 26.2, threshold 39.3 > 30, and its spike must go. Then
    # minute 16 arrives alone: its history 6..15 needs slot 5 to tell that 6 is no edge:
    # (2 + 8 x 20 + 30) / 10 = 19.2, threshold 28.8 <= 30 (with 6 taken as an edge, 190 / 9,
    # threshold 31.7: no spike).
    counts = {0: 20, 1: 20, 2: 20, 3: 20, 5: 100, 6: 2, **dict.fromkeys(range(7, 15), 20), 15: 30}
    stage1 = _trades(counts, 1)
    backfill = _trades({4: 20}, 10_000)
    last = _trades({16: 30}, 20_000)
    # A watermark of an hour: the back-filled trades revise their window (not late).
    base = analytics_settings(tmp_path).model_dump()
    settings = Settings.model_validate({**base, "watermark_delay": "1 hour"})
    landing = tmp_path / "landing" / "trades"

    write_landing_files(landing, stage1, 1)
    run_local(spark, settings)
    spiked = assert_matches_reference(tmp_path, stage1)
    assert ("VOLUME_SPIKE", "BTCUSDT", STOP_MS + 15 * WINDOW_MS) in spiked

    write_landing_files(landing, backfill, 1, first_sequence=1)
    assert run_local(spark, settings).late_rows == 0
    revised = assert_matches_reference(tmp_path, stage1 + backfill)
    assert ("VOLUME_SPIKE", "BTCUSDT", STOP_MS + 15 * WINDOW_MS) not in revised

    write_landing_files(landing, last, 1, first_sequence=2)
    run_local(spark, settings)
    final = assert_matches_reference(tmp_path, stage1 + backfill + last)
    assert ("VOLUME_SPIKE", "BTCUSDT", STOP_MS + 16 * WINDOW_MS) in final
