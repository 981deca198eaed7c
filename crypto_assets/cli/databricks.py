"""Sub-commands ``databricks-setup`` and ``databricks-smoke`` of the ``crypto-assets`` script."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from crypto_assets.databricks.layout import VolumeLayout
from crypto_assets.databricks.setup import SetupStep, set_up
from crypto_assets.databricks.workspace import WorkspaceError, workspace_client
from crypto_assets.settings import Settings

if TYPE_CHECKING:
    from crypto_assets.orchestration.databricks.smoke import Verdict

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
    smoke = subparsers.add_parser(
        "databricks-smoke",
        help="on a real workspace: setup, two landing files, one analytics run, tables read back",
        description="Runs databricks-setup on a scratch schema <SCHEMA>_smoke_<hex>, uploads two "
        "landing files of the bundled recording, materializes the three Spark assets once on "
        "DATABRICKS_COMPUTE, checks the tables' rows, then drops the scratch schema. One verdict "
        "line per step; exit 0 when all pass, 1 when one fails, 2 when the workspace cannot be "
        "used (unreachable, token refused).",
    )
    smoke.add_argument(
        "--keep", action="store_true", help="leave the scratch schema, its Volume and tables"
    )
    smoke.set_defaults(func=databricks_smoke_command)


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


def databricks_smoke_command(args: argparse.Namespace) -> int:
    """``crypto-assets databricks-smoke``: one verdict line per step, then the outcome."""
    # Imported here: Dagster's definitions and the smoke's run are for this command only.
    from crypto_assets.orchestration.databricks.smoke import (  # noqa: PLC0415
        EXIT_UNUSABLE,
        run_smoke,
        smoke_summary,
        workspace_error_verdict,
    )

    settings = Settings.from_env()
    try:
        client = workspace_client(
            settings,
            http_timeout_seconds=SETUP_HTTP_TIMEOUT_SECONDS,
            retry_timeout_seconds=SETUP_RETRY_TIMEOUT_SECONDS,
        )
    except WorkspaceError as exc:
        print(workspace_error_verdict(exc).line(), flush=True)
        status = EXIT_UNUSABLE
    else:
        status = run_smoke(client, settings, keep=args.keep, report=_print_verdict)
    if status != EXIT_UNUSABLE:  # an unusable workspace is its one line
        print(smoke_summary(status), flush=True)
    return status


def _print_verdict(verdict: Verdict) -> None:
    print(verdict.line(), flush=True)


def _print(step: SetupStep) -> None:
    print(step.line(), flush=True)
