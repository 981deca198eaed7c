"""The demo dagster.yaml: read by a real Dagster instance, written only where it is ours."""

from __future__ import annotations

import logging
from pathlib import Path

import dagster as dg
import pytest

from crypto_assets.orchestration.instance_config import HEADER, instance_yaml, write_instance_yaml

ROLE = "crypto_assets/role"


def test_a_dagster_instance_reads_it_with_one_run_per_role(tmp_path: Path) -> None:
    assert write_instance_yaml(tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert not instance.telemetry_enabled
        assert not instance.nux_enabled
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
    assert sorted((x["key"], x["value"], x["limit"]) for x in limits) == [
        (ROLE, "analytics", 1),
        (ROLE, "producer", 1),
    ]


def test_the_limited_tags_are_the_ones_the_jobs_carry(defs: dg.Definitions) -> None:
    # A limit on a tag no run carries would queue nothing: the jobs' own tags must match.
    assert defs.resolve_job_def("binance_producer_job").tags[ROLE] == "producer"
    assert defs.resolve_job_def("streaming_analytics_job").tags[ROLE] == "analytics"


@pytest.mark.parametrize(
    "earlier",
    [
        HEADER + "telemetry:\n  enabled: true\n",
        "telemetry:\n  enabled: false\n",  # what the Makefile wrote before the queue limits
        "telemetry:\n  enabled: false\nnux:\n  enabled: false\n",
    ],
)
def test_a_file_make_wrote_is_replaced(tmp_path: Path, earlier: str) -> None:
    path = tmp_path / "dagster.yaml"
    path.write_text(earlier)
    assert write_instance_yaml(path)
    assert path.read_text() == instance_yaml()


def test_a_dagster_yaml_of_ones_own_is_kept_with_a_warning_naming_what_to_add(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "dagster.yaml"
    path.write_text("telemetry:\n  enabled: true\n")
    with caplog.at_level(logging.WARNING):
        assert not write_instance_yaml(path)
    assert path.read_text() == "telemetry:\n  enabled: true\n"
    (record,) = caplog.records
    assert str(path) in record.getMessage()
    assert "value: producer" in record.getMessage()
    assert "value: analytics" in record.getMessage()


def test_the_demo_instance_fails_dead_runs_through_run_monitoring(tmp_path: Path) -> None:
    assert write_instance_yaml(tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.run_monitoring_enabled
        assert type(instance.run_launcher).__name__ == "MonitoredRunLauncher"
        assert instance.run_monitoring_start_timeout_seconds == 180
        assert instance.run_monitoring_cancel_timeout_seconds == 180


def test_the_warning_names_run_monitoring_when_only_it_is_missing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "dagster.yaml"
    own = "concurrency:\n  runs:\n    tag_concurrency_limits: []\n"
    path.write_text(own)
    with caplog.at_level(logging.WARNING):
        assert not write_instance_yaml(path)
    assert path.read_text() == own
    (record,) = caplog.records
    assert "run_monitoring" in record.getMessage()
    assert "MonitoredRunLauncher" in record.getMessage()
