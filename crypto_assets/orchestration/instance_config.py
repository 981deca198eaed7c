"""The Dagster instance this project's demo runs on: `make ui`/`make run` write it as dagster.yaml.

One definition, used by the Makefile (through `write_instance_yaml`) and by the end-to-end tests:
- no telemetry (the machine may have no network) and no "join the community" dialog (nux);
- one producer run and one analytics run in progress at a time: Dagster's run queue keeps a
  second run of either job QUEUED until the first ends (run tag concurrency limits on the
  ``crypto_assets/role`` tag both jobs carry), so two producers never share a landing folder
  and a manual analytics launch waits for a sensor-launched or scheduled one on the checkpoint;
- run monitoring with `MonitoredRunLauncher` (Dagster's default launcher plus a health check):
  a run whose process died with the code server that launched it (the daemon killed with its
  process group) is marked FAILURE within ``poll_interval_seconds`` instead of staying STARTED
  for ever, so the sensors that keep a producer and a continuous analytics run alive restart it;
  a run stuck starting or cancelling is failed after 180 s.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

# PyYAML comes with Dagster, which reads dagster.yaml with it.
import yaml

logger = logging.getLogger(__name__)

ROLE_TAG = "crypto_assets/role"
PRODUCER_ROLE = "producer"
ANALYTICS_ROLE = "analytics"

RUN_CONCURRENCY: dict[str, Any] = {
    "runs": {
        "tag_concurrency_limits": [
            {"key": ROLE_TAG, "value": PRODUCER_ROLE, "limit": 1},
            {"key": ROLE_TAG, "value": ANALYTICS_ROLE, "limit": 1},
        ]
    }
}
RUN_LAUNCHER: dict[str, Any] = {
    "run_launcher": {
        "module": "crypto_assets.orchestration.run_launcher",
        "class": "MonitoredRunLauncher",
    }
}
RUN_MONITORING: dict[str, Any] = {
    "run_monitoring": {
        "enabled": True,
        "poll_interval_seconds": 15,
        "start_timeout_seconds": 180,
        "cancel_timeout_seconds": 180,
        # The default launcher cannot resume a run: a dead run fails, its sensor starts anew.
        "max_resume_run_attempts": 0,
    }
}
INSTANCE_SETTINGS: dict[str, Any] = {
    "telemetry": {"enabled": False},
    "nux": {"enabled": False},
    "concurrency": RUN_CONCURRENCY,
    **RUN_LAUNCHER,
    **RUN_MONITORING,
}
HEADER = (
    "# Written by `make` from crypto_assets/orchestration/instance_config.py: edits here are\n"
    "# replaced when that module changes. Delete these two lines to keep it as yours.\n"
)
# What the Makefile wrote before this module existed: replaced like a file with the header.
_EARLIER_MAKEFILE_FILES = (
    "telemetry:\n  enabled: false\n",
    "telemetry:\n  enabled: false\nnux:\n  enabled: false\n",
)


def instance_yaml() -> str:
    """The demo instance's dagster.yaml text."""
    return HEADER + yaml.safe_dump(INSTANCE_SETTINGS, sort_keys=False)


def concurrency_yaml() -> str:
    """The blocks a dagster.yaml of one's own needs: one run per folder, dead runs failed."""
    return yaml.safe_dump(
        {"concurrency": RUN_CONCURRENCY, **RUN_LAUNCHER, **RUN_MONITORING}, sort_keys=False
    )


def write_instance_yaml(path: Path | str) -> bool:
    """Write `instance_yaml()` to `path` unless it is a dagster.yaml of the user's own (False).

    A file of one's own is left alone, with a warning naming what it needs.
    """
    path = Path(path)
    if path.exists():
        current = path.read_text(encoding="utf-8")
        if not current.startswith(HEADER) and current not in _EARLIER_MAKEFILE_FILES:
            if "tag_concurrency_limits" not in current or "run_monitoring" not in current:
                logger.warning(
                    "%s is your own: left unchanged. For one producer and one analytics run at a "
                    "time, and dead runs failed (so their sensors restart them), add to it:\n%s",
                    path,
                    concurrency_yaml(),
                )
            return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(instance_yaml(), encoding="utf-8")
    return True
