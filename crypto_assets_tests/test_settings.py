"""Every setting read from its DESIGN.md variable: parsing, defaults, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from crypto_assets.settings import Settings, SettingsError, parse_duration_minutes, parse_pairs
from crypto_assets_tests.landing_folder import landing_of

# The variables of DESIGN.md "Configuration", written out here rather than taken from the code.
VARIABLES = (
    "TRADING_PAIRS",
    "BATCH_INTERVAL_SECONDS",
    "RUN_DURATION_MINUTES",
    "MAX_TRADES_PER_BATCH",
    "PRICE_CHANGE_THRESHOLD_PCT",
    "VOLUME_SPIKE_MIN_TRADES",
    "VOLUME_SPIKE_FACTOR",
    "VOLUME_SPIKE_LOOKBACK",
    "VOLUME_SPIKE_MIN_HISTORY",
    "ANALYTICS_WINDOW",
    "WATERMARK_DELAY",
    "CATALOG",
    "SCHEMA",
    "BINANCE_WS_URL",
    "BINANCE_REST_URL",
    "CRYPTO_DATA_DIR",
    "CRYPTO_SOURCE",
    "CRYPTO_DEPLOYMENT",
    "DAGSTER_HOME",
    "DATABRICKS_LAUNCHER",
)


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The real process environment with none of the project's variables set."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def from_env(environ: pytest.MonkeyPatch, **variables: str) -> Settings:
    """`Settings.from_env()` with exactly `variables` set among the project's."""
    for name, value in variables.items():
        environ.setenv(name, value)
    return Settings.from_env()


def test_defaults_are_design_md_values(environ):
    settings = Settings.from_env()
    assert settings == Settings()
    assert settings.trading_pairs == ("btcusdt", "ethusdt", "bnbusdt", "solusdt", "xrpusdt")
    assert settings.batch_interval_seconds == 5
    assert settings.run_duration_minutes == 3
    assert settings.max_trades_per_batch == 1000
    assert settings.price_change_threshold_pct == 0.5
    assert settings.volume_spike_min_trades == 100
    assert settings.volume_spike_factor == 3.0
    assert settings.volume_spike_lookback == 10
    assert settings.volume_spike_min_history == 5
    assert (settings.analytics_window, settings.window_seconds) == ("1 minute", 60)
    assert (settings.watermark_delay, settings.watermark_seconds) == ("30 seconds", 30)
    assert settings.catalog == "takamol_demo"
    assert settings.schema_name == "crypto_streaming"
    assert settings.binance_ws_url == "wss://stream.binance.com:9443"
    assert settings.binance_rest_url == "https://api.binance.com"
    assert settings.data_dir == Path("./data")
    assert landing_of(settings) == Path("data/landing/trades")
    assert settings.source == "auto"
    assert settings.deployment == "local"
    assert settings.dagster_home is None
    assert settings.databricks_launcher == "step_launcher"


@pytest.mark.parametrize(
    ("variable", "raw", "field", "expected"),
    [
        ("TRADING_PAIRS", " BTCUSDT, ethusdt,,btcusdt ", "trading_pairs", ("btcusdt", "ethusdt")),
        ("TRADING_PAIRS", "solusdt", "trading_pairs", ("solusdt",)),
        ("BATCH_INTERVAL_SECONDS", "2.5", "batch_interval_seconds", 2.5),
        ("RUN_DURATION_MINUTES", "0.5", "run_duration_minutes", 0.5),
        ("RUN_DURATION_MINUTES", "none", "run_duration_minutes", None),
        ("RUN_DURATION_MINUTES", "None", "run_duration_minutes", None),
        ("RUN_DURATION_MINUTES", "continuous", "run_duration_minutes", None),
        ("MAX_TRADES_PER_BATCH", "250", "max_trades_per_batch", 250),
        ("PRICE_CHANGE_THRESHOLD_PCT", "1.25", "price_change_threshold_pct", 1.25),
        ("VOLUME_SPIKE_MIN_TRADES", "20", "volume_spike_min_trades", 20),
        ("VOLUME_SPIKE_FACTOR", "2", "volume_spike_factor", 2.0),
        ("VOLUME_SPIKE_LOOKBACK", "30", "volume_spike_lookback", 30),
        ("VOLUME_SPIKE_MIN_HISTORY", "1", "volume_spike_min_history", 1),
        ("VOLUME_SPIKE_MIN_HISTORY", "10", "volume_spike_min_history", 10),
        ("ANALYTICS_WINDOW", "5 minutes", "analytics_window", "5 minutes"),
        ("WATERMARK_DELAY", "2 minutes", "watermark_delay", "2 minutes"),
        ("CATALOG", "main", "catalog", "main"),
        ("SCHEMA", "other_schema", "schema_name", "other_schema"),
        ("BINANCE_WS_URL", "wss://data-stream.binance.vision/", "binance_ws_url",
         "wss://data-stream.binance.vision"),
        ("BINANCE_WS_URL", "ws://127.0.0.1:9001", "binance_ws_url", "ws://127.0.0.1:9001"),
        ("BINANCE_REST_URL", "http://127.0.0.1:9001/", "binance_rest_url", "http://127.0.0.1:9001"),
        ("CRYPTO_DATA_DIR", "/srv/crypto", "data_dir", Path("/srv/crypto")),
        ("CRYPTO_SOURCE", "Replay", "source", "replay"),
        ("CRYPTO_SOURCE", "live", "source", "live"),
        ("CRYPTO_DEPLOYMENT", "databricks", "deployment", "databricks"),
        ("DAGSTER_HOME", "/srv/dagster", "dagster_home", Path("/srv/dagster")),
        ("DATABRICKS_LAUNCHER", " Pipes ", "databricks_launcher", "pipes"),
    ],
)  # fmt: skip
def test_variable_sets_its_field_only(environ, variable, raw, field, expected):
    settings = from_env(environ, **{variable: raw})
    assert getattr(settings, field) == expected
    defaults = dict(Settings())
    assert {name for name, value in settings if value != defaults[name]} == {field}


def test_empty_optional_variables_mean_unset(environ):
    settings = from_env(environ, DAGSTER_HOME="", RUN_DURATION_MINUTES="")
    assert (settings.dagster_home, settings.run_duration_minutes) == (None, None)


def test_derived_durations_and_paths(environ):
    settings = from_env(
        environ,
        ANALYTICS_WINDOW="1 Hour",
        WATERMARK_DELAY="0.5 seconds",
        CRYPTO_DATA_DIR="/srv/crypto",
    )
    assert (settings.window_seconds, settings.watermark_seconds) == (3600, 0.5)
    assert landing_of(settings) == Path("/srv/crypto/landing/trades")


@pytest.mark.parametrize(
    ("variable", "raw", "accepts"),
    [
        ("TRADING_PAIRS", "BTC-USD", "comma-separated Binance symbols"),
        ("TRADING_PAIRS", "", "comma-separated Binance symbols"),
        ("TRADING_PAIRS", " , ", "comma-separated Binance symbols"),
        ("TRADING_PAIRS", "btc", "comma-separated Binance symbols"),
        ("BATCH_INTERVAL_SECONDS", "five", "expected a number greater than zero"),
        ("BATCH_INTERVAL_SECONDS", "0", "must be greater than zero"),
        ("BATCH_INTERVAL_SECONDS", "-1", "must be greater than zero"),
        ("BATCH_INTERVAL_SECONDS", "nan", "must be greater than zero"),
        ("BATCH_INTERVAL_SECONDS", "inf", "must be greater than zero"),
        ("RUN_DURATION_MINUTES", "forever", "expected a number greater than zero"),
        ("RUN_DURATION_MINUTES", "0", "must be greater than zero"),
        ("MAX_TRADES_PER_BATCH", "2.5", "expected a whole number greater than zero"),
        ("MAX_TRADES_PER_BATCH", "many", "expected a whole number greater than zero"),
        ("MAX_TRADES_PER_BATCH", "0", "must be greater than zero"),
        ("PRICE_CHANGE_THRESHOLD_PCT", "-0.5", "must be greater than zero"),
        ("PRICE_CHANGE_THRESHOLD_PCT", "half", "expected a number greater than zero"),
        ("VOLUME_SPIKE_MIN_TRADES", "0", "must be greater than zero"),
        ("VOLUME_SPIKE_MIN_TRADES", "1e2", "expected a whole number greater than zero"),
        ("VOLUME_SPIKE_FACTOR", "x3", "expected a number greater than zero"),
        ("VOLUME_SPIKE_FACTOR", "0", "must be greater than zero"),
        ("VOLUME_SPIKE_LOOKBACK", "-10", "must be greater than zero"),
        ("VOLUME_SPIKE_LOOKBACK", "ten", "expected a whole number greater than zero"),
        ("VOLUME_SPIKE_MIN_HISTORY", "0", "must be greater than zero"),
        ("VOLUME_SPIKE_MIN_HISTORY", "2.5", "expected a whole number greater than zero"),
        ("ANALYTICS_WINDOW", "soon", "expected '<number> seconds|minutes|hours|days'"),
        ("ANALYTICS_WINDOW", "1 fortnight", "expected '<number> seconds|minutes|hours|days'"),
        ("ANALYTICS_WINDOW", "0 minutes", "must be longer than zero"),
        ("WATERMARK_DELAY", "30", "expected '<number> seconds|minutes|hours|days'"),
        ("CATALOG", "", "expected a Unity Catalog name"),
        ("CATALOG", "my-catalog", "expected a Unity Catalog name"),
        ("SCHEMA", "a.b", "expected a Unity Catalog name"),
        ("BINANCE_WS_URL", "https://stream.binance.com", "URL starting with ws:// or wss://"),
        ("BINANCE_WS_URL", "wss://", "URL starting with ws:// or wss://"),
        ("BINANCE_REST_URL", "wss://api.binance.com", "URL starting with http:// or https://"),
        ("CRYPTO_DATA_DIR", " ", "expected a directory path"),
        ("CRYPTO_SOURCE", "file", "expected one of auto, live, replay"),
        ("CRYPTO_DEPLOYMENT", "kubernetes", "expected one of local, databricks"),
        ("DATABRICKS_LAUNCHER", "dbfs", "expected one of step_launcher, pipes"),
    ],
)
def test_malformed_variable_is_one_line_naming_it(environ, variable, raw, accepts):
    with pytest.raises(SettingsError) as caught:
        from_env(environ, **{variable: raw})
    message = str(caught.value)
    assert message.startswith(f"{variable}={raw!r}: ")
    assert accepts in message
    assert "\n" not in message


def test_two_malformed_variables_are_named_on_one_line(environ):
    with pytest.raises(SettingsError) as caught:
        from_env(environ, BATCH_INTERVAL_SECONDS="0", CRYPTO_SOURCE="file")
    message = str(caught.value)
    assert "BATCH_INTERVAL_SECONDS='0'" in message
    assert "CRYPTO_SOURCE='file'" in message
    assert "\n" not in message


def test_min_history_beyond_the_lookback_is_an_error(environ):
    # 11 history slots can never fit in 10 looked-back slots: no window would ever spike.
    with pytest.raises(SettingsError, match=r"VOLUME_SPIKE_MIN_HISTORY=11 .*LOOKBACK=10"):
        from_env(environ, VOLUME_SPIKE_MIN_HISTORY="11")
    # With VOLUME_SPIKE_MIN_HISTORY=11 still set, a lookback of 11 slots can hold them.
    assert from_env(environ, VOLUME_SPIKE_LOOKBACK="11").volume_spike_min_history == 11


def test_only_design_names_are_read(environ):
    # Unprefixed look-alikes (DATA_DIR, SOURCE) belong to other tools.
    settings = from_env(environ, DATA_DIR="/elsewhere", SOURCE="live", DEPLOYMENT="databricks")
    assert (settings.data_dir, settings.source, settings.deployment) == (
        Path("./data"),
        "auto",
        "local",
    )


def test_building_settings_reads_no_environment(environ):
    environ.setenv("TRADING_PAIRS", "solusdt")
    environ.setenv("CRYPTO_SOURCE", "live")
    settings = Settings(data_dir=Path("/tmp/x"))
    assert settings.trading_pairs == ("btcusdt", "ethusdt", "bnbusdt", "solusdt", "xrpusdt")
    assert settings.source == "auto"


def test_settings_are_frozen_and_replace_validates():
    settings = Settings(source="replay")
    with pytest.raises(ValueError, match="frozen"):
        settings.source = "live"  # type: ignore[misc]
    live = settings.replace(source="live", trading_pairs=["ETHUSDT"])
    assert (live.source, live.trading_pairs) == ("live", ("ethusdt",))
    assert settings.source == "replay"
    with pytest.raises(SettingsError, match=r"^batch_interval_seconds=-1: must be greater"):
        settings.replace(batch_interval_seconds=-1)


def test_unknown_keyword_is_not_a_setting():
    with pytest.raises(SettingsError, match=r"^batch_interval=5: not a setting$"):
        Settings(batch_interval=5)


def test_command_line_helpers_name_the_flag():
    assert parse_pairs("ETHUSDT,btcusdt", "--pairs") == ("ethusdt", "btcusdt")
    with pytest.raises(SettingsError, match=r"^--pairs='eth-usd': expected comma-separated"):
        parse_pairs("eth-usd", "--pairs")
    assert parse_duration_minutes("none", "--duration-minutes") is None
    assert parse_duration_minutes("1.5", "--duration-minutes") == 1.5
    with pytest.raises(SettingsError, match=r"^--duration-minutes='-2': must be greater"):
        parse_duration_minutes("-2", "--duration-minutes")
