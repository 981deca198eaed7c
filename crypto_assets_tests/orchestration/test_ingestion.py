"""The producer op in binance_producer_job, against a real replay server on loopback."""

from __future__ import annotations

import queue

import dagster as dg
import pytest

from crypto_assets.orchestration.ingestion import (
    PRODUCER_JOB,
    PRODUCER_OP,
    ProduceTradesConfig,
    producer_config,
    run_reporting,
    trade_source,
)
from crypto_assets.producer.producer import Producer, ProducerStats
from crypto_assets_tests.orchestration.landing_for_tests import landed_trades


def _materializations(result: dg.ExecuteInProcessResult) -> list[dict]:
    return [
        {k: v.value for k, v in materialization.metadata.items()}
        for materialization in result.asset_materializations_for_node(PRODUCER_OP)
    ]


def test_producer_job_lands_the_recording_and_reports_periodically(
    defs, settings, replay_server_factory, recorded_trades
):
    server = replay_server_factory(speed=None)
    op_config = {
        "ws_url": server.url,
        "source": "replay",
        "pairs": ["btcusdt", "ethusdt"],
        "duration_seconds": 6.0,
        "batch_interval_seconds": 0.5,
        "report_interval_seconds": 2.0,
    }
    job = defs.resolve_job_def(PRODUCER_JOB)
    result = job.execute_in_process(run_config={"ops": {PRODUCER_OP: {"config": op_config}}})
    assert result.success

    landed = landed_trades(settings.landing_dir)
    assert landed == recorded_trades
    files = len(list(settings.landing_dir.glob("trades_*.json")))
    reports = _materializations(result)
    # Periodic, not per file: a handful of reports for dozens of files.
    assert 1 <= len(reports) <= 6 < files
    assert sum(r["trades"] for r in reports) == sum(recorded_trades.values())
    assert sum(r["files"] for r in reports) == files
    for symbol, count in recorded_trades.items():
        assert sum(r.get(f"trades_{symbol.lower()}", 0) for r in reports) == count
    last = reports[-1]
    assert last["run_trades"] == sum(recorded_trades.values())
    assert (last["source"], last["ws_url"]) == ("replay", server.url)
    assert last["quarantined"] == 0
    assert last["gaps_unfilled"] == 0
    assert all(r["trades_per_second"] >= 0 for r in reports)


def test_interrupting_the_op_lands_the_current_batch(settings, replay_server_factory):
    server = replay_server_factory(speed=None)
    config = ProduceTradesConfig(
        ws_url=server.url,
        pairs=["btcusdt", "ethusdt"],
        continuous=True,
        # Nothing would land on its own: the batch is neither old nor full when the run stops.
        batch_interval_seconds=600.0,
        max_trades_per_batch=1_000_000,
        report_interval_seconds=1.0,
    )
    reported: list[ProducerStats] = []

    def report(stats: ProducerStats) -> None:
        reported.append(stats)
        if len(reported) == 1 and stats.trades:
            # What Dagster raises in the op's thread when the run is terminated.
            raise dg.DagsterExecutionInterruptedError("terminated from the UI")

    with trade_source(config, settings) as source:
        conf = producer_config(config, settings, source)
        assert conf.duration_seconds is None
        progress: queue.Queue[ProducerStats] = queue.Queue()
        with pytest.raises(dg.DagsterExecutionInterruptedError):
            run_reporting(Producer(conf, on_progress=progress.put), progress, report)

    assert reported[0].files == 0
    assert reported[0].trades > 0
    final = reported[-1]
    assert final.files >= 1
    assert sum(landed_trades(settings.landing_dir).values()) == final.trades >= reported[0].trades


def test_bad_op_config_fails_the_run_with_one_line(defs):
    job = defs.resolve_job_def(PRODUCER_JOB)
    result = job.execute_in_process(
        run_config={"ops": {PRODUCER_OP: {"config": {"pairs": ["BTC-USD"], "source": "live"}}}},
        raise_on_error=False,
    )
    assert not result.success
    failure = result.failure_data_for_node(PRODUCER_OP)
    assert failure is not None
    assert "pairs='BTC-USD'" in failure.user_failure_data.description
    assert "\n" not in failure.user_failure_data.description
