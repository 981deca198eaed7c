"""The producer's state file: per symbol, the highest trade id durably landed and the holes below.

A new process resumes from it, so trades that happened while no producer ran are back-filled
instead of silently missing. It is saved (atomically, like a landing file) after every landing file,
so it never claims a trade that is not in a visible file; a crash between a landing file and the
save is covered by reading, at load, the landing files not older than the state file.

    {"version": 1, "landing_dir": "/abs/data/landing/trades",
     "symbols": {"BTCUSDT": {"landed_high": 3735690000, "missing": [[a, b]]}}}

``missing`` are id ranges at or below ``landed_high`` not landed yet (gaps still open at the save).
``landing_dir`` is the folder whose files the state describes (where it lives: see
`crypto_assets.producer.producer_files`). A producer never takes another folder's state for its
own: loading a state that names another folder is `StateFolderError`, a one-line refusal that
says how to resume (the folder was moved on purpose) or start afresh. A state written before
states named their folder is taken as the folder's own.

A producer owns its landing folder: loading the state takes an OS lock on the sibling
``producer_state.lock`` (see `crypto_assets.folder_lock`), kept until `close` or the process ends,
so a second producer on the same folder stops before it reads or streams anything. Readers (the
replay server's continuation) open the file `read_only` and take no lock.
"""

from __future__ import annotations

import json
import logging
import os
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from pathlib import Path

from crypto_assets.errors import CryptoAssetsError
from crypto_assets.folder_lock import FolderLock
from crypto_assets.landing_files import is_landing_file
from crypto_assets.landing_record import trade_ids_by_symbol
from crypto_assets.producer.landing_writer import LandingWriteError, write_atomically
from crypto_assets.producer.producer_files import lock_path_of
from crypto_assets.producer.trade_sequencer import SymbolProgress

logger = logging.getLogger(__name__)

STATE_VERSION = 1
# Landing files this much older than the state file are still read at load: file times can be
# coarse, and reading a file the state already covers changes nothing.
_CLOCK_SLACK_NS = 2_000_000_000


class StateFolderError(CryptoAssetsError):
    """The state file names another landing folder than the one it was loaded for."""


def landing_folder_name(landing_dir: Path) -> str:
    """How a state file names a local landing folder: its absolute path, links resolved."""
    return str(Path(landing_dir).resolve())


def check_state_folder(document: dict, folder: str, path: object) -> None:
    """`StateFolderError` unless the state `document` (read from `path`) describes `folder`."""
    recorded = document.get("landing_dir") if isinstance(document, dict) else None
    if recorded is None or recorded == folder:
        return  # a state written before states named their folder: this folder's own
    raise StateFolderError(
        f"the producer state {path} describes the landing folder {recorded}, not {folder}: "
        f'if {folder} is that folder moved here, set "landing_dir" in {path} to "{folder}" '
        "to resume; to start afresh, delete that state file or pass another --state-file"
    )


def landed_highs(path: Path, landing_dir: Path, symbols: Iterable[str]) -> dict[str, int]:
    """The highest trade id landed per symbol of `symbols`, by the state file and newer files.

    A missing or unreadable state file (or landing dir), or another folder's, means nothing
    landed: ``{}``.
    """
    state = ProducerStateFile(path, landing_folder_name(landing_dir), read_only=True)
    try:
        progress = state.load(Path(landing_dir), symbols)
    except (OSError, StateFolderError) as exc:
        logger.warning("cannot use the producer state under %s (%s)", path, exc)
        return {}
    return {symbol: p.high for symbol, p in progress.items()}


class ProducerStateFile:
    """Loads and saves the landed progress per symbol of the landing folder named `folder`.

    Symbols not in use are kept unchanged. Unless `read_only`, loading or saving makes this object
    the owner of the landing folder until `close` (see the module doc); `FolderInUseError` when
    another process owns it.
    """

    def __init__(self, path: Path, folder: str, *, read_only: bool = False) -> None:
        self.path = Path(path)
        # What the saved state names (`landing_folder_name`, or a Volume's landing folder).
        self.folder = folder
        self.read_only = read_only
        self._kept: dict[str, SymbolProgress] = {}
        self._lock: FolderLock | None = None

    def load(self, landing_dir: Path, symbols: Iterable[str]) -> dict[str, SymbolProgress]:
        """The progress of `symbols`, including landing files written after the last save."""
        self._own(Path(landing_dir))
        mtime_ns = self._mtime_ns()
        try:
            progress = self._read() if mtime_ns is not None else None
        except StateFolderError:
            self.close()
            raise
        if progress is None:
            progress = {}
        elif mtime_ns is not None:
            landed = landed_ids_since(Path(landing_dir), mtime_ns - _CLOCK_SLACK_NS)
            for symbol, ids in landed.items():
                progress[symbol] = with_landed(progress.get(symbol), ids)
        wanted = set(symbols)
        self._kept = {s: p for s, p in progress.items() if s not in wanted}
        return {s: p for s, p in progress.items() if s in wanted}

    def save(self, progress: Mapping[str, SymbolProgress]) -> None:
        """Write `progress` (plus the symbols kept from the loaded file) atomically."""
        if self.read_only:
            raise ValueError(f"{self.path} was opened read-only")
        self._own(self.path.parent)
        merged = {**self._kept, **progress}
        document = {
            "version": STATE_VERSION,
            "landing_dir": self.folder,
            "symbols": {
                symbol: {"landed_high": p.high, "missing": [list(r) for r in p.missing]}
                for symbol, p in sorted(merged.items())
            },
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(self.path.parent, self.path.name, [json.dumps(document)])
        except OSError as exc:
            raise LandingWriteError(
                f"cannot write the producer state file {self.path}: {exc.strerror or exc} "
                "(fix the permissions or choose another --state-file)",
                exc.errno,
            ) from exc

    def own(self, landing_dir: Path) -> None:
        """Take the landing folder's lock now (`FolderInUseError` if another producer holds it)."""
        self._own(Path(landing_dir))

    def close(self) -> None:
        """Release the landing folder's lock (another producer may start); saving re-takes it."""
        if self._lock is not None:
            self._lock.release()

    def _own(self, landing_dir: Path) -> None:
        """Hold the landing folder's lock (a no-op once held, or when read-only)."""
        if self.read_only:
            return
        if self._lock is None:
            self._lock = _producer_lock(self.path, landing_dir)
        try:
            self._lock.acquire()
        except OSError as exc:
            raise LandingWriteError(
                f"cannot write the producer state file {self.path} (its lock "
                f"{self._lock.lock_path}): {exc.strerror or exc} "
                "(fix the permissions or choose another --state-file)",
                exc.errno,
            ) from exc

    def _mtime_ns(self) -> int | None:
        try:
            return self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return None

    def _read(self) -> dict[str, SymbolProgress] | None:
        """The saved progress; None (after a one-line warning) when the file is unusable.

        `StateFolderError` when it describes another landing folder.
        """
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
            progress = parse_state(document)
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            logger.warning(
                "producer state file %s is unreadable (%s): starting afresh", self.path, exc
            )
            return None
        check_state_folder(document, self.folder, self.path)
        return progress


def _producer_lock(state_path: Path, landing_dir: Path) -> FolderLock:
    return FolderLock(
        lock_path_of(state_path),
        landing_dir,
        kind="landing folder",
        owner="another producer",
        advice="stop that producer first, or give this one another landing folder",
    )


def parse_state(document: dict) -> dict[str, SymbolProgress]:
    """The progress per symbol of a state document; ValueError (or KeyError...) if malformed."""
    if document.get("version") != STATE_VERSION:
        raise ValueError(f"version {document.get('version')!r}, expected {STATE_VERSION}")
    progress = {}
    for symbol, entry in document["symbols"].items():
        high = entry["landed_high"]
        missing = tuple((first, last) for first, last in entry["missing"])
        numbers = [high, *(i for r in missing for i in r)]
        if not all(type(n) is int for n in numbers):
            raise ValueError(f"{symbol}: trade ids must be integers")
        if any(not first <= last <= high for first, last in missing):
            raise ValueError(f"{symbol}: missing ranges must lie at or below landed_high")
        progress[str(symbol)] = SymbolProgress(high, missing)
    return progress


def landed_ids_since(landing_dir: Path, since_ns: int) -> dict[str, list[int]]:
    """Trade ids by symbol in the visible landing files modified at or after `since_ns`."""
    landed: dict[str, list[int]] = {}
    try:
        entries = list(os.scandir(landing_dir))
    except FileNotFoundError:
        return landed
    for entry in entries:
        if not is_landing_file(entry.name):
            continue
        if entry.stat().st_mtime_ns < since_ns:
            continue
        try:
            with open(entry.path, encoding="utf-8") as lines:
                ids = trade_ids_by_symbol(lines)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("cannot read landing file %s (%s): not counted as landed", entry, exc)
            continue
        for symbol, symbol_ids in ids.items():
            landed.setdefault(symbol, []).extend(symbol_ids)
    return landed


def with_landed(progress: SymbolProgress | None, ids: Iterable[int]) -> SymbolProgress:
    """`progress` after the trades `ids` landed: holes they fill close, ids skipped become holes."""
    landed = sorted(set(ids))
    if not landed:
        raise ValueError("no trade ids")
    if progress is None:
        progress = SymbolProgress(landed[0])
    missing = list(progress.missing)
    if landed[-1] > progress.high:
        missing.append((progress.high + 1, landed[-1]))
    return SymbolProgress(max(progress.high, landed[-1]), _without(missing, landed))


def _without(ranges: list[tuple[int, int]], landed: list[int]) -> tuple[tuple[int, int], ...]:
    """The id ranges minus the sorted ids `landed`."""
    result = []
    for first, last in sorted(ranges):
        start = first
        for trade_id in landed[bisect_left(landed, first) :]:
            if trade_id > last:
                break
            if trade_id > start:
                result.append((start, trade_id - 1))
            start = trade_id + 1
        if start <= last:
            result.append((start, last))
    return tuple(result)
