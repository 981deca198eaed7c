"""Databricks failures in one readable line: an unusable workspace, then a failed run.

`check_workspace` tells a refused token from a workspace without DBFS: the token is checked
against an endpoint every workspace has (`current_user.me`), and only then, for the step launcher
(which stages through DBFS), DBFS itself.

The Jobs service reports a failed Python task as "Workload failed, see run output for details";
the run output (`runs/get-output` of the task) holds the exception. `run_failure_line` puts that
exception and the run page's URL in the message a Dagster user reads first.
"""

from __future__ import annotations

from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import DatabricksError

from crypto_assets.databricks.workspace import WorkspaceError, check_reachable, error_text

# The setting that runs classic compute without DBFS (crypto_assets.settings).
LAUNCHER_VARIABLE = "DATABRICKS_LAUNCHER"


def check_workspace(client: WorkspaceClient, *, dbfs: bool = False) -> None:
    """Raise `WorkspaceError` in one line unless the workspace answers with the client's token.

    With `dbfs`, the DBFS root must be readable too (the step launcher stages through DBFS): a
    refusal there, the token being good, is a workspace whose legacy DBFS is disabled.
    """
    host = client.config.host
    check_reachable(host)
    try:
        client.current_user.me()
    except DatabricksError as exc:
        raise WorkspaceError(refusal_line(host, exc)) from None
    if not dbfs:
        return
    try:
        client.dbfs.get_status("/")
    except DatabricksError as exc:
        raise WorkspaceError(dbfs_refusal_line(host, exc)) from None


def refusal_line(host: str, error: DatabricksError) -> str:
    """One line for a refused token (or user), naming what to check."""
    return (
        f"Databricks at {host} refused the request ({error_text(error)}): check that "
        "DATABRICKS_TOKEN is a valid personal access token of a user with access to the workspace"
    )


def dbfs_refusal_line(host: str, error: DatabricksError) -> str:
    """One line for a workspace that accepts the token but refuses DBFS, naming the way out."""
    return (
        f"Databricks at {host} accepts DATABRICKS_TOKEN but refuses DBFS ({error_text(error)}): "
        "legacy DBFS is disabled on this workspace (or closed to this user), and the step "
        f"launcher stages each step through DBFS; set {LAUNCHER_VARIABLE}=pipes to run on the "
        "cluster through the Volume instead (Dagster Pipes), or DATABRICKS_COMPUTE=serverless"
    )


def first_line(text: str) -> str:
    """The first non-blank line of `text` (or `text` itself)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else text


def run_failure_line(client: WorkspaceClient, run_id: int, error: Exception) -> str:
    """Why the Databricks run `run_id` failed: its task's exception, and its run page's URL."""
    try:
        run = client.jobs.get_run(run_id)
    except DatabricksError:
        return f"Databricks run {run_id} failed: {first_line(str(error))}"
    reasons = []
    for task in run.tasks or []:
        try:
            output = client.jobs.get_run_output(task.run_id)
        except DatabricksError:
            continue
        if output.error:
            reasons.append(first_line(output.error))
    if not reasons:
        state = run.state.state_message if run.state else None
        reasons.append(first_line(state or str(error)))
    page = f" (run page: {run.run_page_url})" if run.run_page_url else ""
    return f"Databricks run {run_id} failed: {'; '.join(reasons)}{page}"
