"""One analytics query per checkpoint: the lock a run holds beside its query's checkpoint."""

from __future__ import annotations

from pathlib import Path

from crypto_assets.folder_lock import FolderLock


def checkpoint_lock(checkpoint: Path) -> FolderLock:
    """The lock of the query checkpoint `checkpoint`: the file ``<checkpoint>.lock`` beside it.

    Beside, not inside: Spark owns what is inside a checkpoint folder.
    """
    checkpoint = Path(checkpoint)
    return FolderLock(
        checkpoint.with_name(f"{checkpoint.name}.lock"),
        checkpoint,
        kind="checkpoint folder",
        owner="another analytics run",
        advice="wait for it to end (or stop it), or give this one another --data-dir",
    )
