"""Sub-command ``run``: the whole pipeline headless, what ``make run`` does."""

from __future__ import annotations

import argparse
import sys

import dagster as dg

from crypto_assets.analytics.show import render
from crypto_assets.orchestration.deployments import build_deployment
from crypto_assets.orchestration.headless import run_pipeline
from crypto_assets.replay.source import REPLAY_WARNING, probe_live
from crypto_assets.settings import Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``run``."""
    run = subparsers.add_parser(
        "run",
        help="produce for RUN_DURATION_MINUTES from CRYPTO_SOURCE (live, or the bundled replay), "
        "then run the analytics assets and print the latest windows and alerts",
    )
    run.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    """``crypto-assets run``: the producer job, then the analytics job, then the `show` table."""
    settings = Settings.from_env()
    if settings.source == "live":
        # Fail before any run starts: one line instead of a failed run's stack trace.
        probe_live(settings.binance_ws_url, settings.trading_pairs)
    # With DAGSTER_HOME (the Makefile sets it) the runs are recorded where `dagster dev` looks.
    instance = dg.DagsterInstance.get() if settings.dagster_home else None
    result = run_pipeline(settings, instance)
    for line in result.summary_lines():
        print(line)
    if result.assets.get("landing_trades", {}).get("source") == "replay":
        print(f"*** {REPLAY_WARNING} ***", file=sys.stderr)
    print(render(build_deployment(settings).lakehouse))
    return 0
