"""The settings resource carries the project's settings unchanged and validates overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from crypto_assets.orchestration.resources import CryptoSettings
from crypto_assets.settings import Settings, SettingsError


def test_settings_round_trip_through_the_resource():
    settings = Settings.from_env(
        {
            "TRADING_PAIRS": "solusdt,btcusdt",
            "RUN_DURATION_MINUTES": "none",
            "ANALYTICS_WINDOW": "5 minutes",
            "CRYPTO_DATA_DIR": "/srv/crypto",
            "CRYPTO_SOURCE": "replay",
            "SCHEMA": "other_schema",
        }
    )
    assert CryptoSettings.from_settings(settings).to_settings() == settings


def test_malformed_launchpad_override_is_a_settings_error():
    resource = CryptoSettings.from_settings(Settings(data_dir=Path("/tmp/x")))
    bad_pairs = resource.model_copy(update={"trading_pairs": ["BTC-USD"]})
    with pytest.raises(SettingsError, match="trading_pairs"):
        bad_pairs.to_settings()
    bad_window = resource.model_copy(update={"analytics_window": "soon"})
    with pytest.raises(SettingsError, match="ANALYTICS_WINDOW"):
        bad_window.to_settings()
