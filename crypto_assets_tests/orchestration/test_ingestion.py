"""The producer op in binance_producer_job, against a real replay server on loopback."""

from __future__ import annotations

import logging
import queue
import re

import dagster as dg
import pytest

from crypto_assets.local.deployment import LocalDeployment
from crypto_assets.orchestration.definitions import build_definitions
from crypto_assets.orchestration.ingestion import (
    PRODUCER_JOB,
    PRODUCER_OP,
    ProduceTradesConfig,
    disk_report_line,
    producer_config,
    run_pairs,
    run_reporting,
    trade_source,
)
from crypto_assets.producer.producer import Producer, ProducerStats
from crypto_assets_tests.landing_folder import landing_of
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

    landed = landed_trades(landing_of(settings))
    assert landed == recorded_trades
    files = len(list(landing_of(settings).glob("trades_*.json")))
    reports = _materializations(result)
    # Periodic, not per file: a handful of reports for dozens of files.
    assert 1 <= len(reports) <= 6 < files
    assert sum(r["trades"] for r in reports) == sum(recorded_trades.values())
    assert sum(r["files"] for r in reports) == files
    for symbol, count in recorded_trades.items():
        assert sum(r.get(f"trades_{symbol.lower()}", 0) for r in reports) == count
    last = reports[-1]
    assert last["run_trades"] == sum(recorded_trades.values())
    # The folder holds this run's files only: its totals are what landed.
    assert (last["dagster/row_count"], last["landing_files"]) == (sum(landed.values()), files)
    assert last["archived_files"] == 0  # no analytics ran
    description = result.asset_materializations_for_node(PRODUCER_OP)[-1].description
    assert description.startswith(f"{last['run_trades']} trades in {last['run_files']} files so")
    assert "Row count: the trades the landing folder holds" in description
    assert "landing/_processed/" in description
    assert (last["source"], last["ws_url"]) == ("replay", server.url)
    assert last["quarantined"] == 0
    assert last["gaps_unfilled"] == 0
    assert all(r["trades_per_second"] >= 0 for r in reports)
    # The landing disk had room: nothing held back, nothing dropped, never full.
    assert (last["pending_trades"], last["dropped_trades"], last["disk_full_seconds"]) == (0, 0, 0)


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

    target = LocalDeployment(settings).landing_target()
    with trade_source(config, settings, target.landing_dir) as source:
        conf = producer_config(config, target, source, run_pairs(config, settings, source)[0])
        assert conf.duration_seconds is None
        progress: queue.Queue[ProducerStats] = queue.Queue()
        # A termination is a stop request: no exception, the summary of what was landed.
        summary = run_reporting(Producer(conf, on_progress=progress.put), progress, report)

    assert summary.stopped
    assert reported[0].files == 0
    assert reported[0].trades > 0
    final = reported[-1]
    assert final.files >= 1
    assert sum(landed_trades(landing_of(settings)).values()) == final.trades >= reported[0].trades
    assert (summary.trades_landed, summary.files) == (final.trades, final.files)


def test_a_producer_that_ends_by_its_duration_is_not_stopped(settings, replay_server_factory):
    server = replay_server_factory(speed=None)
    config = ProduceTradesConfig(ws_url=server.url, pairs=["btcusdt"], duration_seconds=1.0)
    target = LocalDeployment(settings).landing_target()
    with trade_source(config, settings, target.landing_dir) as source:
        conf = producer_config(config, target, source, run_pairs(config, settings, source)[0])
        progress: queue.Queue[ProducerStats] = queue.Queue()
        summary = run_reporting(Producer(conf, on_progress=progress.put), progress, lambda _: None)
    assert not summary.stopped


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


def _op_failure(defs, op_config: dict) -> str:
    job = defs.resolve_job_def(PRODUCER_JOB)
    result = job.execute_in_process(
        run_config={"ops": {PRODUCER_OP: {"config": op_config}}}, raise_on_error=False
    )
    assert not result.success
    failure = result.failure_data_for_node(PRODUCER_OP)
    assert failure is not None
    assert failure.user_failure_data is not None
    return failure.user_failure_data.description


@pytest.mark.parametrize(
    ("op_config", "message"),
    [
        ({"batch_interval_seconds": -2.0}, "batch_interval_seconds=-2.0: allowed > 0 and ≤ 3600"),
        ({"batch_interval_seconds": 7200.0}, "batch_interval_seconds=7200.0: allowed > 0 and"),
        ({"max_trades_per_batch": 0}, "max_trades_per_batch=0: allowed ≥ 1 and ≤ 1e+06"),
        ({"duration_minutes": 0.0}, "duration_minutes=0.0: allowed > 0 and ≤ 10080"),
        ({"duration_seconds": -1.0}, "duration_seconds=-1.0: allowed > 0"),
        ({"report_interval_seconds": 0.0}, "report_interval_seconds=0.0: allowed > 0"),
        ({"quiet_pair_seconds": -5.0}, "quiet_pair_seconds=-5.0: allowed > 0"),
        ({"pairs": ["notapair!"]}, "pairs='notapair!': expected comma-separated"),
        ({"ws_url": "http://127.0.0.1:1"}, "ws_url='http://127.0.0.1:1': expected a URL"),
    ],
)
def test_an_out_of_range_value_fails_in_one_line_before_any_work(
    defs, settings, op_config, message
):
    description = _op_failure(defs, {"source": "live", **op_config})
    assert message in description
    assert description.startswith("ProduceTradesConfig: ")
    assert "\n" not in description
    # Failed before the producer started: not even the landing folder exists.
    assert not landing_of(settings).exists()


def test_an_out_of_range_value_is_one_error_line_in_the_run_log(defs, instance):
    # Dagster's config schema has no ranges, so the Launchpad accepts -2 and the run fails. Every
    # step failure shows its stack trace in the UI; the ERROR line before it is just the message.
    line = "ProduceTradesConfig: batch_interval_seconds=-2.0: allowed > 0 and ≤ 3600"
    result = defs.resolve_job_def(PRODUCER_JOB).execute_in_process(
        run_config={"ops": {PRODUCER_OP: {"config": {"batch_interval_seconds": -2.0}}}},
        instance=instance,
        raise_on_error=False,
    )
    assert not result.success
    records = instance.all_logs(result.run_id)
    logged = [r for r in records if r.dagster_event is None and r.level == logging.ERROR]
    assert [(r.user_message, r.step_key) for r in logged] == [(line, PRODUCER_OP)]
    failures = [
        r.dagster_event
        for r in records
        if r.dagster_event is not None
        and r.dagster_event.event_type == dg.DagsterEventType.STEP_FAILURE
    ]
    assert len(failures) == 1
    data = failures[0].step_failure_data
    assert data.user_failure_data.description == line
    assert data.error.message.strip().endswith(f"Failure: {line}")


def test_mistyped_op_config_is_refused_by_the_config_schema_at_launch(defs):
    job = defs.resolve_job_def(PRODUCER_JOB)
    for bad, field in (({"source": "file"}, "source"), ({"continuous": "yes"}, "continuous")):
        with pytest.raises(dg.DagsterInvalidConfigError, match=field):
            dg.validate_run_config(job, {"ops": {PRODUCER_OP: {"config": bad}}})


def test_the_op_config_defaults_are_the_deployments_producer_settings(settings):
    deployed = settings.replace(
        trading_pairs=("solusdt",),
        batch_interval_seconds=2.0,
        max_trades_per_batch=50,
        run_duration_minutes=7.5,
    )
    job = build_definitions(deployed).resolve_job_def(PRODUCER_JOB)
    config = dg.validate_run_config(job, {})["ops"][PRODUCER_OP]["config"]
    assert config["pairs"] is None  # unset: TRADING_PAIRS, decided when the source is known
    assert config["batch_interval_seconds"] == 2.0
    assert config["max_trades_per_batch"] == 50
    assert (config["duration_minutes"], config["continuous"]) == (7.5, False)
    continuous = settings.replace(run_duration_minutes=None)
    job = build_definitions(continuous).resolve_job_def(PRODUCER_JOB)
    assert dg.validate_run_config(job, {})["ops"][PRODUCER_OP]["config"]["continuous"] is True


def test_a_partial_override_keeps_the_other_defaults(defs, settings, replay_server_factory):
    server = replay_server_factory(speed=None)
    job = defs.resolve_job_def(PRODUCER_JOB)
    op_config = {"ws_url": server.url, "duration_seconds": 2.0, "pairs": ["ethusdt"]}
    result = job.execute_in_process(run_config={"ops": {PRODUCER_OP: {"config": op_config}}})
    assert result.success
    landed = landed_trades(landing_of(settings))
    assert set(landed) == {"ETHUSDT"}


def test_unset_pairs_on_a_replay_are_the_trading_pairs_it_carries(
    settings, instance, replay_server_factory
):
    # TRADING_PAIRS asks for a pair the bundled recording lacks: no noise, no quiet pair.
    deployed = settings.replace(trading_pairs=("btcusdt", "bnbusdt", "ethusdt"))
    server = replay_server_factory(speed=None)
    op_config = {"ws_url": server.url, "source": "replay", "duration_seconds": 2.0}
    result = (
        build_definitions(deployed)
        .resolve_job_def(PRODUCER_JOB)
        .execute_in_process(
            run_config={"ops": {PRODUCER_OP: {"config": op_config}}}, instance=instance
        )
    )
    assert result.success
    assert set(landed_trades(landing_of(deployed))) == {"BTCUSDT", "ETHUSDT"}
    messages = _run_messages(instance, result.run_id)
    assert (
        "pairs not set: the pairs of TRADING_PAIRS the replay carries, btcusdt, ethusdt "
        "(it has no bnbusdt)"
    ) in messages
    assert any(m.startswith("producing btcusdt,ethusdt from ") for m in messages)
    assert not [m for m in messages if "does not carry" in m or "no trade for" in m]


def test_unset_pairs_on_live_are_the_trading_pairs(settings, instance, replay_server_factory):
    server = replay_server_factory(speed=None)  # answers as live Binance would
    deployed = settings.replace(trading_pairs=("ethusdt",))
    op_config = {"ws_url": server.url, "duration_seconds": 1.0}
    result = (
        build_definitions(deployed)
        .resolve_job_def(PRODUCER_JOB)
        .execute_in_process(
            run_config={"ops": {PRODUCER_OP: {"config": op_config}}}, instance=instance
        )
    )
    assert result.success
    assert set(landed_trades(landing_of(deployed))) == {"ETHUSDT"}


def _run_messages(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [entry.user_message for entry in instance.all_logs(run_id)]


def test_a_pair_live_binance_does_not_list_fails_in_one_line_before_producing(
    defs, settings, replay_server_factory
):
    server = replay_server_factory(speed=None)
    # An explicit ws_url is live unless source says replay: the server answers as Binance would.
    description = _op_failure(defs, {"ws_url": server.url, "pairs": ["btcusdt", "notapair"]})
    assert description.startswith("pairs: Binance does not list notapair (exchangeInfo: -1121")
    assert "\n" not in description
    assert not list(landing_of(settings).glob("trades_*.json"))


def test_a_replay_names_the_pairs_it_lacks_and_reports_them_quiet(
    defs, instance, replay_server_factory
):
    server = replay_server_factory(speed=None)
    op_config = {
        "ws_url": server.url,
        "source": "replay",
        "pairs": ["btcusdt", "ethusdt", "bnbusdt"],
        "duration_seconds": 4.0,
        "batch_interval_seconds": 0.5,
        "report_interval_seconds": 0.5,
        "progress_interval_seconds": 0.5,
        "quiet_pair_seconds": 1.0,
    }
    result = defs.resolve_job_def(PRODUCER_JOB).execute_in_process(
        run_config={"ops": {PRODUCER_OP: {"config": op_config}}}, instance=instance
    )
    assert result.success
    messages = _run_messages(instance, result.run_id)
    assert any(m.startswith("the replay does not carry bnbusdt: no trades") for m in messages)
    assert any(m.startswith("bnbusdt: no trade for ") for m in messages)
    last = _materializations(result)[-1]
    assert "bnbusdt" in last["quiet_pairs"].split(", ")
    assert last["quiet_pair_count"] >= 1
    assert any(m.startswith("finished: landed ") for m in messages)


@pytest.mark.parametrize("report_seconds", [0.5, 3.0])
def test_the_producers_progress_lines_are_in_the_run_log_every_progress_interval(
    defs, instance, replay_server_factory, report_seconds
):
    server = replay_server_factory(speed=None)
    op_config = {
        "ws_url": server.url,
        "source": "replay",
        "pairs": ["btcusdt", "ethusdt"],
        "duration_seconds": 5.0,
        "progress_interval_seconds": 2.0,
        # Materializations more often than progress lines, then less often: lines every 2 s.
        "report_interval_seconds": report_seconds,
    }
    result = defs.resolve_job_def(PRODUCER_JOB).execute_in_process(
        run_config={"ops": {PRODUCER_OP: {"config": op_config}}}, instance=instance
    )
    assert result.success
    lines = [m for m in _run_messages(instance, result.run_id) if m.startswith("progress after ")]
    seconds = [int(re.match(r"progress after (\d+) s: \d+ trades landed in ", m)[1]) for m in lines]
    assert len(seconds) == 2, lines
    assert 2 <= seconds[0] < seconds[1] <= 5


def test_the_run_log_says_when_the_landing_disk_fills_drops_and_has_room_again():
    def stats(full: bool, dropped: int, pending: int) -> ProducerStats:
        return ProducerStats(
            trades=1000 + pending,
            files=1,
            quarantined=0,
            duplicates_dropped=0,
            gaps_filled=0,
            gaps_unfilled=0,
            reconnects=0,
            seconds=10.0,
            trades_landed=1000,
            pending_trades=pending,
            dropped_trades=dropped,
            disk_full_seconds=4.0 if full or dropped else 0.0,
            disk_full=full,
        )

    reports = [
        stats(False, 0, 0),
        stats(True, 0, 500),  # fills: said
        stats(True, 0, 900),  # still full, nothing dropped: not said again
        stats(True, 300, 2700),  # drops: said
        stats(False, 300, 0),  # room again: said
        stats(False, 300, 0),
    ]
    lines = [disk_report_line(b, s) for b, s in zip([None, *reports], reports, strict=False)]
    assert lines[0] is None
    assert lines[1].startswith("landing disk full: 500 trades held in memory, 0 dropped")
    assert lines[2] is None
    assert "2700 trades held in memory, 300 dropped" in lines[3]
    assert lines[4].startswith("landing disk writable again (full for 4 s in all; 300 trades")
    assert lines[5] is None
