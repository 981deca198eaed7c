"""The settings resource carries the project's settings unchanged and validates overrides."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from crypto_assets.orchestration.resources import SETTINGS_KEY, CryptoSettings, LocalSpark
from crypto_assets.settings import Settings, SettingsError

# Every setting a run may override here: all but the deployment and DAGSTER_HOME (the process's
# own) and the producer's four, which are the producer op's config.
RUN_CONFIG_FIELDS = {
    "price_change_threshold_pct",
    "volume_spike_min_trades",
    "volume_spike_factor",
    "volume_spike_lookback",
    "volume_spike_min_history",
    "analytics_window",
    "watermark_delay",
    "landing_retention_hours",
    "catalog",
    "schema_name",
    "binance_ws_url",
    "binance_rest_url",
    "data_dir",
    "source",
}

DEPLOYED = Settings(
    trading_pairs=("solusdt", "btcusdt"),
    run_duration_minutes=None,
    analytics_window="5 minutes",
    data_dir=Path("/srv/crypto"),
    source="replay",
    schema_name="other_schema",
    deployment="databricks",
    dagster_home=Path("/srv/dagster"),
)


def run_with(run_config: dict) -> tuple[dg.ExecuteInProcessResult, list[Settings]]:
    """Run a one-op job bound to the DEPLOYED settings resource; what the op was handed."""
    seen: list[Settings] = []

    @dg.op
    def read_settings(settings: CryptoSettings) -> None:
        seen.append(settings.to_settings())

    @dg.job(resource_defs={SETTINGS_KEY: CryptoSettings.from_settings(DEPLOYED)})
    def settings_job() -> None:
        read_settings()

    result = settings_job.execute_in_process(
        run_config={"resources": {SETTINGS_KEY: {"config": run_config}}} if run_config else None,
        raise_on_error=False,
    )
    return result, seen


def test_settings_round_trip_through_the_resource():
    assert CryptoSettings.from_settings(DEPLOYED).to_settings() == DEPLOYED
    assert CryptoSettings.from_settings(Settings()).to_settings() == Settings()


def test_run_config_fields_are_the_settings_with_the_deployed_values_as_defaults():
    resource = CryptoSettings.from_settings(DEPLOYED)
    fields = resource.get_resource_definition().config_schema.config_type.fields
    assert set(fields) == RUN_CONFIG_FIELDS
    assert fields["analytics_window"].default_value == "5 minutes"
    assert fields["data_dir"].default_value == "/srv/crypto"
    assert fields["source"].default_value == "replay"
    assert "ANALYTICS_WINDOW" in fields["analytics_window"].description
    # Every field has a default: a run config that names none of them is complete.
    assert all(not field.is_required for field in fields.values())


def test_a_run_without_overrides_gets_the_deployed_settings():
    result, seen = run_with({})
    assert result.success
    assert seen == [DEPLOYED]


def test_an_override_changes_that_setting_only():
    result, seen = run_with({"volume_spike_factor": 2.0, "catalog": "other_catalog"})
    assert result.success
    assert seen == [DEPLOYED.replace(volume_spike_factor=2.0, catalog="other_catalog")]
    # What the run did not override is the deployment's, not DESIGN.md's default.
    assert (seen[0].data_dir, seen[0].deployment) == (Path("/srv/crypto"), "databricks")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"volume_spike_factor": -2.0}, "volume_spike_factor=-2.0: must be greater than zero"),
        ({"volume_spike_min_history": 0}, "volume_spike_min_history=0: must be greater than zero"),
        ({"volume_spike_min_history": 20}, "VOLUME_SPIKE_MIN_HISTORY=20 is more than"),
        ({"catalog": "my-catalog"}, "catalog='my-catalog': expected a Unity Catalog name"),
        ({"analytics_window": "soon"}, "analytics_window='soon': expected '<number> seconds"),
        ({"binance_ws_url": "http://x"}, "binance_ws_url='http://x': expected a URL starting"),
    ],
)
def test_malformed_override_fails_the_run_before_the_op_runs(override, message):
    result, seen = run_with(override)
    assert not result.success
    assert seen == []  # the op never ran
    failures = [
        e for e in result.all_events if e.event_type == dg.DagsterEventType.RESOURCE_INIT_FAILURE
    ]
    assert len(failures) == 1
    error = failures[0].event_specific_data.error
    causes = [error, *([error.cause] if error.cause else [])]
    assert any(message in cause.message for cause in causes)
    # The headline is one line naming the setting, not pydantic's multi-line error.
    assert "\n" not in error.message.strip()


def test_mistyped_override_is_rejected_by_the_config_schema():
    with pytest.raises(dg.DagsterInvalidConfigError, match="volume_spike_factor"):
        run_with({"volume_spike_factor": "fast"})
    # The producer's settings are the producer op's config, not this resource's.
    with pytest.raises(dg.DagsterInvalidConfigError, match="trading_pairs"):
        run_with({"trading_pairs": ["btcusdt"]})
    with pytest.raises(dg.DagsterInvalidConfigError, match="source"):
        run_with({"source": "file"})
    with pytest.raises(dg.DagsterInvalidConfigError, match="deployment"):
        run_with({"deployment": "local"})


def test_malformed_resource_built_in_code_is_a_settings_error():
    bad = CryptoSettings.from_settings(DEPLOYED).model_copy(update={"volume_spike_lookback": 0})
    with pytest.raises(SettingsError, match="volume_spike_lookback=0"):
        bad.to_settings()


def test_the_description_is_written_for_a_user_of_the_ui():
    description = CryptoSettings.from_settings(DEPLOYED).get_resource_definition().description
    assert description.startswith("The deployment's settings: each field is an environment")
    assert "for one run" in description
    assert not [
        word for word in ("from_settings", "to_settings", "`Settings`") if word in description
    ]
    # One paragraph: the UI shows the description as written, indentation included.
    assert "\n\n" not in description


def test_the_local_spark_description_names_the_master_it_uses():
    from crypto_assets.analytics.spark_session import DEFAULT_MASTER  # noqa: PLC0415

    assert f"`{DEFAULT_MASTER}`" in LocalSpark().get_resource_definition().description
