"""Test-side: a query checkpoint as Spark's file source leaves it, without running Spark.

`test_file_source_log` holds this format against a checkpoint a real query wrote.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

OFFSET_METADATA = {"batchWatermarkMs": 0, "batchTimestampMs": 0, "conf": {}}


def set_mtime(path: Path, seconds: float) -> None:
    """Give `path` this modification time (epoch seconds)."""
    os.utime(path, (seconds, seconds))


def source_entry(path: Path, log_batch: int) -> dict:
    """The file source's log entry of `path`: its URI, modification time (ms) and log batch."""
    return {
        "path": path.absolute().as_uri(),
        "timestamp": path.stat().st_mtime_ns // 1_000_000,
        "batchId": log_batch,
    }


def write_checkpoint(checkpoint: Path, batches: Sequence[Sequence[Path]], committed: int) -> None:
    """Batch i took the files `batches[i]` (as log batch i); the first `committed` committed."""
    for name in ("offsets", "commits", "sources/0"):
        (checkpoint / name).mkdir(parents=True, exist_ok=True)
    for batch, files in enumerate(batches):
        offsets = ["v1", json.dumps(OFFSET_METADATA), json.dumps({"logOffset": batch})]
        (checkpoint / "offsets" / str(batch)).write_text("\n".join(offsets))
        entries = [json.dumps(source_entry(path, batch)) for path in files]
        (checkpoint / "sources" / "0" / str(batch)).write_text("\n".join(["v1", *entries]))
        if batch < committed:
            commit = ["v1", json.dumps({"nextBatchWatermarkMs": 0})]
            (checkpoint / "commits" / str(batch)).write_text("\n".join(commit))
