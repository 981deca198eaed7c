"""The project's settings: one frozen pydantic model, read from the environment in one place.

`Settings` is the only place a setting is written down: its fields (name, type, default, bounds,
validation) are what `Settings.from_env` reads through pydantic-settings under the DESIGN.md
variable names, what the Dagster resource and the op configs derive their run-config fields from
(`Settings.model_fields`), what command-line flags are validated by (`Settings.override`) and what
the producer checks its configuration with (`check_setting`). Every other module receives a
`Settings` (or the values it needs) as an argument and never reads the environment itself. An
unknown value or a malformed setting raises `SettingsError` with one line that names the variable
(or the flag, or the run-config field) and says what it accepts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    AliasGenerator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from crypto_assets.errors import CryptoAssetsError

Source = Literal["auto", "live", "replay"]
Deployment = Literal["local", "databricks"]
Compute = Literal["cluster", "serverless"]
Launcher = Literal["step_launcher", "pipes"]

SOURCES: tuple[Source, ...] = ("auto", "live", "replay")
DEPLOYMENTS: tuple[Deployment, ...] = ("local", "databricks")
COMPUTES: tuple[Compute, ...] = ("cluster", "serverless")
LAUNCHERS: tuple[Launcher, ...] = ("step_launcher", "pipes")
# The variables whose name is not the field's name upper-cased (DESIGN.md keeps the seed names).
ENV_NAMES = {
    "data_dir": "CRYPTO_DATA_DIR",
    "source": "CRYPTO_SOURCE",
    "deployment": "CRYPTO_DEPLOYMENT",
    "schema_name": "SCHEMA",
}
_INTERVAL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s+(second|minute|hour|day)s?\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_PAIR = re.compile(r"^[a-z0-9]{5,20}$")
_NAME = re.compile(r"^[A-Za-z0-9_]+$")
_NO_DURATION = {"none", "continuous", ""}
# Binance allows 1024 streams per connection; the producer subscribes one per pair.
MAX_PAIRS = 1024


class SettingsError(CryptoAssetsError, ValueError):
    """A setting is malformed; the message names the variable and what it accepts."""


def _interval(value: str) -> float:
    match = _INTERVAL.match(value)
    if not match:
        raise ValueError("expected '<number> seconds|minutes|hours|days'")
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]
    if seconds <= 0:
        raise ValueError("must be longer than zero")
    return seconds


def _pairs(value: object) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError("expected comma-separated Binance symbols such as 'btcusdt,ethusdt'")
    pairs = tuple(dict.fromkeys(str(p).strip().lower() for p in items if str(p).strip()))
    if not pairs or not all(_PAIR.match(p) for p in pairs):
        raise ValueError("expected comma-separated Binance symbols such as 'btcusdt,ethusdt'")
    if len(pairs) > MAX_PAIRS:
        raise ValueError(f"{len(pairs)} pairs: allowed 1 to {MAX_PAIRS} (streams per connection)")
    return pairs


def _number(value: object, kind: type[int] | type[float]) -> int | float:
    noun = "a whole number" if kind is int else "a number"
    # bool is an int to Python, and 2.5 would silently become 2: neither is a count.
    if isinstance(value, bool) or (kind is int and isinstance(value, float)):
        raise ValueError(f"expected {noun} greater than zero")
    try:
        number = kind(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"expected {noun} greater than zero") from None
    if not math.isfinite(number) or number <= 0:
        # Typed as the bound it breaks: a run config then words it as the field's allowed range.
        raise PydanticCustomError("greater_than", "must be greater than zero", {"gt": 0})
    return number


# A count or a length greater than zero. The lower bound is declared (`gt=0`, `ge=1`) for what
# reads the field's bounds (a run config's "allowed > 0 and ≤ 3600", the JSON schema); `_number`
# meets it first, so that the error says "must be greater than zero" and refuses bool and NaN.
PositiveFloat = Annotated[float, BeforeValidator(lambda value: _number(value, float)), Field(gt=0)]
PositiveInt = Annotated[int, BeforeValidator(lambda value: _number(value, int)), Field(ge=1)]


def _duration_minutes(value: object) -> float | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in _NO_DURATION):
        return None
    return float(_number(value, float))


def _optional_hours(value: object) -> float | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in {"none", ""}):
        return None
    try:
        hours = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        hours = math.nan
    if isinstance(value, bool) or not math.isfinite(hours) or hours < 0:
        raise ValueError("expected a number of hours >= 0, or none to keep processed files")
    return hours


def _choice(choices: tuple[str, ...]) -> BeforeValidator:
    def check(value: object) -> str:
        lowered = str(value).strip().lower()
        if lowered not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return lowered

    return BeforeValidator(check)


def _url(*schemes: str) -> AfterValidator:
    def check(value: str) -> str:
        url = value.strip().rstrip("/")
        if not url.startswith(tuple(f"{s}://" for s in schemes)):
            accepted = " or ".join(f"{s}://" for s in schemes)
            raise ValueError(f"expected a URL starting with {accepted}")
        return url

    return AfterValidator(check)


def _optional_webhook_url(value: object) -> object:
    """None for unset or blank; else an http(s) URL with a host, never repeated in the error."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    url = str(value).strip()
    try:
        parts = urlsplit(url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        valid = False
    if not valid:
        raise ValueError(
            "expected an http(s) URL with a host, such as https://hooks.example.com/alerts"
        )
    return url


def _window(value: str) -> str:
    _interval(value)
    return value


def _name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError("expected a Unity Catalog name (letters, digits and _)")
    return value


def _directory(value: object) -> object:
    if isinstance(value, str) and not value.strip():
        raise ValueError("expected a directory path")
    return value


def _optional_directory(value: object) -> object:
    return None if isinstance(value, str) and not value.strip() else value


# Fields whose value may hold a secret: an error names them, never shows them.
_SECRET_LOCS = (("alert_webhook_url",), ("ALERT_WEBHOOK_URL",))


def _error_line(error: ValidationError, names: Mapping[str, str] | None = None) -> str:
    """One line for all of a validation's problems: ``NAME='value': what it accepts``.

    `names` renames a field in the line (e.g. to the flag that gave it; "" is a lone value's).
    """
    problems = []
    for problem in error.errors():
        name = ".".join(str(part) for part in problem["loc"])
        name = (names or {}).get(name, name)
        if problem["type"] == "value_error":
            reason = str(problem["ctx"]["error"])
        elif problem["type"] == "extra_forbidden":
            reason = "not a setting"
        else:
            reason = problem["msg"]
        shown = "<hidden>" if problem["loc"][-1:] in _SECRET_LOCS else repr(problem["input"])
        problems.append(f"{name}={shown}: {reason}" if name else reason)
    return "; ".join(problems)


def parse_pairs(value: str, name: str = "TRADING_PAIRS") -> tuple[str, ...]:
    """Lower-case symbols from a comma-separated list such as ``"btcusdt,ethusdt"``."""
    return check_setting("trading_pairs", value, name)


def parse_duration_minutes(value: str, name: str = "RUN_DURATION_MINUTES") -> float | None:
    """Minutes as a positive number, or None for ``none`` (run until stopped)."""
    return check_setting("run_duration_minutes", value, name)


def setting_field(name: str, **changes: Any) -> FieldInfo:
    """The `Settings` field `name` (default, bounds, validators, description) with `changes`.

    For a run-config field that is a view of a setting: assigned in a `dg.Config` class body, it
    gives that field the setting's default and bounds instead of a second copy of them.
    """
    return FieldInfo.merge_field_infos(Settings.model_fields[name], **changes)


def setting_default(name: str) -> Any:
    """The default of the `Settings` field `name` (DESIGN.md's value)."""
    return Settings.model_fields[name].default


def check_setting(name: str, value: Any, label: str) -> Any:
    """`value` validated as the setting `name`; a `SettingsError` naming it `label` if malformed."""
    try:
        return _adapter(name).validate_python(value)
    except ValidationError as exc:
        raise SettingsError(_error_line(exc, {"": label})) from None


@cache
def _adapter(name: str) -> TypeAdapter[Any]:
    field = Settings.model_fields[name]
    return TypeAdapter(Annotated[field.annotation, *field.metadata])  # type: ignore[name-defined]


class Settings(BaseModel):
    """Everything configurable, with DESIGN.md's defaults; building one reads no environment."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    trading_pairs: Annotated[tuple[str, ...], NoDecode, BeforeValidator(_pairs)] = Field(
        ("btcusdt", "ethusdt", "bnbusdt", "solusdt", "xrpusdt"),
        description="TRADING_PAIRS: Binance symbols to subscribe to",
    )
    batch_interval_seconds: PositiveFloat = Field(
        5.0, le=3600, description="BATCH_INTERVAL_SECONDS: a landing file at least this often"
    )
    run_duration_minutes: Annotated[float | None, BeforeValidator(_duration_minutes)] = Field(
        3.0,
        gt=0,
        le=7 * 24 * 60,
        description="RUN_DURATION_MINUTES: how long the producer runs; none = until stopped",
    )
    max_trades_per_batch: PositiveInt = Field(
        1000,
        le=1_000_000,
        description="MAX_TRADES_PER_BATCH: a landing file sooner when it holds this many",
    )
    price_change_threshold_pct: PositiveFloat = Field(
        0.5, description="PRICE_CHANGE_THRESHOLD_PCT: PRICE_MOVE when |change %| reaches it"
    )
    volume_spike_min_trades: PositiveInt = Field(
        100, description="VOLUME_SPIKE_MIN_TRADES: fewer trades in a window never spike"
    )
    volume_spike_factor: PositiveFloat = Field(
        3.0, description="VOLUME_SPIKE_FACTOR: a spike is this many times the baseline"
    )
    volume_spike_lookback: PositiveInt = Field(
        10, description="VOLUME_SPIKE_LOOKBACK: window slots the baseline looks back over"
    )
    volume_spike_min_history: PositiveInt = Field(
        5, description="VOLUME_SPIKE_MIN_HISTORY: fewer history slots never spike"
    )
    analytics_window: Annotated[str, AfterValidator(_window)] = Field(
        "1 minute", description="ANALYTICS_WINDOW: tumbling window, e.g. '1 minute'"
    )
    watermark_delay: Annotated[str, AfterValidator(_window)] = Field(
        "30 seconds", description="WATERMARK_DELAY: how late a trade may revise its window"
    )
    landing_retention_hours: Annotated[float | None, BeforeValidator(_optional_hours)] = Field(
        24.0,
        description="LANDING_RETENTION_HOURS: processed landing files are archived by the analytics"
        " and deleted this many hours later; none = keep every file in the landing folder",
    )
    # 1 s, not DESIGN.md's 5 s: the producer flushes every 5 s from its own start and Spark fires
    # at wall-clock multiples of the trigger, so at 5 s every file of a run waited the same 0-5 s
    # phase (docs/benchmarks.md, landing latency). An idle trigger only lists the landing folder.
    analytics_trigger_seconds: PositiveFloat = Field(
        1.0,
        le=3600,
        description="ANALYTICS_TRIGGER_SECONDS: continuous analytics' trigger interval",
    )
    catalog: Annotated[str, AfterValidator(_name)] = Field(
        "takamol_demo", description="CATALOG: Unity Catalog of the Databricks deployment"
    )
    # Not `schema`: that name shadows pydantic's own BaseModel.schema.
    schema_name: Annotated[str, AfterValidator(_name)] = Field(
        "crypto_streaming", description="SCHEMA: Unity Catalog schema of the Databricks deployment"
    )
    binance_ws_url: Annotated[str, _url("ws", "wss")] = Field(
        "wss://stream.binance.com:9443", description="BINANCE_WS_URL: websocket base URL"
    )
    binance_rest_url: Annotated[str, _url("http", "https")] = Field(
        "https://api.binance.com", description="BINANCE_REST_URL: REST base for filling gaps"
    )
    data_dir: Annotated[Path, BeforeValidator(_directory)] = Field(
        Path("./data"), description="CRYPTO_DATA_DIR: landing files, Delta tables, checkpoints"
    )
    source: Annotated[Source, _choice(SOURCES)] = Field(
        "auto", description="CRYPTO_SOURCE: auto (live, else replay), live or replay"
    )
    deployment: Annotated[Deployment, _choice(DEPLOYMENTS)] = Field(
        "local", description="CRYPTO_DEPLOYMENT: local or databricks"
    )
    # The Databricks deployment's compute. The token is never a setting: it is read from
    # DATABRICKS_TOKEN where it is used (databricks-sdk, the launcher's {"env": ...} form).
    databricks_host: str | None = Field(
        None, description="DATABRICKS_HOST: the workspace URL, https://<workspace>"
    )
    databricks_compute: Annotated[Compute, _choice(COMPUTES)] = Field(
        "cluster",
        description="DATABRICKS_COMPUTE: cluster (classic compute, DATABRICKS_LAUNCHER says how) "
        "or serverless (always Dagster Pipes)",
    )
    # Read only with DATABRICKS_COMPUTE=cluster: serverless has no DBFS, so it always uses Pipes.
    databricks_launcher: Annotated[Launcher, _choice(LAUNCHERS)] = Field(
        "step_launcher",
        description="DATABRICKS_LAUNCHER: how a classic cluster runs the analytics: step_launcher "
        "(dagster-databricks' step launcher, staged through DBFS) or pipes (Dagster Pipes through "
        "the Volume, for workspaces with DBFS disabled)",
    )
    databricks_cluster_id: str | None = Field(
        None, description="DATABRICKS_CLUSTER_ID: an existing cluster; unset = a new one per run"
    )
    databricks_spark_version: str = Field(
        "17.3.x-scala2.13", description="DATABRICKS_SPARK_VERSION: a new cluster's runtime"
    )
    databricks_node_type: str | None = Field(
        None, description="DATABRICKS_NODE_TYPE: a new cluster's node type, e.g. i3.xlarge"
    )
    databricks_num_workers: int = Field(
        1, ge=0, description="DATABRICKS_NUM_WORKERS: a new cluster's workers (0 = single node)"
    )
    # Notifications, off by default. The Slack token is never a setting: it is read from
    # SLACK_TOKEN where the channel is built (`notifications.channels.channels_for`). A webhook
    # URL may hold a secret (Slack's incoming webhooks do): no message shows it whole.
    alert_webhook_url: Annotated[str | None, BeforeValidator(_optional_webhook_url)] = Field(
        None, description="ALERT_WEBHOOK_URL: one JSON POST per alert to this URL; unset = none"
    )
    slack_channel: str | None = Field(
        None, description="SLACK_CHANNEL: the Slack channel for alerts (with SLACK_TOKEN)"
    )
    slack_api_url: Annotated[str, _url("http", "https")] = Field(
        "https://slack.com/api",
        description="SLACK_API_URL: Slack's Web API (another one for GovSlack or a gateway)",
    )
    dagster_webserver_url: Annotated[str, _url("http", "https")] = Field(
        "http://127.0.0.1:3000",
        description="DAGSTER_WEBSERVER_URL: where notifications link a run (make ui's address)",
    )
    # Dagster's own DAGSTER_HOME; headless runs are then recorded where `dagster dev` looks.
    dagster_home: Annotated[Path | None, BeforeValidator(_optional_directory)] = Field(
        None, description="DAGSTER_HOME: where Dagster records runs"
    )

    def __init__(self, **values: Any) -> None:
        """Validate `values`; a malformed one raises `SettingsError`, one line naming it."""
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise SettingsError(_error_line(exc)) from None

    @model_validator(mode="after")
    def _history_fits_the_lookback(self) -> Settings:
        if self.volume_spike_min_history > self.volume_spike_lookback:
            raise ValueError(
                f"VOLUME_SPIKE_MIN_HISTORY={self.volume_spike_min_history} is more than "
                f"VOLUME_SPIKE_LOOKBACK={self.volume_spike_lookback}: no window could ever spike"
            )
        return self

    @property
    def window_seconds(self) -> float:
        """Length of one analytics window in seconds."""
        return _interval(self.analytics_window)

    @property
    def watermark_seconds(self) -> float:
        """How late a trade may arrive and still revise its window, in seconds."""
        return _interval(self.watermark_delay)

    def replace(self, **changes: Any) -> Settings:
        """A copy with `changes` applied, validated like any `Settings` (frozen: never in place)."""
        return Settings(**{**dict(self), **changes})

    def override(self, changes: Mapping[str, Any], names: Mapping[str, str]) -> Settings:
        """`replace` with values given under other names: an error names them as `names` says.

        For command-line flags: ``override({"trading_pairs": "btcusdt"}, {"trading_pairs":
        "--pairs"})`` is validated by the model, and a malformed value is named ``--pairs``.
        """
        checked, problems = {}, []
        for name, value in changes.items():
            try:
                checked[name] = check_setting(name, value, names.get(name, name))
            except SettingsError as exc:
                problems.append(str(exc))
        if problems:
            raise SettingsError("; ".join(problems))
        return self.replace(**checked)

    @classmethod
    def from_env(cls) -> Settings:
        """Settings from the environment variables of DESIGN.md, defaults for the rest."""
        return cls(**dict(_EnvironmentSettings()))


class _EnvironmentSettings(Settings, BaseSettings):
    """`Settings` as pydantic-settings reads them from the environment, under DESIGN.md names."""

    model_config = SettingsConfigDict(
        alias_generator=AliasGenerator(validation_alias=lambda f: ENV_NAMES.get(f, f.upper())),
    )
