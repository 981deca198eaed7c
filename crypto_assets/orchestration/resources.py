"""Resources the assets need: the project's settings and a Spark session, one interface each.

Each deployment picks its implementations in `deployments.py`; assets only see the interfaces.
The Spark step launcher is a resource too (key `pyspark_step_launcher`): nothing locally, the
Databricks step launcher on the `databricks` deployment.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

import dagster as dg
from pydantic import Field

from crypto_assets.settings import Settings, parse_pairs

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

STEP_LAUNCHER_KEY = "pyspark_step_launcher"
SETTINGS_KEY = "settings"
SPARK_KEY = "spark"
LAKEHOUSE_KEY = "lakehouse"


class CryptoSettings(dg.ConfigurableResource):
    """The project's settings (DESIGN.md names) as a resource the launchpad can override."""

    trading_pairs: list[str]
    batch_interval_seconds: float = Field(gt=0)
    run_duration_minutes: float | None = Field(gt=0, description="None runs until stopped")
    max_trades_per_batch: int = Field(gt=0)
    price_change_threshold_pct: float = Field(gt=0)
    volume_spike_min_trades: int = Field(gt=0)
    volume_spike_factor: float = Field(gt=0)
    volume_spike_lookback: int = Field(gt=0)
    analytics_window: str = Field(description="Spark interval, e.g. '1 minute'")
    watermark_delay: str = Field(description="Spark interval, e.g. '30 seconds'")
    catalog: str
    schema_name: str
    binance_ws_url: str
    binance_rest_url: str
    data_dir: str
    source: Literal["auto", "live", "replay"]

    @classmethod
    def from_settings(cls, settings: Settings) -> CryptoSettings:
        """The resource holding exactly these settings."""
        return cls(
            trading_pairs=list(settings.trading_pairs),
            batch_interval_seconds=settings.batch_interval_seconds,
            run_duration_minutes=settings.run_duration_minutes,
            max_trades_per_batch=settings.max_trades_per_batch,
            price_change_threshold_pct=settings.price_change_threshold_pct,
            volume_spike_min_trades=settings.volume_spike_min_trades,
            volume_spike_factor=settings.volume_spike_factor,
            volume_spike_lookback=settings.volume_spike_lookback,
            analytics_window=settings.analytics_window,
            watermark_delay=settings.watermark_delay,
            catalog=settings.catalog,
            schema_name=settings.schema,
            binance_ws_url=settings.binance_ws_url,
            binance_rest_url=settings.binance_rest_url,
            data_dir=str(settings.data_dir),
            source=settings.source,
        )

    def to_settings(self) -> Settings:
        """The validated `Settings`; a malformed override raises `SettingsError`."""
        return Settings(
            trading_pairs=parse_pairs(",".join(self.trading_pairs), "trading_pairs"),
            batch_interval_seconds=self.batch_interval_seconds,
            run_duration_minutes=self.run_duration_minutes,
            max_trades_per_batch=self.max_trades_per_batch,
            price_change_threshold_pct=self.price_change_threshold_pct,
            volume_spike_min_trades=self.volume_spike_min_trades,
            volume_spike_factor=self.volume_spike_factor,
            volume_spike_lookback=self.volume_spike_lookback,
            analytics_window=self.analytics_window,
            watermark_delay=self.watermark_delay,
            catalog=self.catalog,
            schema=self.schema_name,
            binance_ws_url=self.binance_ws_url,
            binance_rest_url=self.binance_rest_url,
            data_dir=Path(self.data_dir),
            source=self.source,
        )


class SparkResource(dg.ConfigurableResource):
    """Hands out the Spark session the analytics run on; one implementation per deployment."""

    def get_session(self) -> SparkSession:
        """The session to run the streaming queries on."""
        raise NotImplementedError(f"{type(self).__name__} does not provide a Spark session")


class LocalSpark(SparkResource):
    """Local PySpark (`local[*]`) in the step's own process: the embedded default."""

    app_name: str = "crypto_assets"

    def get_session(self) -> SparkSession:
        """Create (or reuse) the process's local Spark session."""
        # Imported here so loading the definitions does not import pyspark.
        from crypto_assets.analytics.spark_session import get_spark_session  # noqa: PLC0415

        return get_spark_session(app_name=self.app_name)
