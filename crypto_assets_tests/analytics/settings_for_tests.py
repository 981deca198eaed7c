"""Settings of the analytics tests: the low alert RULES and the 1-minute window they use."""

from __future__ import annotations

from pathlib import Path

from crypto_assets.settings import Settings
from crypto_assets_tests.analytics.reference import Rules

# Low enough that both alert types fire on the real ten minutes of data (23:54 to 00:05, the
# 23:54 window partial). With 3 history slots, 1.5 x the baseline is crossed by BTCUSDT at 23:58
# (3216 >= 1.5 x 4335/3) and by both symbols at 00:01 (BTCUSDT 2931 >= 1.5 x 10687/6, ETHUSDT
# 2799 >= 1.5 x 6524/6). The default of 5 would drop 23:58, so a pipeline that ignores the
# setting fails the comparison with the reference.
RULES = Rules(
    price_change_threshold_pct=0.05,
    volume_spike_min_trades=10,
    volume_spike_factor=1.5,
    volume_spike_lookback=10,
    volume_spike_min_history=3,
)
WINDOW_MS = 60_000


def analytics_settings(data_dir: Path) -> Settings:
    """Settings of the analytics tests: 1-minute windows, 30 s watermark, the low RULES."""
    return Settings(
        data_dir=data_dir,
        analytics_window="1 minute",
        watermark_delay="30 seconds",
        price_change_threshold_pct=RULES.price_change_threshold_pct,
        volume_spike_min_trades=RULES.volume_spike_min_trades,
        volume_spike_factor=RULES.volume_spike_factor,
        volume_spike_lookback=RULES.volume_spike_lookback,
        volume_spike_min_history=RULES.volume_spike_min_history,
    )


def rules_env() -> dict[str, str]:
    """The RULES as the environment variables a `crypto-assets analytics` process reads."""
    return {
        "PRICE_CHANGE_THRESHOLD_PCT": str(RULES.price_change_threshold_pct),
        "VOLUME_SPIKE_MIN_TRADES": str(RULES.volume_spike_min_trades),
        "VOLUME_SPIKE_FACTOR": str(RULES.volume_spike_factor),
        "VOLUME_SPIKE_LOOKBACK": str(RULES.volume_spike_lookback),
        "VOLUME_SPIKE_MIN_HISTORY": str(RULES.volume_spike_min_history),
    }
