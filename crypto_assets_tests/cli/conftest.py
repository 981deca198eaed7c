"""The command tests use the fixtures of the areas whose commands they run."""

from crypto_assets_tests.analytics.conftest import full_run, landing_records
from crypto_assets_tests.producer.conftest import expected_trades, producer_config, unused_port
from crypto_assets_tests.replay.conftest import recorded_frames, recorded_trades

__all__ = [
    "expected_trades",
    "full_run",
    "landing_records",
    "producer_config",
    "recorded_frames",
    "recorded_trades",
    "unused_port",
]
