"""Sub-commands ``produce`` and ``test-connection`` of the ``crypto-assets`` script.

A flag that names a setting ([BATCH_INTERVAL_SECONDS] in its help) has no default of its own and
no type but the setting's: given, it overrides the setting and the `Settings` model validates it
(`FLAG_SETTINGS`, `with_flags`), so its default, bounds and error line are the setting's.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from crypto_assets.orchestration.deployments import build_deployment
from crypto_assets.producer.connection_check import check_connection
from crypto_assets.producer.landing_target import LandingUpload, StateFile
from crypto_assets.producer.producer import (
    DEFAULT_MAX_PENDING_TRADES,
    DEFAULT_PROGRESS_SECONDS,
    Producer,
    ProducerConfig,
    default_rest_url,
)
from crypto_assets.settings import Settings, SettingsError

# The flags that set a setting: argparse's dest -> the `Settings` field it overrides.
FLAG_SETTINGS = {
    "ws_url": "binance_ws_url",
    "rest_url": "binance_rest_url",
    "pairs": "trading_pairs",
    "batch_interval_seconds": "batch_interval_seconds",
    "max_trades_per_batch": "max_trades_per_batch",
    "duration_minutes": "run_duration_minutes",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the producer's sub-commands."""
    produce = subparsers.add_parser(
        "produce", help="stream Binance trades into landing NDJSON files"
    )
    produce.add_argument("--ws-url", help="websocket base URL [BINANCE_WS_URL]")
    produce.add_argument(
        "--rest-url",
        help="REST base URL for gap filling [same host over http for a loopback --ws-url, "
        "else BINANCE_REST_URL]",
    )
    produce.add_argument(
        "--pairs", help="comma-separated symbols, e.g. btcusdt,ethusdt [TRADING_PAIRS]"
    )
    produce.add_argument(
        "--target",
        choices=("local", "volume"),
        help="where landing files go: the local landing dir, or the Unity Catalog Volume "
        "/Volumes/$CATALOG/$SCHEMA/crypto_landing/trades through a local spool (--landing-dir), "
        "with DATABRICKS_HOST and DATABRICKS_TOKEN [volume when CRYPTO_DEPLOYMENT=databricks]",
    )
    produce.add_argument(
        "--landing-dir",
        type=Path,
        help="[$CRYPTO_DATA_DIR/landing/trades; the spool $CRYPTO_DATA_DIR/spool/trades for "
        "--target volume]",
    )
    produce.add_argument(
        "--quarantine-dir",
        type=Path,
        help="[<landing-dir>/../_quarantine for a folder named trades, else "
        "<landing-dir>/../_quarantine/<its name>]",
    )
    for name, variable in (
        ("batch_interval_seconds", "BATCH_INTERVAL_SECONDS"),
        ("max_trades_per_batch", "MAX_TRADES_PER_BATCH"),
    ):  # parsed as the setting's type, checked by its field
        flag = "--" + name.replace("_", "-")
        produce.add_argument(
            flag, type=Settings.model_fields[name].annotation, help=f"[{variable}]"
        )
    produce.add_argument(
        "--max-pending-trades",
        type=int,
        help="trades kept in memory while the landing disk is full; beyond, the oldest are "
        f"dropped and back-filled from REST [{DEFAULT_MAX_PENDING_TRADES}, or one batch if larger]",
    )
    produce.add_argument("--duration-minutes", help="minutes, or 'none' [RUN_DURATION_MINUTES]")
    produce.add_argument("--duration-seconds", type=float, help="overrides --duration-minutes")
    produce.add_argument(
        "--state-file",
        help="where the ids landed so far are kept, so that a restart back-fills what it missed; "
        "'none': keep no state [<landing-dir>/../_state/producer_state.json for a folder "
        "named trades, else <landing-dir>/../_state/<its name>/producer_state.json]",
    )
    produce.add_argument(
        "--progress-seconds",
        type=float,
        help=f"seconds between progress lines on stderr [{DEFAULT_PROGRESS_SECONDS:g}]",
    )
    produce.set_defaults(func=produce_command)

    check = subparsers.add_parser(
        "test-connection", help="subscribe for a while; print trade rates and latency per symbol"
    )
    check.add_argument("--ws-url", help="websocket base URL [BINANCE_WS_URL]")
    check.add_argument("--pairs", help="comma-separated symbols [TRADING_PAIRS]")
    check.add_argument("--duration", type=float, default=10.0, help="seconds to listen [10]")
    check.set_defaults(func=test_connection_command)


def produce_command(args: argparse.Namespace) -> int:
    """``crypto-assets produce``: run the producer with flags over the environment's settings."""
    settings = with_flags(Settings.from_env(), args)
    ws_url = settings.binance_ws_url
    duration = _duration_seconds(args, settings)
    if args.target is not None:  # --target names the deployment whose landing to use
        settings = settings.replace(deployment="databricks" if args.target == "volume" else "local")
    target = build_deployment(settings).landing_target(
        args.landing_dir, _state_path(args.state_file)
    )
    rest_url = settings.binance_rest_url  # --rest-url's, if given (`with_flags`)
    config = ProducerConfig(
        ws_url=ws_url,
        rest_url=rest_url if args.rest_url else default_rest_url(ws_url, rest_url),
        pairs=settings.trading_pairs,
        landing_dir=target.landing_dir,
        quarantine_dir=args.quarantine_dir,
        batch_interval_seconds=settings.batch_interval_seconds,
        max_trades_per_batch=settings.max_trades_per_batch,
        max_pending_trades=args.max_pending_trades,
        duration_seconds=duration,
        state_path=target.state_path,
    )
    if args.progress_seconds is not None:  # unset: the producer's own default
        config = dataclasses.replace(config, progress_interval_seconds=args.progress_seconds)
    return _produce(config, target.upload)


def test_connection_command(args: argparse.Namespace) -> int:
    """``crypto-assets test-connection``: print per-symbol trade rates and receive latency."""
    settings = with_flags(Settings.from_env(), args)
    if args.duration <= 0:
        raise SettingsError(f"--duration={args.duration!r}: must be greater than zero")
    report = check_connection(settings.binance_ws_url, settings.trading_pairs, args.duration)
    for line in report.lines():
        print(line)
    return 0


def with_flags(settings: Settings, args: argparse.Namespace) -> Settings:
    """`settings` with the setting flags given in `args`, validated by the model (errors name
    the flag)."""
    given = {
        setting: getattr(args, dest)
        for dest, setting in FLAG_SETTINGS.items()
        if getattr(args, dest, None) is not None
    }
    # A flag named as its setting is named so in an error (max_trades_per_batch=0); another, as
    # the flag (--pairs='BTC/USDT').
    flags = {
        setting: "--" + dest.replace("_", "-")
        for dest, setting in FLAG_SETTINGS.items()
        if dest != setting
    }
    return settings.override(given, flags)


def _produce(config: ProducerConfig, upload: LandingUpload | None = None) -> int:
    producer = Producer(config, upload=upload)
    with _stop_on_signals(producer):
        summary = producer.run()
    print(summary.summary_line(), flush=True)
    return 0


def _duration_seconds(args: argparse.Namespace, settings: Settings) -> float | None:
    if args.duration_seconds is not None:
        if args.duration_seconds <= 0:
            raise SettingsError(f"--duration-seconds={args.duration_seconds!r}: must be > 0")
        return args.duration_seconds
    minutes = settings.run_duration_minutes  # --duration-minutes's, if given (`with_flags`)
    return None if minutes is None else minutes * 60


def _state_path(flag: str | None) -> Path | StateFile | None:
    if flag is None:
        return StateFile.BESIDE_LANDING
    return None if flag.strip().lower() == "none" else Path(flag)


@contextmanager
def _stop_on_signals(producer: Producer) -> Iterator[None]:
    """SIGINT/SIGTERM ask the producer to land what it has and return (exit 0), not to die."""

    def handler(signum: int, frame: object) -> None:
        producer.stop()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
