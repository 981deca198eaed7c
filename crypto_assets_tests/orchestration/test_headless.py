"""The headless pipeline: producer job then analytics job in this process, on the replay."""

from __future__ import annotations

import logging
import socket

import dagster as dg
import pytest

from crypto_assets.orchestration.headless import PipelineRunError, run_pipeline
from crypto_assets_tests.landing_folder import landing_of
from crypto_assets_tests.orchestration.landing_for_tests import landed_files, landed_trades


@pytest.mark.spark
def test_run_pipeline_produces_then_processes(settings, instance, spark, caplog):
    # Six seconds of the bundled recording at real speed, as `make run` would do for minutes.
    short = settings.replace(source="replay", run_duration_minutes=0.1)
    caplog.set_level(logging.INFO, logger="crypto_assets")
    result = run_pipeline(short, instance, progress_seconds=1.0)
    landed = sum(landed_trades(landing_of(short)).values())
    files = len(landed_files(landing_of(short)))
    assert landed > 0
    assert result.assets["landing_trades"]["run_trades"] == landed
    assert result.assets["trades_raw"]["dagster/row_count"] == landed
    lines = result.summary_lines()
    assert lines[0].startswith(f"landing_trades: {landed} trades in ")
    assert "from replay" in lines[0]
    assert f"trades_raw: {landed} rows (+{landed} new)" in lines[1]
    runs = instance.get_run_records(dg.RunsFilter(run_ids=[result.producer_run_id]))
    assert runs[0].dagster_run.status == dg.DagsterRunStatus.SUCCESS

    # What the terminal shows while it waits: what runs, then progress, then what is processed.
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("crypto_assets")]
    assert (
        "binance_producer_job: producing for 0.1 min (RUN_DURATION_MINUTES) from "
        "CRYPTO_SOURCE=replay, a progress line every 1 s"
    ) in messages
    # The progress lines are the producer run's log, which Dagster's console logger prints.
    run_log = [entry.user_message for entry in instance.all_logs(result.producer_run_id)]
    progress = [m for m in run_log if m.startswith("progress after ")]
    assert len(progress) >= 4  # six seconds, one line a second
    assert not [m for m in messages if m.startswith("progress after ")]  # not twice
    counts = [int(m.split(": ", 1)[1].split(" trades landed", 1)[0]) for m in progress]
    assert counts == sorted(counts)
    assert counts[-1] <= landed
    assert any(
        m.startswith(
            f"streaming_analytics_job: processing the {files} landing files of this run "
            f"({landed} trades)"
        )
        for m in messages
    )


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
