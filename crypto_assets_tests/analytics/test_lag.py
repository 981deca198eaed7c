"""The lag histogram against numpy on the same samples, and batch lags through a Delta history."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from deltalake import CommitProperties, write_deltalake

from crypto_assets.analytics.lag import (
    META_BATCH_LAG,
    BatchLag,
    LagHistogram,
    batch_lag_of,
    exact_stats,
    merge_batch_lags,
    read_recent_batch_lags,
)


def lognormal_samples(count: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.lognormvariate(0.5, 1.2) for _ in range(count)]


@pytest.mark.parametrize("q", [0.01, 0.5, 0.9, 0.95, 0.99])
def test_histogram_quantiles_within_one_percent_of_numpy(q: float) -> None:
    samples = lognormal_samples(20_000, seed=7)
    histogram = LagHistogram()
    for value in samples:
        histogram.add(value)
    expected = float(np.quantile(samples, q, method="lower"))
    assert histogram.quantile(q) == pytest.approx(expected, rel=0.01)
    assert histogram.count == 20_000
    assert histogram.max_s == max(samples)


def test_histogram_stays_small_over_a_huge_range() -> None:
    histogram = LagHistogram()
    for exponent in np.linspace(-3, 6, 200_000):  # 1 ms .. 11.6 days
        histogram.add(float(10**exponent))
    # log(1e9) / log(1.01 / 0.99) ~ 1,036 buckets, whatever the number of samples.
    assert len(histogram.buckets) <= 1_100
    assert histogram.stats().p50_s == pytest.approx(10**1.5, rel=0.01)


def test_negative_and_tiny_lags_count_as_zero() -> None:
    histogram = LagHistogram()
    for value in (-2.0, 0.0, 0.0004, 5.0):
        histogram.add(value)
    assert histogram.quantile(0.0) == 0.0
    assert histogram.quantile(0.5) == 0.0  # the 2nd of 4 samples, "lower"
    assert histogram.quantile(1.0) == pytest.approx(5.0, rel=0.01)
    assert exact_stats([-2.0, 1.0]).p50_s == 0.5  # clamped to 0, then interpolated


def test_merged_histograms_equal_one_histogram_of_all_samples() -> None:
    first, second = lognormal_samples(3_000, seed=1), lognormal_samples(5_000, seed=2)
    a, b, both = LagHistogram(), LagHistogram(), LagHistogram()
    for value in first:
        a.add(value)
        both.add(value)
    for value in second:
        b.add(value)
        both.add(value)
    a.merge(b)
    assert a.buckets == both.buckets
    assert a.stats() == both.stats()


def test_adding_an_array_at_once_equals_adding_each_lag() -> None:
    samples = [*lognormal_samples(5_000, seed=4), -1.5, 0.0, 0.0004, 0.001, 1e-9]
    one_by_one, at_once = LagHistogram(), LagHistogram()
    for value in samples:
        one_by_one.add(value)
    at_once.add_all(pa.array(samples, pa.float64()))
    at_once.add_all([])
    assert at_once.buckets == one_by_one.buckets
    assert at_once.max_s == one_by_one.max_s
    assert exact_stats(pa.array(samples, pa.float64())) == exact_stats(samples)


def test_exact_stats_match_numpy_linear() -> None:
    samples = lognormal_samples(999, seed=3)
    stats = exact_stats(samples)
    assert stats.count == 999
    assert stats.p50_s == pytest.approx(float(np.percentile(samples, 50)))
    assert stats.p95_s == pytest.approx(float(np.percentile(samples, 95)))
    assert stats.max_s == max(samples)
    assert exact_stats([]).count == 0
    assert exact_stats([]).p95_s is None


def test_batch_lag_json_round_trip_keeps_stats_and_histograms() -> None:
    samples = {"raw": [0.5, 1.0, 2.0, 4.0], "window": [1.5, 3.0], "alert": []}
    lag = BatchLag.of("q:abc", 41, 1_700_000_000_123, samples)
    back = BatchLag.from_json(lag.to_json())
    assert (back.app_id, back.batch_id, back.finished_ms) == ("q:abc", 41, 1_700_000_000_123)
    assert back.raw == (4, 1.5, pytest.approx(3.7), 4.0)  # numpy: percentile(.., 95) = 3.7
    assert back.window.count == 2
    assert back.alert == (0, None, None, None)
    assert back.histograms["raw"].buckets == lag.histograms["raw"].buckets


def test_merge_batch_lags_over_batches() -> None:
    first = BatchLag.of("q", 1, 1, {"raw": [1.0] * 90})
    second = BatchLag.of("q", 2, 2, {"raw": [10.0] * 10, "alert": [3.0]})
    merged = merge_batch_lags([first, second])
    assert merged["raw"].count == 100
    assert merged["raw"].p50_s == pytest.approx(1.0, rel=0.01)
    assert merged["raw"].p95_s == pytest.approx(10.0, rel=0.01)
    assert merged["alert"].max_s == 3.0
    assert merged["window"].count == 0


def test_batch_lag_read_from_spark_style_user_metadata() -> None:
    lag = BatchLag.of("q", 3, 9, {"raw": [2.0]})
    user = json.dumps({"crypto_assets.app_id": "q", META_BATCH_LAG: lag.to_json()})
    assert batch_lag_of({"userMetadata": user}).raw.max_s == 2.0
    assert batch_lag_of({"userMetadata": "not json"}) is None
    assert batch_lag_of({"operation": "OPTIMIZE"}) is None


def test_recent_batch_lags_read_back_from_delta_history_newest_first(tmp_path: Path) -> None:
    path = tmp_path / "price_alerts"
    assert read_recent_batch_lags(path) == []
    rows = pa.table({"x": [1]})
    for batch_id in range(5):
        lag = BatchLag.of("q", batch_id, 1000 + batch_id, {"raw": [float(batch_id + 1)]})
        metadata = {META_BATCH_LAG: lag.to_json()} if batch_id != 2 else {"other": "1"}
        write_deltalake(
            path, rows, mode="append", commit_properties=CommitProperties(custom_metadata=metadata)
        )
    found = read_recent_batch_lags(path, limit=3)
    assert [lag.batch_id for lag in found] == [4, 3, 1]  # batch 2's commit carried no lag
    assert found[0].raw.max_s == 5.0
