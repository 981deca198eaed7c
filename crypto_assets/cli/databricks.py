"""Sub-command ``databricks-setup`` of the ``crypto-assets`` script."""

from __future__ import annotations

import argparse

from crypto_assets.databricks.layout import VolumeLayout
from crypto_assets.databricks.setup import SetupStep, set_up
from crypto_assets.databricks.workspace import workspace_client
from crypto_assets.settings import Settings

# databricks-setup makes a handful of calls: an unanswered one should fail in seconds.
SETUP_HTTP_TIMEOUT_SECONDS = 20.0
SETUP_RETRY_TIMEOUT_SECONDS = 20


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the Databricks sub-commands."""
    setup = subparsers.add_parser(
        "databricks-setup",
        help="check the catalog; create the schema, the Volume and its folders if missing",
        description="Checks that CATALOG exists, then creates (idempotently) the schema SCHEMA, "
        "the MANAGED Volume crypto_landing and its folders, on the workspace DATABRICKS_HOST "
        "with the personal access token DATABRICKS_TOKEN. Prints one line per object.",
    )
    setup.set_defaults(func=databricks_setup_command)


def databricks_setup_command(args: argparse.Namespace) -> int:
    """``crypto-assets databricks-setup``: one line per object, existing or created."""
    settings = Settings.from_env()
    client = workspace_client(
        settings,
        http_timeout_seconds=SETUP_HTTP_TIMEOUT_SECONDS,
        retry_timeout_seconds=SETUP_RETRY_TIMEOUT_SECONDS,
    )
    steps = set_up(client, VolumeLayout.from_settings(settings), report=_print)
    created = sum(step.created for step in steps)
    print(f"{created} created, {len(steps) - created} existed", flush=True)
    return 0


def _print(step: SetupStep) -> None:
    print(step.line(), flush=True)
