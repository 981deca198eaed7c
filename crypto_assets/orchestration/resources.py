"""Resources the assets need: the project's settings and a Spark session, one interface each.

`definitions.resources_for` picks the implementations by where the deployment's Spark runs;
assets only see the interfaces. Where Spark runs elsewhere, so is its launcher: the Databricks
step launcher (`pyspark_step_launcher`) on a cluster, or Pipes (`databricks_pipes`) on serverless
compute and on a cluster with DATABRICKS_LAUNCHER=pipes; the local deployment has neither.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import dagster as dg
from pydantic import Field, create_model

from crypto_assets.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

STEP_LAUNCHER_KEY = "pyspark_step_launcher"
SETTINGS_KEY = "settings"
SPARK_KEY = "spark"
LAKEHOUSE_KEY = "lakehouse"
# Databricks through Dagster Pipes (serverless, or a cluster without DBFS): None elsewhere.
PIPES_KEY = "databricks_pipes"

# Settings of the process, not of a run: the deployment is chosen when the definitions are built,
# and DAGSTER_HOME is the instance's own. The producer's own settings are the producer op's
# config (`ProduceTradesConfig`, with these as its defaults): one place in the Launchpad each.
PRODUCER_SETTINGS = frozenset(
    {"trading_pairs", "batch_interval_seconds", "run_duration_minutes", "max_trades_per_batch"}
)
# ANALYTICS_TRIGGER_SECONDS is continuous_analytics_sensor's: the run's own is the op's config.
# Where notifications go is the deployment's (and a webhook URL may hold a secret, which the
# Launchpad would show).
NOTIFICATION_SETTINGS = frozenset(
    {"alert_webhook_url", "slack_channel", "slack_api_url", "dagster_webserver_url"}
)
_NOT_IN_RUN_CONFIG = (
    frozenset({"deployment", "dagster_home", "analytics_trigger_seconds"})
    | NOTIFICATION_SETTINGS
    | frozenset(name for name in Settings.model_fields if name.startswith("databricks_"))
    | PRODUCER_SETTINGS
)
# Dagster run config has no tuple and no Path: such a field is overridden as a list or a string.
_CONFIG_TYPES: dict[Any, Any] = {tuple[str, ...]: list[str], Path: str}


# The resource's description in the UI, written for a user of the Launchpad. Dagster shows the
# class's docstring as it is, indentation included, so the class `from_settings` builds carries
# this one paragraph instead.
SETTINGS_DESCRIPTION = (
    "The deployment's settings: each field is an environment variable (its description names "
    "it) and defaults to the value the deployment was started with. Set one here to change it "
    "for one run; the others keep theirs. A malformed value fails the run before any step "
    "starts, in one line naming it. The producer's pairs, batch interval, batch size and "
    "duration are the producer op's config instead."
)


class CryptoSettings(dg.ConfigurableResource):
    """The project's settings as a resource runs can override (see `SETTINGS_DESCRIPTION`).

    Its fields are `Settings`' own, derived by `from_settings` with the deployment's values as
    their defaults (so an override of one field keeps the others) and no default of their own;
    `to_settings` validates the overrides by `Settings`' rules (the model's fields, bounds and
    validators): a malformed one fails the run at resource initialisation, before any op body
    runs. Only `from_settings` builds one.
    """

    # The settings the definitions were built from: what a run does not override. Set on the
    # class `from_settings` derives; this base class has none (it has no fields either).
    built_from: ClassVar[Settings]

    @classmethod
    def from_settings(cls, settings: Settings) -> CryptoSettings:
        """The resource holding exactly these settings, each one a run-config field."""
        values = settings.model_dump(mode="json", exclude=_NOT_IN_RUN_CONFIG)
        fields: dict[str, Any] = {
            name: (
                _CONFIG_TYPES.get(field.annotation, field.annotation),
                Field(values[name], description=field.description),
            )
            for name, field in Settings.model_fields.items()
            if name in values
        }
        resource_cls = create_model(
            cls.__name__, __base__=cls, __module__=__name__, __doc__=SETTINGS_DESCRIPTION, **fields
        )
        resource_cls.built_from = settings
        return resource_cls()

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Reject a malformed override when the run starts, naming it, before any step runs."""
        self.to_settings()

    def to_settings(self) -> Settings:
        """The validated `Settings`; a malformed override raises `SettingsError`."""
        overrides = {name: getattr(self, name) for name in type(self).model_fields}
        return self.built_from.replace(**overrides)


class SparkResource(dg.ConfigurableResource):
    """Hands out the Spark session the analytics run on; one implementation per deployment."""

    # Every implementation has a field: dagster 1.13.27 reads a field-less resource's fields
    # through pydantic's deprecated `__fields__` (a PydanticDeprecatedSince20 warning at load).
    app_name: str = "crypto_assets"

    def get_session(self) -> SparkSession:
        """The session to run the streaming queries on."""
        raise NotImplementedError(f"{type(self).__name__} does not provide a Spark session")


class LocalSpark(SparkResource):
    """Local PySpark (`local[2]`) in the step's own process: the embedded default."""

    def get_session(self) -> SparkSession:
        """Create (or reuse) the process's local Spark session."""
        # Imported here: loading the local definitions imports no pyspark (test_layers.py).
        from crypto_assets.analytics.spark_session import get_spark_session  # noqa: PLC0415

        return get_spark_session(app_name=self.app_name)


class DatabricksSpark(SparkResource):
    """The Spark session of the Databricks compute the step runs on (never a new local one).

    `app_name` is the runtime's own there; the field is kept for the common interface.
    """

    def get_session(self) -> SparkSession:
        """The runtime's active session."""
        from pyspark.sql import SparkSession  # noqa: PLC0415 - only where Spark runs

        return SparkSession.getActiveSession() or SparkSession.builder.getOrCreate()
