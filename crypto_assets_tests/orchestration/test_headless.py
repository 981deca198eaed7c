"""The headless pipeline: producer job then analytics job in this process, on the replay."""

from __future__ import annotations

import socket

import dagster as dg
import pytest

from crypto_assets.orchestration.headless import PipelineRunError, run_pipeline
from crypto_assets_tests.orchestration.landing_for_tests import landed_trades


@pytest.mark.spark
def test_run_pipeline_produces_then_processes(settings, instance, spark):
    # Six seconds of the bundled recording at real speed, as `make run` would do for minutes.
    short = settings.replace(source="replay", run_duration_minutes=0.1)
    result = run_pipeline(short, instance)
    landed = sum(landed_trades(short.landing_dir).values())
    assert landed > 0
    assert result.assets["landing_trades"]["run_trades"] == landed
    assert result.assets["trades_raw"]["dagster/row_count"] == landed
    lines = result.summary_lines()
    assert lines[0].startswith(f"landing_trades: {landed} trades in ")
    assert "from replay" in lines[0]
    assert f"trades_raw: {landed} rows (+{landed})" in lines[1]
    runs = instance.get_run_records(dg.RunsFilter(run_ids=[result.producer_run_id]))
    assert runs[0].dagster_run.status == dg.DagsterRunStatus.SUCCESS


def test_unreachable_live_source_is_one_line(settings, instance):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    live = settings.replace(
        source="live", binance_ws_url=f"ws://127.0.0.1:{port}", run_duration_minutes=0.1
    )
    with pytest.raises(PipelineRunError, match="binance_producer_job failed: ") as caught:
        run_pipeline(live, instance)
    assert "\n" not in str(caught.value)
