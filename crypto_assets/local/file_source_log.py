"""What Spark's file source wrote in the query's checkpoint: the landing files each batch took.

Read without Spark, from the checkpoint's own logs (each file a ``v1`` line, then JSON lines):
``offsets/<batch>`` is a batch Spark planned (its file-source offset is a log batch,
``logOffset``), ``commits/<batch>`` one it committed, and ``sources/0/<log batch>`` the files that
log batch took, one entry each (path, modification time in ms, log batch); every tenth log batch
is instead a ``.compact`` file holding the entries of all log batches so far.

The file source takes new files oldest modification time first, so the files the query has
processed are those up to the newest one its latest committed batch took: a landing file
modified later is not processed yet (`newest_committed_file_ms`). The landing reader names the
files of the batch being run (`files_of_running_batch`) in its warnings.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from urllib.parse import unquote, urlsplit

logger = logging.getLogger(__name__)


def _log_lines(path: Path) -> list[str]:
    """The JSON lines of a Spark metadata log file (after its ``v1`` version line)."""
    return path.read_text(encoding="utf-8").splitlines()[1:]


def _numbered(directory: Path, suffix: str = "") -> dict[int, Path]:
    found = {}
    for path in directory.iterdir() if directory.is_dir() else ():
        stem = path.name.removesuffix(suffix) if suffix else path.name
        if stem.isdigit() and path.name == stem + suffix:
            found[int(stem)] = path
    return found


def _log_offset(offsets_file: Path) -> int:
    # Line 1 is the batch's metadata, then one offset per source: the file source's own batch.
    return int(json.loads(_log_lines(offsets_file)[1])["logOffset"])


def _batch_entries(checkpoint_dir: Path, offsets: dict[int, Path], batch: int) -> list[dict]:
    """The file-source entries of query batch `batch`: its log batches after the batch before."""
    last = _log_offset(offsets[batch])
    first = _log_offset(offsets[batch - 1]) + 1 if batch - 1 in offsets else last
    sources = checkpoint_dir / "sources" / "0"
    plain, compact = _numbered(sources), _numbered(sources, ".compact")
    entries = []
    for log_batch in range(first, last + 1):
        if log_batch in plain:
            lines = _log_lines(plain[log_batch])
        else:
            covering = [n for n in compact if n >= log_batch]
            lines = _log_lines(compact[min(covering)]) if covering else []
        for line in lines:
            entry = json.loads(line)
            if entry.get("batchId", log_batch) == log_batch:
                entries.append(entry)
    return entries


def files_of_running_batch(checkpoint_dir: Path) -> list[str] | None:
    """The file names Spark's file source assigned to the batch being run; None when unknown.

    The batch being run is the checkpoint's latest in ``offsets/``.
    """
    try:
        offsets = _numbered(checkpoint_dir / "offsets")
        if not offsets:
            return None
        entries = _batch_entries(checkpoint_dir, offsets, max(offsets))
        return [Path(unquote(urlsplit(entry["path"]).path)).name for entry in entries]
    except (OSError, ValueError, KeyError, IndexError) as exc:
        logger.debug("cannot read the batch's files from %s: %s", checkpoint_dir, exc)
        return None


def newest_committed_file_ms(checkpoint_dir: Path) -> int | None:
    """The modification time (epoch ms) of the newest file the latest committed batch took.

    None when no batch has committed (no checkpoint yet, or a new one), or the logs cannot be
    read: then no landing file is known to be processed.
    """
    try:
        offsets = _numbered(checkpoint_dir / "offsets")
        committed = [batch for batch in _numbered(checkpoint_dir / "commits") if batch in offsets]
        if not committed:
            return None
        entries = _batch_entries(checkpoint_dir, offsets, max(committed))
        return max((int(entry["timestamp"]) for entry in entries), default=None)
    except (OSError, ValueError, KeyError, IndexError) as exc:
        logger.debug("cannot read the committed batches' files from %s: %s", checkpoint_dir, exc)
        return None
