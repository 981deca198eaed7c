"""Test-side landing builder: the real recording as DESIGN landing records in NDJSON files.

Deliberately independent of the producer: plain gzip + json, the field mapping of DESIGN.md.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from crypto_assets_tests.recorded_trades import recorded_landing_rows


def recording_trades(recording: Path) -> list[dict]:
    """Every trade frame of the recording as a landing record, in receive order."""
    return list(_records(recording))


def _records(recording: Path) -> Iterator[dict]:
    yield from recorded_landing_rows(recording)


def chunks(records: Sequence[dict], parts: int) -> list[list[dict]]:
    """`records` cut into `parts` consecutive pieces of near-equal size."""
    size, extra = divmod(len(records), parts)
    out, start = [], 0
    for index in range(parts):
        end = start + size + (1 if index < extra else 0)
        out.append(list(records[start:end]))
        start = end
    return out


def landing_name(first_trade_time_ms: int, sequence: int) -> str:
    """``trades_<YYYYmmdd>_<HHMMSS>_<hex>.json`` for a file starting at that trade time."""
    moment = dt.datetime.fromtimestamp(first_trade_time_ms / 1000, tz=dt.UTC)
    return f"trades_{moment:%Y%m%d_%H%M%S}_{sequence:06x}.json"


def write_lines(landing_dir: Path, name: str, lines: Sequence[str]) -> Path:
    """Write raw lines atomically: a dot-named temp file, fsynced, then renamed into place."""
    landing_dir.mkdir(parents=True, exist_ok=True)
    temp = landing_dir / f".{name}.tmp"
    with temp.open("w") as out:
        out.write("".join(f"{line}\n" for line in lines))
        out.flush()
        os.fsync(out.fileno())
    target = landing_dir / name
    temp.rename(target)
    return target


def write_landing_file(landing_dir: Path, records: Sequence[dict], sequence: int) -> Path:
    """One landing file holding `records` (NDJSON), named after its first trade."""
    name = landing_name(records[0]["trade_time"], sequence)
    return write_lines(landing_dir, name, [json.dumps(r) for r in records])


def write_landing_files(
    landing_dir: Path, records: Sequence[dict], files: int, first_sequence: int = 0
) -> list[Path]:
    """`records` spread over `files` consecutive landing files."""
    return [
        write_landing_file(landing_dir, piece, first_sequence + index)
        for index, piece in enumerate(chunks(records, files))
    ]


def write_bytes(landing_dir: Path, name: str, content: bytes) -> Path:
    """Write `content` as landing file `name`, atomically (dot-named temp file, then rename)."""
    landing_dir.mkdir(parents=True, exist_ok=True)
    temp = landing_dir / f".{name}.tmp"
    temp.write_bytes(content)
    target = landing_dir / name
    temp.rename(target)
    return target


def shifted(records: Sequence[dict], laps: int, id_step: int, time_step_ms: int) -> list[dict]:
    """`records` moved `laps` times by `id_step` trade ids and `time_step_ms` (a new market)."""
    out = []
    for record in records:
        moved = dict(record)
        moved["trade_id"] += laps * id_step
        for name in ("trade_time", "event_time", "ingestion_time"):
            moved[name] += laps * time_step_ms
        out.append(moved)
    return out
