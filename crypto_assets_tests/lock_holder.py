"""A child process holding a folder lock until told to let go: the other process of lock tests."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

_HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from crypto_assets.folder_lock import FolderLock

    with FolderLock(Path(sys.argv[1]), Path(sys.argv[2]), "test folder", "a holder", "wait"):
        print("held", flush=True)
        sys.stdin.read()  # until the test closes our stdin
    """
)


@contextlib.contextmanager
def lock_held_by_a_child(lock_path: Path, folder: Path) -> Iterator[subprocess.Popen]:
    """A child process holding `lock_path` (it has locked it when this yields) until exit."""
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(lock_path), str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        if line != "held\n":
            raise RuntimeError(f"the lock holder did not lock {lock_path}: {line!r}")
        yield process
    finally:
        if process.stdin and not process.stdin.closed:
            process.stdin.close()
        process.wait(timeout=30)
