"""Turning a sensor on or off in a Dagster instance as `dagster sensor start|stop` does."""

from __future__ import annotations

import dagster as dg

# Test-only internals: the sensor's origin and stored state. The public way to turn a sensor on
# (UI, `dagster sensor start`) needs a loaded code location; this stores the same kind of state.
from dagster._core.remote_origin import (
    InProcessCodeLocationOrigin,
    RemoteInstigatorOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.scheduler.instigation import InstigatorState, SensorInstigatorData
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

from crypto_assets.orchestration.dagster_internals import InstigatorStatus, InstigatorType


def turn_sensor(instance: dg.DagsterInstance, name: str, status: InstigatorStatus) -> None:
    """What `dagster sensor start|stop NAME` stores: the sensor's instigator state."""
    origin = RemoteInstigatorOrigin(
        repository_origin=RemoteRepositoryOrigin(
            code_location_origin=InProcessCodeLocationOrigin(
                LoadableTargetOrigin(module_name="crypto_assets.definitions")
            ),
            repository_name="__repository__",
        ),
        instigator_name=name,
    )
    state = InstigatorState(origin, InstigatorType.SENSOR, status, SensorInstigatorData())
    if instance.get_instigator_state(state.instigator_origin_id, state.selector_id) is None:
        instance.add_instigator_state(state)
    else:
        instance.update_instigator_state(state)
