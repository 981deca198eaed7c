"""Batches of NDJSON lines to atomic landing files, and rejected frames to the quarantine.

Every file is written under a hidden name (``.trades_….json.tmp``: Spark's file source and Auto
Loader skip names starting with ``.``), flushed, fsynced and renamed into place, then the directory
is fsynced, so a reader never sees a partial file and a crash never leaves one visible.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from crypto_assets.errors import CryptoAssetsError
from crypto_assets.landing_files import landing_file_name

logger = logging.getLogger(__name__)


class LandingWriteError(CryptoAssetsError):
    """A landing or quarantine file cannot be written (permissions, disk full, ...)."""


def write_atomically(directory: Path, name: str, lines: list[str]) -> Path:
    """Write `lines` as NDJSON to ``directory/name`` so that it appears complete or not at all."""
    final = directory / name
    temporary = directory / f".{name}.tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines))
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, final)
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)  # makes the rename itself durable
    finally:
        os.close(descriptor)
    return final


class LandingWriter:
    """Collects trade lines and rejected frames; writes a file per batch (by size or by age)."""

    def __init__(
        self,
        landing_dir: Path,
        quarantine_dir: Path,
        batch_interval_seconds: float = 5.0,
        max_trades_per_batch: int = 1000,
        clock: Callable[[], float] = time.monotonic,
        *,
        on_landed: Callable[[Path], None] | None = None,
    ) -> None:
        self.landing_dir = Path(landing_dir)
        self.quarantine_dir = Path(quarantine_dir)
        self.batch_interval_seconds = batch_interval_seconds
        self.max_trades_per_batch = max_trades_per_batch
        self._clock = clock
        # Called after each landing file is visible, with nothing pending: every trade added so
        # far is then landed.
        self.on_landed = on_landed
        self._lines: list[str] = []
        self._rejected: list[str] = []
        self._last_flush = clock()
        self.trades_written = 0
        self.files_written = 0
        self.quarantined = 0
        self.quarantine_files = 0
        try:
            self.landing_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LandingWriteError(
                f"cannot create the landing directory {self.landing_dir}: {exc.strerror or exc}"
            ) from exc

    @property
    def pending(self) -> int:
        """Trade lines received but not yet in a visible file."""
        return len(self._lines)

    def add(self, line: str) -> None:
        """Queue one NDJSON trade line; writes a file as soon as the batch is full."""
        lines = self._lines
        lines.append(line)
        if len(lines) >= self.max_trades_per_batch:
            self._write_trades()

    def reject(self, raw: str, reason: str, detail: str, received_ms: int) -> None:
        """Queue a rejected frame, raw and with its reason, for the quarantine directory."""
        self._rejected.append(
            json.dumps(
                {"received_time": received_ms, "reason": reason, "detail": detail, "raw": raw},
                ensure_ascii=False,
            )
        )
        self.quarantined += 1

    def flush_if_due(self) -> None:
        """Write the pending batch when it is older than the batch interval."""
        if self._clock() - self._last_flush >= self.batch_interval_seconds:
            self.flush()

    def flush(self) -> None:
        """Write every pending trade and rejected frame now."""
        if self._lines:
            self._write_trades()
        if self._rejected:
            try:
                self.quarantine_dir.mkdir(parents=True, exist_ok=True)
                path = write_atomically(
                    self.quarantine_dir,
                    landing_file_name(time.time(), prefix="quarantine"),
                    self._rejected,
                )
            except OSError as exc:
                raise LandingWriteError(
                    f"cannot write a quarantine file in {self.quarantine_dir}: "
                    f"{exc.strerror or exc}"
                ) from exc
            logger.warning("quarantined %s frames in %s", len(self._rejected), path)
            self._rejected = []
            self.quarantine_files += 1
        self._last_flush = self._clock()

    def _write_trades(self) -> None:
        lines = self._lines
        try:
            path = write_atomically(self.landing_dir, landing_file_name(time.time()), lines)
        except OSError as exc:
            # The batch stays pending: a later flush may succeed (e.g. after space is freed).
            raise LandingWriteError(
                f"cannot write a landing file in {self.landing_dir}: {exc.strerror or exc}"
            ) from exc
        self._lines = []
        self.trades_written += len(lines)
        self.files_written += 1
        self._last_flush = self._clock()
        logger.debug("landed %s trades in %s", len(lines), path.name)
        if self.on_landed is not None:
            self.on_landed(path)
