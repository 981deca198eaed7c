"""Retention of processed landing files: Spark moves them aside, this module ages them out.

A pipeline that runs for days lands a file every few seconds. Left in place they fill the disk
and Spark's file source lists every one of them on every trigger. So the local reader asks Spark
to archive each file once the batch that read it has committed (the file source's `cleanSource`
option: only completed files move, never one a batch may still need), into `landing/_processed/`
beside the landing folder (Spark keeps the file's original path beneath it), and files older
than `LANDING_RETENTION_HOURS` are deleted from there. `trades_raw` holds every trade of an
archived file, so nothing is lost: the archive is only there to look at or re-land by hand.

Spark archives a batch's files when it plans the next batch, so the files of a run's last batch
stay in the landing folder until the next run's first batch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

ARCHIVE_FOLDER = "_processed"


def archive_dir_for(landing_dir: Path) -> Path:
    """Where processed files of `landing_dir` are archived: ``<landing>/../_processed``."""
    return Path(landing_dir).absolute().parent / ARCHIVE_FOLDER


@dataclass(frozen=True)
class Expired:
    """What one pass of the retention deleted."""

    files: int = 0
    bytes: int = 0


@dataclass(frozen=True)
class LandingRetention:
    """Archive processed landing files, delete archived ones older than `retention_hours`."""

    archive_dir: Path
    retention_hours: float

    @classmethod
    def for_landing(cls, landing_dir: Path, retention_hours: float) -> LandingRetention:
        """The retention of `landing_dir`'s files, archived beside it."""
        return cls(archive_dir_for(landing_dir), retention_hours)

    def source_options(self) -> dict[str, str]:
        """Spark file-source options that archive each file after its batch committed."""
        return {"cleanSource": "archive", "sourceArchiveDir": str(self.archive_dir)}

    def expire(self, now: float | None = None) -> Expired:
        """Delete archived files last modified more than the retention ago, and empty folders."""
        if not self.archive_dir.is_dir():
            return Expired()
        cutoff = (time.time() if now is None else now) - self.retention_hours * 3600
        files = size = 0
        # Bottom-up, so that a folder emptied here is removed in the same pass.
        for folder, _subfolders, names in os.walk(self.archive_dir, topdown=False):
            for name in names:
                path = os.path.join(folder, name)
                try:
                    stat = os.stat(path)
                    if stat.st_mtime < cutoff:
                        os.remove(path)
                        files += 1
                        size += stat.st_size
                except FileNotFoundError:
                    continue  # removed meanwhile (another pass, a user): nothing to do
            if folder != str(self.archive_dir) and not os.listdir(folder):
                with contextlib.suppress(OSError):  # a file arrived meanwhile: next pass
                    os.rmdir(folder)
        if files:
            logger.info(
                "landing retention: deleted %s archived files (%.1f MB) older than %g h from %s",
                files,
                size / 1e6,
                self.retention_hours,
                self.archive_dir,
            )
        return Expired(files, size)
