"""Turning a sensor on or off in a Dagster instance as `dagster sensor start|stop` does."""

from __future__ import annotations

import dagster as dg
from dagster._core.remote_origin import (
    InProcessCodeLocationOrigin,
    RemoteInstigatorOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.scheduler.instigation import (
    InstigatorState,
    InstigatorStatus,
    InstigatorType,
    SensorInstigatorData,
)
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin


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
