"""Files that appear whole or not at all, and stay once written: written to a hidden temporary,
fsynced, renamed into place, and the rename fsynced in its folder.

The producer's landing files and state file and the notifications' outbox and ledger are written
this way, so a crash or a full disk never leaves half a file where a reader looks.
"""

from __future__ import annotations

import os
from pathlib import Path


def write_atomically(directory: Path, name: str, text: str) -> Path:
    """Write `text` as ``directory/name`` so that it appears complete or not at all.

    On failure the hidden temporary file is removed: a full disk gets its space back.
    """
    final = directory / name
    temporary = directory / f".{name}.tmp"
    try:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, final)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_directory(directory)
    return final


def fsync_directory(directory: Path) -> None:
    """Make the renames and removals made in `directory` durable."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
