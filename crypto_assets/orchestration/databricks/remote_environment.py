"""The environment the Databricks side gets: the project's settings, never a secret.

The cluster (or serverless task) rebuilds the Dagster definitions and the `Settings` from its own
environment, so it is given the submitting process's settings as the same environment variables
a user sets locally. The token is not among them: on Databricks the task authenticates as itself.
"""

from __future__ import annotations

from crypto_assets.settings import ENV_NAMES, Settings

# Where the local process keeps its own state: meaningless on Databricks. And the notifications:
# a webhook URL may hold a secret, which no uploaded file may carry; so the analytics on
# Databricks notify no one (Dagster's own sensors still report failed runs and checks).
_LOCAL_ONLY = frozenset({"data_dir", "dagster_home", "alert_webhook_url", "slack_channel"})


def env_name(field: str) -> str:
    """The environment variable of a `Settings` field (DESIGN.md's names)."""
    return ENV_NAMES.get(field, field.upper())


def env_value(value: object) -> str:
    """A setting's value written the way `Settings.from_env` reads it back."""
    if value is None:
        return "none"
    if isinstance(value, list | tuple):
        return ",".join(str(item) for item in value)
    return str(value)


def remote_environment(settings: Settings) -> dict[str, str]:
    """`settings` as environment variables, for the Databricks side (no secret is a setting)."""
    values = settings.model_dump(mode="json", exclude=_LOCAL_ONLY)
    return {
        env_name(field): env_value(value)
        for field, value in values.items()
        # An unset optional setting stays unset there too.
        if value is not None or field == "run_duration_minutes"
    }
