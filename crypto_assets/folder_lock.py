"""An OS lock that makes one process at a time the owner of a folder (landing dir, checkpoints).

A non-blocking `fcntl.flock` on a lock file in or beside the folder: the kernel drops it when the
holder exits or dies, so a crash never leaves a stale lock behind. The holder writes its PID into
the file, so a refused process can say who holds the folder. The file itself stays (deleting a
lock file lets two processes lock two different files of the same name).
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path
from types import TracebackType

from crypto_assets.errors import CryptoAssetsError

logger = logging.getLogger(__name__)


class FolderInUseError(CryptoAssetsError):
    """Another process holds the folder's lock; the message names the folder and its PID."""


class FolderLock:
    """Exclusive, non-blocking ownership of `folder` through the lock file `lock_path`.

    `kind` names the folder (``"landing folder"``), `owner` who holds such a lock (``"another
    producer"``) and `advice` what to do when refused; all go into the one-line refusal. Use as a
    context manager, or `acquire` and `release`.
    """

    def __init__(self, lock_path: Path, folder: Path, kind: str, owner: str, advice: str) -> None:
        self.lock_path = Path(lock_path)
        self.folder = Path(folder)
        self.kind = kind
        self.owner = owner
        self.advice = advice
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._fd is not None

    def acquire(self) -> FolderLock:
        """Take the lock or raise `FolderInUseError` at once; a no-op when already held."""
        if self._fd is not None:
            return self
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder_pid(fd)
            os.close(fd)
            raise FolderInUseError(
                f"{self.kind} {self.folder} is in use by {self.owner} "
                f"(pid {holder or 'unknown'}, lock {self.lock_path}): {self.advice}"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:
            # Only a hint for the next one to fail: the lock holds without it (e.g. disk full).
            logger.warning(
                "locked %s but cannot write the pid into %s: %s", self.folder, self.lock_path, exc
            )
        logger.debug("locked %s (%s)", self.folder, self.lock_path)
        return self

    def release(self) -> None:
        """Give the lock up (closing the file releases it); a no-op when not held."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
            logger.debug("unlocked %s", self.folder)

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()

    def __del__(self) -> None:
        # A holder dropped without `release` (an exception before its owner's cleanup) must not
        # keep the folder for the rest of a long-lived process.
        self.release()


def _holder_pid(fd: int) -> int | None:
    """The PID the current holder wrote into the lock file, if readable."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None
