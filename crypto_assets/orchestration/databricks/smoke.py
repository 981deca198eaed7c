"""`crypto-assets databricks-smoke`: does this workspace run the pipeline? One verdict per step.

For a user with a real workspace, in one command and without touching their tables:

1. **workspace**: the host answers and accepts DATABRICKS_TOKEN (else exit 2, nothing created);
2. **setup**: `databricks-setup` on a scratch schema `<SCHEMA>_smoke_<hex>`;
3. **landing**: two landing files of the bundled recording uploaded to the scratch Volume;
4. **analytics**: the three Spark assets materialized once (`availableNow`) on the configured
   compute, by Dagster's own `dagster asset materialize` in a scratch Dagster home, as a run of
   the UI would (the step launcher, Pipes on a cluster, or serverless);
5. **tables**: the row counts the run read back from the three tables on the compute, against the
   trades the two files hold;
6. **cleanup**: the scratch schema dropped with its Volume and tables (`--keep` leaves it). A new
   job cluster ends with its run; an existing cluster is left as it was.

Exit status: 0 when every step passed, 1 when one failed, 2 when the workspace cannot be used at
all (unreachable host, refused token, missing setting).
"""

from __future__ import annotations

import io
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import DatabricksError

from crypto_assets.binance.parsing import TradeRecord, parse_frame
from crypto_assets.databricks.layout import VolumeLayout
from crypto_assets.databricks.setup import set_up
from crypto_assets.databricks.workspace import WorkspaceError, error_text
from crypto_assets.errors import CryptoAssetsError
from crypto_assets.landing_files import landing_file_name
from crypto_assets.orchestration.databricks.remote_environment import env_name
from crypto_assets.recording import bundled_recording
from crypto_assets.replay.recording_feed import load_recordings
from crypto_assets.settings import Settings

SPARK_ASSETS = ("trades_raw", "trades_analytics", "price_alerts")
# Two producer batches' worth of real trades: enough for windows, small enough for any compute.
SMOKE_TRADES = 2_000
SMOKE_FILES = 2
# A new job cluster takes minutes to start; the run itself is seconds.
ANALYTICS_TIMEOUT_SECONDS = 3_600

EXIT_OK, EXIT_FAILED, EXIT_UNUSABLE = 0, 1, 2


@dataclass(frozen=True)
class Verdict:
    """One step's outcome, printed as one line."""

    step: str
    ok: bool
    detail: str

    def line(self) -> str:
        """``analytics  ok      ...`` / ``tables     FAILED  ...``."""
        return f"{self.step:<10} {'ok' if self.ok else 'FAILED':<7} {self.detail}"


@dataclass
class SmokeReport:
    """The verdicts so far, each printed as it comes."""

    report: Callable[[Verdict], None]
    verdicts: list[Verdict] = field(default_factory=list)

    def add(self, step: str, ok: bool, detail: str) -> bool:
        """Record and print one verdict; returns `ok`."""
        verdict = Verdict(step, ok, detail)
        self.verdicts.append(verdict)
        self.report(verdict)
        return ok

    @property
    def passed(self) -> bool:
        """True when every step so far passed."""
        return all(verdict.ok for verdict in self.verdicts)


def smoke_trades(count: int = SMOKE_TRADES) -> list[TradeRecord]:
    """The first `count` trades of the bundled recording, as the producer records them.

    Each recorded frame goes through the producer's own parser (`parse_frame`).
    """
    recording = load_recordings([bundled_recording()])
    symbols = frozenset(recording.symbols)
    trades: list[TradeRecord] = []
    for event in recording.events:
        if event.trade is None:
            continue
        record = parse_frame(event.payload, event.recv_ns // 1_000_000, symbols)
        if isinstance(record, TradeRecord):
            trades.append(record)
        if len(trades) == count:
            break
    return trades


def scratch_settings(settings: Settings) -> Settings:
    """`settings` on a fresh scratch schema, so the user's own tables are never touched."""
    return settings.replace(schema_name=f"{settings.schema_name}_smoke_{secrets.token_hex(3)}")


def upload_landing(client: WorkspaceClient, layout: VolumeLayout, trades: list[TradeRecord]) -> int:
    """`trades` as `SMOKE_FILES` landing files on the Volume; the number of distinct trades."""
    lines = [trade.to_json() for trade in trades]
    size = -(-len(lines) // SMOKE_FILES)
    now = time.time()
    for index in range(SMOKE_FILES):
        piece = lines[index * size : (index + 1) * size]
        content = "".join(f"{line}\n" for line in piece).encode()
        target = f"{layout.landing_dir}/{landing_file_name(now + index)}"
        client.files.upload(target, io.BytesIO(content), overwrite=True)
    return len({(trade.symbol, trade.trade_id) for trade in trades})


def materialize_command() -> list[str]:
    """Dagster's own command that materializes the three Spark assets of the definitions."""
    return [
        sys.executable,
        "-m",
        "dagster",
        "asset",
        "materialize",
        "-m",
        "crypto_assets.definitions",
        "--select",
        ",".join(SPARK_ASSETS),
    ]


def run_analytics_once(settings: Settings, dagster_home: Path) -> tuple[bool, str]:
    """Materialize the Spark assets with `settings`; (succeeded, why not) from Dagster's events."""
    env = {
        **os.environ,
        env_name("schema_name"): settings.schema_name,
        "DAGSTER_HOME": str(dagster_home),
    }
    done = subprocess.run(
        materialize_command(),
        env=env,
        capture_output=True,
        text=True,
        timeout=ANALYTICS_TIMEOUT_SECONDS,
        check=False,
    )
    (dagster_home / "materialize.log").write_text(done.stdout + done.stderr)
    if done.returncode == 0:
        return True, ""
    return False, failure_line(dagster_home) or last_line(done.stderr or done.stdout)


def last_line(text: str) -> str:
    """The last non-blank line of `text`."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def _events(dagster_home: Path) -> Iterator[dg.EventLogEntry]:
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        for run in instance.get_runs():
            yield from instance.all_logs(run.run_id)


def failure_line(dagster_home: Path) -> str:
    """The first step failure's message in the scratch instance ('' when none was recorded)."""
    for entry in _events(dagster_home):
        event = entry.dagster_event
        if event is not None and event.is_step_failure and event.step_failure_data.error:
            error = event.step_failure_data.error
            message = error.message.strip().splitlines()
            return message[0] if message else error.cls_name or "step failed"
    return ""


def row_counts(dagster_home: Path) -> dict[str, int]:
    """`dagster/row_count` of each Spark asset's materialization in the scratch instance."""
    counts: dict[str, int] = {}
    for entry in _events(dagster_home):
        event = entry.dagster_event
        if event is None or not event.is_step_materialization:
            continue
        materialization = event.step_materialization_data.materialization
        rows = materialization.metadata.get("dagster/row_count")
        if rows is not None:
            counts[materialization.asset_key.to_user_string()] = int(rows.value)
    return counts


@contextmanager
def scratch_dagster_home() -> Iterator[Path]:
    """A Dagster home of its own, with a dagster.yaml that sends no telemetry."""
    with tempfile.TemporaryDirectory(prefix="crypto_assets_smoke_") as folder:
        home = Path(folder)
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        yield home


def run_smoke(
    client: WorkspaceClient,
    settings: Settings,
    *,
    keep: bool = False,
    report: Callable[[Verdict], None] = lambda verdict: None,
) -> int:
    """The smoke test's steps on `client`'s workspace; the exit status (`EXIT_*`)."""
    verdicts = SmokeReport(report)
    try:
        user = client.current_user.me().user_name
    except DatabricksError as exc:
        verdicts.add(
            "workspace",
            False,
            f"{client.config.host} refused the token ({error_text(exc)}): check DATABRICKS_TOKEN",
        )
        return EXIT_UNUSABLE
    verdicts.add("workspace", True, f"{client.config.host} accepts the token of {user}")
    scratch = scratch_settings(settings)
    layout = VolumeLayout.from_settings(scratch)
    schema = f"{layout.catalog}.{layout.schema}"
    step = "setup"
    try:
        steps = set_up(client, layout)
        created = ", ".join(f"{done.kind} {done.name}" for done in steps if done.created)
        verdicts.add(step, True, f"created {created}")
        step = "landing"
        trades = upload_landing(client, layout, smoke_trades())
        verdicts.add(step, True, f"{SMOKE_FILES} files, {trades} trades in {layout.landing_dir}")
        step = "analytics"
        with scratch_dagster_home() as home:
            started = time.monotonic()
            ok, why = run_analytics_once(scratch, home)
            seconds = time.monotonic() - started
            detail = f"once on {settings.databricks_compute} compute in {seconds:.0f} s"
            if not verdicts.add(step, ok, detail if ok else why):
                return EXIT_FAILED
            counts = row_counts(home)
        step = "tables"
        tables_ok = counts.get("trades_raw") == trades and counts.get("trades_analytics", 0) > 0
        shown = ", ".join(f"{name} {counts.get(name, 'missing')} rows" for name in SPARK_ASSETS)
        verdicts.add(step, tables_ok, f"{shown} ({trades} trades landed)")
    except (CryptoAssetsError, DatabricksError, subprocess.TimeoutExpired) as exc:
        verdicts.add(step, False, str(exc).strip().splitlines()[0])
    finally:
        if keep:
            verdicts.add("cleanup", True, f"kept {schema} (--keep): drop it when done")
        else:
            try:
                client.schemas.delete(schema, force=True)
                verdicts.add("cleanup", True, f"dropped {schema} with its Volume and tables")
            except DatabricksError as exc:
                verdicts.add("cleanup", False, f"could not drop {schema}: {error_text(exc)}")
    return EXIT_OK if verdicts.passed else EXIT_FAILED


def smoke_summary(status: int) -> str:
    """The last line of the command."""
    if status == EXIT_OK:
        return "smoke passed: this workspace runs the pipeline"
    if status == EXIT_UNUSABLE:
        return "smoke stopped: the workspace cannot be used with these settings"
    return "smoke failed: see the FAILED step above"


def workspace_error_verdict(error: WorkspaceError) -> Verdict:
    """The one line of a workspace that cannot be reached or configured."""
    return Verdict("workspace", False, str(error))
