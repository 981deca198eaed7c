"""A real small disk for tests: a tmpfs of N bytes mounted at a path, filled and freed on demand.

Mounting needs root (`mount -t tmpfs`); without it, or when the mount fails, the test is skipped
with the reason. The filler is one ordinary file written until the kernel answers ENOSPC, so
whatever runs on the disk meets the real error at a real write, fsync or rename.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

FILLER_NAME = "zz_filler.bin"
_BLOCK = b"\0" * 65536


class SmallDisk:
    """A mounted tmpfs of `size_bytes` at `path`: `fill` takes its free space, `free` returns it."""

    def __init__(self, path: Path, size_bytes: int) -> None:
        self.path = Path(path)
        self.size_bytes = size_bytes
        self.filler = self.path / FILLER_NAME

    def free_bytes(self) -> int:
        """Bytes still available on the disk."""
        return shutil.disk_usage(self.path).free

    def fill(self, leave_bytes: int = 0) -> int:
        """Grow the filler file until the disk is full (less `leave_bytes`); returns bytes added.

        With `leave_bytes` 0 the last write ends with ENOSPC, so the disk is truly full.
        """
        written = 0
        descriptor = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            while True:
                room = self.free_bytes() - leave_bytes
                if leave_bytes and room <= 0:
                    break
                block = _BLOCK if not leave_bytes else _BLOCK[: max(1, min(len(_BLOCK), room))]
                try:
                    written += os.write(descriptor, block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
        finally:
            os.close(descriptor)
        return written

    def free(self) -> None:
        """Delete the filler file: the space it held is available again."""
        self.filler.unlink(missing_ok=True)

    @property
    def full(self) -> bool:
        """Whether no byte is free."""
        return self.free_bytes() == 0


@contextmanager
def small_disk(path: Path, size_bytes: int) -> Iterator[SmallDisk]:
    """Mount a tmpfs of `size_bytes` at `path` (created), yield it, unmount it afterwards.

    Skips the calling test when not root or when the mount fails. The unmount is lazy if files
    are still open on it, so a failing test never leaves a mount behind.
    """
    if os.geteuid() != 0:
        pytest.skip("a real small disk needs root to mount a tmpfs (mount -t tmpfs)")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs at {path}: {mounted.stderr.strip() or mounted.returncode}"
        )
    try:
        yield SmallDisk(path, size_bytes)
    finally:
        unmounted = subprocess.run(["umount", str(path)], capture_output=True, check=False)
        if unmounted.returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)
