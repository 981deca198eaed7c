"""The Dagster internals the package needs, in one place: what `dagster` 1.13 does not export.

Everything else comes from the public `dagster` namespace (`import dagster as dg`), including
`dg.DagsterEvent` and `dg.StepExecutionContext` for the step launcher. Each import below names
what it is needed for and why no public API gives it; when Dagster exports one of them, import it
from `dagster` where it is used and drop it here. Nothing else in `crypto_assets/` may import
`dagster._core`.
"""

from __future__ import annotations

# DagsterPipesExecutionError, for databricks/pipes.py: its Pipes clients catch what
# dagster-databricks' Pipes clients (`BasePipesDatabricksClient._poll_til_success`) raise for a
# Databricks run that did not succeed, to fail the asset with the run's own error and page. The
# class derives straight from `Exception`, not `dg.DagsterError`, and neither `dagster`,
# `dagster_pipes` (only `DagsterPipesError`) nor `dagster_databricks` exports it: catching a
# public base class instead would also turn unrelated errors into that run-failure message.
#
# DagsterUserCodeUnreachableError, for orchestration/run_launcher.py:
# `MonitoredRunLauncher.terminate` catches what `DefaultRunLauncher.terminate` raises (from the
# code server's gRPC client) when the code server that launched the run is gone, and then
# interrupts the run's process itself. `dagster` exports only the base `dg.DagsterError`, which
# would also swallow other failures of the termination.
from dagster._core.errors import DagsterPipesExecutionError, DagsterUserCodeUnreachableError

# orchestration/run_launcher.py: what `MonitoredRunLauncher.check_run_worker_health` must return
# to run monitoring (the `RunLauncher.check_run_worker_health` contract). `dagster` exports
# `dg.DefaultRunLauncher` but neither the `RunLauncher` base class nor its health-check types.
from dagster._core.launcher.base import CheckRunHealthResult, WorkerStatus

# orchestration/runs.py: `sensor_is_on` asks the instance for the sensors stored as turned on
# (UI, `dagster sensor start`) with `DagsterInstance.all_instigator_state`, whose filters take
# these enums. The public `dg.DefaultSensorStatus` is only the default declared in code, not the
# state stored in the instance, and no public API reads another sensor's stored on/off state.
from dagster._core.scheduler.instigation import InstigatorStatus, InstigatorType

__all__ = [
    "CheckRunHealthResult",
    "DagsterPipesExecutionError",
    "DagsterUserCodeUnreachableError",
    "InstigatorStatus",
    "InstigatorType",
    "WorkerStatus",
]
