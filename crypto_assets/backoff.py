"""Exponential delay after consecutive failures: restarting a run, retrying an upload."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RestartBackoff:  # not `dagster.Backoff`, the RetryPolicy delay modifier
    """Exponential delay after consecutive failures: base, 2*base, 4*base ... up to a max."""

    base_seconds: float = 30.0
    max_seconds: float = 900.0

    def delay(self, failures: int) -> float:
        """Seconds to wait after the newest of `failures` consecutive failures (0 if none)."""
        if failures <= 0:
            return 0.0
        return min(self.max_seconds, self.base_seconds * 2 ** (failures - 1))
