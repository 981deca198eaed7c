"""Sub-commands ``analytics`` (run the streaming query) and ``show`` (print the tables)."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path

from crypto_assets.analytics.pipeline import run_analytics
from crypto_assets.analytics.show import render
from crypto_assets.analytics.spark_session import get_spark_session
from crypto_assets.errors import CryptoAssetsError
from crypto_assets.local.lakehouse import LocalLakehouse
from crypto_assets.local.layout import LocalLayout
from crypto_assets.notifications.channels import channels_for
from crypto_assets.orchestration.deployments import build_deployment
from crypto_assets.settings import Settings, setting_default


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``analytics`` and ``show``."""
    analytics = subparsers.add_parser(
        "analytics", help="process landing files into the Delta tables with Spark"
    )
    analytics.add_argument("--data-dir", type=Path, required=True, help="holds landing/ and delta/")
    mode = analytics.add_mutually_exclusive_group(required=True)
    mode.add_argument("--once", action="store_true", help="process all new files, then exit")
    mode.add_argument("--continuous", action="store_true", help="run until SIGINT/SIGTERM")
    # No default or type of its own: given, ANALYTICS_TRIGGER_SECONDS' field validates it.
    analytics.add_argument(
        "--trigger-seconds",
        help="micro-batch interval [ANALYTICS_TRIGGER_SECONDS, "
        f"{setting_default('analytics_trigger_seconds'):g}]",
    )
    analytics.set_defaults(func=analytics_command)

    show = subparsers.add_parser("show", help="print the latest windows and alerts")
    show.add_argument("--data-dir", type=Path, required=True, help="holds delta/")
    show.add_argument("--alerts", type=int, default=10, help="how many recent alerts [10]")
    show.set_defaults(func=show_command)


def _data_dir(path: Path) -> Path:
    if not path.is_dir():
        raise CryptoAssetsError(f"data directory {path} does not exist")
    return path


def analytics_command(args: argparse.Namespace) -> int:
    """``crypto-assets analytics``: run the query once or continuously; print the summary last."""
    settings = Settings.from_env().replace(data_dir=_data_dir(args.data_dir))
    if args.trigger_seconds is not None:
        settings = settings.override(
            {"analytics_trigger_seconds": args.trigger_seconds},
            {"analytics_trigger_seconds": "--trigger-seconds"},
        )
    channels_for(settings)  # a malformed notification setting is one line, before Spark starts
    # py4j logs every callback at INFO; the summary line is what the user wants to see.
    logging.getLogger("py4j").setLevel(logging.WARNING)
    stop = threading.Event()
    if args.continuous:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
    spark = get_spark_session()
    summary = run_analytics(
        spark,
        settings,
        build_deployment(settings).analytics_target(spark),
        mode="continuous" if args.continuous else "once",
        stop_event=stop,
    )
    print(summary.summary_line())
    return 0


def show_command(args: argparse.Namespace) -> int:
    """``crypto-assets show``: the latest window per symbol and the recent alerts."""
    data_dir = _data_dir(args.data_dir)
    missing = f"run 'crypto-assets analytics --data-dir {data_dir} --once' first"
    print(render(LocalLakehouse(LocalLayout(data_dir)), alert_limit=args.alerts, missing=missing))
    return 0
