"""The project's settings: one frozen object, built from the environment in one place.

Every other module receives a `Settings` (or the values it needs) as an argument and never reads
the environment itself. An unknown value or a malformed setting raises `SettingsError` with one
line that names the variable and says what it accepts.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from crypto_assets.errors import CryptoAssetsError

Source = Literal["auto", "live", "replay"]
Deployment = Literal["local", "databricks"]

SOURCES: tuple[Source, ...] = ("auto", "live", "replay")
DEPLOYMENTS: tuple[Deployment, ...] = ("local", "databricks")
_INTERVAL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s+(second|minute|hour|day)s?\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_PAIR = re.compile(r"^[a-z0-9]{5,20}$")
_WS = ("ws", "wss")
_HTTP = ("http", "https")


class SettingsError(CryptoAssetsError, ValueError):
    """A setting is malformed; the message names the variable and what it accepts."""


def interval_seconds(value: str, name: str = "interval") -> float:
    """Seconds in a Spark-style interval such as ``"1 minute"`` or ``"30 seconds"``."""
    match = _INTERVAL.match(value)
    if not match:
        raise SettingsError(f"{name}={value!r}: expected '<number> seconds|minutes|hours|days'")
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]
    if seconds <= 0:
        raise SettingsError(f"{name}={value!r}: must be longer than zero")
    return seconds


def parse_pairs(value: str, name: str = "TRADING_PAIRS") -> tuple[str, ...]:
    """Lower-case symbols from a comma-separated list such as ``"btcusdt,ethusdt"``."""
    pairs = tuple(dict.fromkeys(p.strip().lower() for p in value.split(",") if p.strip()))
    bad = [p for p in pairs if not _PAIR.match(p)]
    if not pairs or bad:
        raise SettingsError(
            f"{name}={value!r}: expected comma-separated Binance symbols such as 'btcusdt,ethusdt'"
        )
    return pairs


def parse_duration_minutes(value: str, name: str = "RUN_DURATION_MINUTES") -> float | None:
    """Minutes as a positive number, or None for ``none`` (run until stopped)."""
    if value.strip().lower() in {"none", "continuous", ""}:
        return None
    return _positive(value, name, float)


def _positive(value: str, name: str, kind: type[int] | type[float]) -> float:
    try:
        number = kind(value)
    except ValueError:
        noun = "a whole number" if kind is int else "a number"
        raise SettingsError(f"{name}={value!r}: expected {noun} greater than zero") from None
    if number <= 0:
        raise SettingsError(f"{name}={value!r}: must be greater than zero")
    return number


def _choice(value: str, name: str, choices: tuple[str, ...]) -> Any:
    lowered = value.strip().lower()
    if lowered not in choices:
        raise SettingsError(f"{name}={value!r}: expected one of {', '.join(choices)}")
    return lowered


def _url(value: str, name: str, schemes: tuple[str, ...]) -> str:
    url = value.strip().rstrip("/")
    if not url.startswith(tuple(f"{s}://" for s in schemes)):
        raise SettingsError(
            f"{name}={value!r}: expected a URL starting with {' or '.join(schemes)}://"
        )
    return url


@dataclass(frozen=True)
class Settings:
    """Everything configurable, with the defaults of DESIGN.md."""

    trading_pairs: tuple[str, ...] = ("btcusdt", "ethusdt", "bnbusdt", "solusdt", "xrpusdt")
    batch_interval_seconds: float = 5.0
    run_duration_minutes: float | None = 3.0
    max_trades_per_batch: int = 1000
    price_change_threshold_pct: float = 0.5
    volume_spike_min_trades: int = 100
    volume_spike_factor: float = 3.0
    volume_spike_lookback: int = 10
    analytics_window: str = "1 minute"
    watermark_delay: str = "30 seconds"
    catalog: str = "takamol_demo"
    schema: str = "crypto_streaming"
    binance_ws_url: str = "wss://stream.binance.com:9443"
    binance_rest_url: str = "https://api.binance.com"
    data_dir: Path = field(default_factory=lambda: Path("./data"))
    source: Source = "auto"
    deployment: Deployment = "local"
    # Set by Dagster's own DAGSTER_HOME; headless runs are then recorded where `dagster dev` looks.
    dagster_home: Path | None = None

    def __post_init__(self) -> None:
        interval_seconds(self.analytics_window, "ANALYTICS_WINDOW")
        interval_seconds(self.watermark_delay, "WATERMARK_DELAY")

    @property
    def window_seconds(self) -> float:
        """Length of one analytics window in seconds."""
        return interval_seconds(self.analytics_window, "ANALYTICS_WINDOW")

    @property
    def watermark_seconds(self) -> float:
        """How late a trade may arrive and still revise its window, in seconds."""
        return interval_seconds(self.watermark_delay, "WATERMARK_DELAY")

    @property
    def landing_dir(self) -> Path:
        """Where the producer writes NDJSON trade files."""
        return self.data_dir / "landing" / "trades"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from environment variables (DESIGN.md names), defaults for the rest."""
        env = os.environ if environ is None else environ
        d = cls()

        def text(name: str, default: object) -> str:
            return env.get(name, str(default))

        def number(name: str, default: float, kind: type[int] | type[float]) -> Any:
            return kind(_positive(text(name, default), name, kind))

        return cls(
            trading_pairs=parse_pairs(text("TRADING_PAIRS", ",".join(d.trading_pairs))),
            batch_interval_seconds=number(
                "BATCH_INTERVAL_SECONDS", d.batch_interval_seconds, float
            ),
            run_duration_minutes=parse_duration_minutes(
                text("RUN_DURATION_MINUTES", d.run_duration_minutes)
            ),
            max_trades_per_batch=number("MAX_TRADES_PER_BATCH", d.max_trades_per_batch, int),
            price_change_threshold_pct=number(
                "PRICE_CHANGE_THRESHOLD_PCT", d.price_change_threshold_pct, float
            ),
            volume_spike_min_trades=number(
                "VOLUME_SPIKE_MIN_TRADES", d.volume_spike_min_trades, int
            ),
            volume_spike_factor=number("VOLUME_SPIKE_FACTOR", d.volume_spike_factor, float),
            volume_spike_lookback=number("VOLUME_SPIKE_LOOKBACK", d.volume_spike_lookback, int),
            analytics_window=text("ANALYTICS_WINDOW", d.analytics_window),
            watermark_delay=text("WATERMARK_DELAY", d.watermark_delay),
            catalog=text("CATALOG", d.catalog),
            schema=text("SCHEMA", d.schema),
            binance_ws_url=_url(text("BINANCE_WS_URL", d.binance_ws_url), "BINANCE_WS_URL", _WS),
            binance_rest_url=_url(
                text("BINANCE_REST_URL", d.binance_rest_url), "BINANCE_REST_URL", _HTTP
            ),
            data_dir=Path(text("CRYPTO_DATA_DIR", d.data_dir)),
            source=_choice(text("CRYPTO_SOURCE", d.source), "CRYPTO_SOURCE", SOURCES),
            deployment=_choice(
                text("CRYPTO_DEPLOYMENT", d.deployment), "CRYPTO_DEPLOYMENT", DEPLOYMENTS
            ),
            dagster_home=Path(env["DAGSTER_HOME"]) if env.get("DAGSTER_HOME") else None,
        )
