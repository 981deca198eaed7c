"""The landing folder of a test's settings, as the local deployment lays it out."""

from __future__ import annotations

from pathlib import Path

from crypto_assets.local.layout import LocalLayout
from crypto_assets.settings import Settings


def landing_of(settings: Settings) -> Path:
    """`<data_dir>/landing/trades` of `settings` (`LocalLayout`)."""
    return LocalLayout.from_settings(settings).landing_dir
