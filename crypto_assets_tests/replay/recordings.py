"""Test-side recordings: read one independently (plain gzip + json), write a small one."""

from __future__ import annotations

import gzip
import json
from pathlib import Path


def read_frames(path: Path) -> list[tuple[int, str, dict]]:
    """``(receive ns, frame text, parsed frame)`` for every stream frame line of a recording."""
    frames = []
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            recv, frame = line.rstrip("\n").split(" ", 1)
            parsed = json.loads(frame)
            if "stream" in parsed:
                frames.append((int(recv), frame, parsed))
    return frames


def write_recording(path: Path, lines: list[str]) -> Path:
    """Write ``lines`` (without newlines) as a gzip recording."""
    with gzip.open(path, "wt", encoding="utf-8") as out:
        out.writelines(line + "\n" for line in lines)
    return path
