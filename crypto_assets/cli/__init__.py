"""The ``crypto-assets`` console script: one sub-command per area, registered by that area.

Each command module exposes ``register(subparsers)``, which adds its parser and sets
``func(args) -> int``. This module only assembles them, sets up logging and turns a
`CryptoAssetsError` into one line on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from crypto_assets.errors import CryptoAssetsError

# Modules that register sub-commands, in the order `--help` lists them.
COMMAND_MODULES = (
    "crypto_assets.cli.produce",
    "crypto_assets.cli.replay",
    "crypto_assets.cli.analytics",
    "crypto_assets.cli.dagster",
    "crypto_assets.cli.databricks",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every registered sub-command."""
    parser = argparse.ArgumentParser(
        prog="crypto-assets",
        description="Real-time Binance trade analytics: producer, replay server, Spark analytics.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue  # an area that is not built yet registers nothing
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # Our own progress at INFO; libraries (alembic, py4j, websockets) only when they warn.
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("crypto_assets").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        return int(args.func(args) or 0)
    except CryptoAssetsError as exc:
        print(f"crypto-assets {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
