"""Run config and command-line flags are views of `Settings`: one default and one bound each.

Every run-config field and flag that names a setting (by field name or by its variable in the
description or help) must default to the deployment's value of it and refuse what the model
refuses, with the model's one-line error. A second default or bound written anywhere fails here.
"""

from __future__ import annotations

import argparse
import inspect
import re
from pathlib import Path
from typing import Any

import annotated_types
import dagster as dg
import pytest
from pydantic.fields import FieldInfo

from crypto_assets.cli import build_parser, main
from crypto_assets.orchestration.analytics_assets import ANALYTICS_JOB
from crypto_assets.orchestration.definitions import build_definitions
from crypto_assets.orchestration.ingestion import PRODUCER_JOB
from crypto_assets.orchestration.run_config import allowed_range
from crypto_assets.settings import ENV_NAMES, Settings, SettingsError, check_setting

FIELDS = Settings.model_fields
VARIABLES = {ENV_NAMES.get(name, name.upper()): name for name in FIELDS}
# Run-config fields that name a setting without being a view of it, and why.
NOT_VIEWS = {
    "pairs": "unset means TRADING_PAIRS, narrowed on a replay to the pairs it carries",
    "continuous": "RUN_DURATION_MINUTES=none as a switch (duration_minutes is the view)",
    "source": "'default' means CRYPTO_SOURCE",
}
# Flags whose help names a variable in its bracketed default: `[NAME]` or `[..., else NAME]`.
_FLAG_DEFAULT = re.compile(r"\b([A-Z][A-Z0-9_]+)(?:, ([^\]]+))?\]")
# Candidates for a malformed value of a setting without bounds: the first the model refuses.
_MALFORMED = ("", "0", "not a value!")


def named_setting(name: str, description: str | None) -> str | None:
    """The setting a run-config field is a view of: its own name, else the variable it names."""
    if name in FIELDS:
        return name
    words = re.findall(r"\b[A-Z][A-Z0-9_]+\b", description or "")
    named = [VARIABLES[word] for word in words if word in VARIABLES]
    return next((setting for setting in named if setting in FIELDS), None)


def deployed(tmp_path: Path) -> Settings:
    """Settings whose every positive number differs from the model's default."""
    changes: dict[str, Any] = {}
    for name, field in FIELDS.items():
        default = field.default
        if isinstance(default, int | float) and not isinstance(default, bool) and default > 1:
            changes[name] = default // 2 if isinstance(default, int) else default / 2
    return Settings(data_dir=tmp_path, **changes)


def refused_values(setting: str) -> list[Any]:
    """Values the model refuses for `setting`: just outside each bound, else a malformed one."""
    field = FIELDS[setting]
    values: list[Any] = []
    for bound in field.metadata:
        if isinstance(bound, annotated_types.Gt):
            values.append(bound.gt)
        if isinstance(bound, annotated_types.Ge):
            values.append(bound.ge - 1)
        if isinstance(bound, annotated_types.Le):
            values.append(bound.le * 2)
    if not values:
        values = [value for value in _MALFORMED if _refuses(setting, value)][:1]
    assert values, f"{setting}: no refused value found"
    for value in values:
        assert _refuses(setting, value), (setting, value)
    return values


def _refuses(setting: str, value: Any) -> bool:
    try:
        check_setting(setting, value, setting)
    except SettingsError:
        return True
    return False


def run_config_views(settings: Settings) -> list[tuple[str, type[dg.Config], str, str]]:
    """(job, config class, field, setting) for every op config field that names a setting."""
    defs = build_definitions(settings)
    views = []
    for job_name in (PRODUCER_JOB, ANALYTICS_JOB):
        job = defs.resolve_job_def(job_name)
        for node in job.graph.node_defs:
            function = node.compute_fn.decorated_fn  # type: ignore[union-attr]
            config_cls = inspect.signature(function).parameters["config"].annotation
            for name, field in config_cls.model_fields.items():
                setting = named_setting(name, field.description)
                if setting is not None and name not in NOT_VIEWS:
                    views.append((job_name, config_cls, name, setting))
    return views


def test_the_run_configs_have_the_views_this_test_expects(tmp_path):
    views = {
        (name, setting) for _, _, name, setting in run_config_views(Settings(data_dir=tmp_path))
    }
    assert views == {
        ("batch_interval_seconds", "batch_interval_seconds"),
        ("max_trades_per_batch", "max_trades_per_batch"),
        ("duration_minutes", "run_duration_minutes"),
        ("trigger_seconds", "analytics_trigger_seconds"),
    }


@pytest.mark.parametrize("which", ["model defaults", "deployed values"])
def test_run_config_defaults_are_the_deployments_settings(tmp_path, which):
    settings = Settings(data_dir=tmp_path) if which == "model defaults" else deployed(tmp_path)
    defs = build_definitions(settings)
    for job_name, _, name, setting in run_config_views(settings):
        job = defs.resolve_job_def(job_name)
        (op_config,) = dg.validate_run_config(job, {})["ops"].values()
        assert op_config["config"][name] == getattr(settings, setting), (job_name, name)


def test_run_config_classes_default_to_the_models_defaults(tmp_path):
    for _, config_cls, name, setting in run_config_views(Settings(data_dir=tmp_path)):
        base = config_cls.__mro__[1]  # the class `for_settings` derived the job's from
        assert base.model_fields[name].default == FIELDS[setting].default, name


def test_run_config_fields_refuse_what_the_model_refuses_in_one_line(tmp_path):
    for _, config_cls, name, setting in run_config_views(deployed(tmp_path)):
        field: FieldInfo = config_cls.model_fields[name]
        assert allowed_range(field) == allowed_range(FIELDS[setting]), name
        for value in refused_values(setting):
            with pytest.raises(dg.Failure) as failure:
                config_cls(**{name: value})
            line = failure.value.description or ""
            shown = {f"{name}={value!r}: ", f"{name}={float(value)!r}: "}  # as given or parsed
            assert any(line.startswith(f"{config_cls.__name__}: {s}") for s in shown), line
            assert "\n" not in line


def flag_views() -> list[tuple[str, argparse.Action, str, str | None]]:
    """(command, flag, setting, default in the help) for every flag that names a setting."""
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    views = []
    for command, subparser in commands.choices.items():
        for action in subparser._actions:
            match = _FLAG_DEFAULT.search(action.help or "")
            if match and match.group(1) in VARIABLES and action.option_strings:
                views.append((command, action, VARIABLES[match.group(1)], match.group(2)))
    return views


def test_the_flags_have_the_views_this_test_expects():
    views = {(command, action.option_strings[-1], s) for command, action, s, _ in flag_views()}
    assert views == {
        ("produce", "--ws-url", "binance_ws_url"),
        ("produce", "--rest-url", "binance_rest_url"),
        ("produce", "--pairs", "trading_pairs"),
        ("produce", "--batch-interval-seconds", "batch_interval_seconds"),
        ("produce", "--max-trades-per-batch", "max_trades_per_batch"),
        ("produce", "--duration-minutes", "run_duration_minutes"),
        ("test-connection", "--ws-url", "binance_ws_url"),
        ("test-connection", "--pairs", "trading_pairs"),
        ("analytics", "--trigger-seconds", "analytics_trigger_seconds"),
    }


def test_flags_have_no_default_or_type_of_their_own():
    for command, action, setting, stated in flag_views():
        flag = action.option_strings[-1]
        assert action.default is None, (command, flag)
        # The model parses the text, or the flag is parsed as the setting's own type.
        assert action.type in (None, FIELDS[setting].annotation), (command, flag)
        if stated is not None:  # a default the help states is the model's
            assert stated == f"{FIELDS[setting].default:g}", (command, flag)


# What a command needs besides the flag to reach its validation (which comes before any work).
_REQUIRED = {"analytics": ["--once"], "produce": [], "test-connection": []}


def test_flags_refuse_what_the_model_refuses_with_its_error(tmp_path, capsys, monkeypatch):
    for variable in VARIABLES:  # the settings of this test, not of the shell running it
        monkeypatch.delenv(variable, raising=False)
    for command, action, setting, _ in flag_views():
        flag = action.option_strings[-1]
        # A flag named as its setting is named so in the error, another as the flag.
        name = setting if action.dest == setting else flag
        for value in refused_values(setting):
            text = str(value)
            data_dir = ["--data-dir", str(tmp_path)] if command == "analytics" else []
            assert main([command, *data_dir, *_REQUIRED[command], flag, text]) == 2
            (line,) = capsys.readouterr().err.strip().splitlines()
            with pytest.raises(SettingsError) as model:
                check_setting(setting, (action.type or str)(text), name)
            assert line == f"crypto-assets {command}: error: {model.value}"
