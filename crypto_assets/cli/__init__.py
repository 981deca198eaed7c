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

# Modules that register sub-commands, in the order `--help` lists them, with the commands each
# registers. A command's own module is the only one imported to run it: together they import
# Dagster, the Databricks SDK and Spark, 1.8 s of a one-off `analytics --once` process.
COMMAND_MODULES = {
    "crypto_assets.cli.produce": ("produce", "test-connection"),
    "crypto_assets.cli.replay": ("replay-server",),
    "crypto_assets.cli.analytics": ("analytics", "show"),
    "crypto_assets.cli.dagster": ("run",),
    "crypto_assets.cli.databricks": ("databricks-setup", "databricks-smoke"),
}


def command_modules(argv: Sequence[str]) -> list[str]:
    """The modules to import for `argv`: the named command's, or all (help, or no command)."""
    named = next((arg for arg in argv if not arg.startswith("-")), None)
    for module, commands in COMMAND_MODULES.items():
        if named in commands:
            return [module]
    return list(COMMAND_MODULES)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser with the sub-commands `argv` needs (by default every one)."""
    parser = argparse.ArgumentParser(
        prog="crypto-assets",
        description="Real-time Binance trade analytics: producer, replay server, Spark analytics.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in command_modules([] if argv is None else argv):
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
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
