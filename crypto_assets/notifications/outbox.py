"""The durable queue between the process that finds alerts and the one that sends them.

Layout of the outbox folder::

    pending/<batch>.json              staged: the batch that found them may not have committed
    ready/<seq>_<batch>.json          released: to be sent; <seq> is 12 zero-padded digits
    ledger.jsonl                      what was attempted and sent, per channel and key

A batch stages its notifications before it commits and releases them after, so alerts of a batch
that never commits are never sent, and alerts of one that did are never lost. Files appear by an
atomic rename (written to a hidden temporary, fsynced, renamed, directory fsynced), so a reader
sees a whole file or none. One process at a time delivers from a folder (the ledger is not
shared); any number may stage and release.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

from crypto_assets.durable_files import fsync_directory, write_atomically
from crypto_assets.errors import CryptoAssetsError
from crypto_assets.notifications.message import Notification

logger = logging.getLogger(__name__)

_BATCH = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
_READY = re.compile(r"(\d{12})_(.+)\.json")
LEDGER_KEEP = 10_000


class Outbox:
    """Notifications staged, released and delivered through the files of `folder`.

    Ready entries are sent in release order: `release` names the file with the next sequence
    number (one more than the highest ready now), and `ready` lists files by name. Name order
    does not depend on file times, which a copy, a restore or a clock step can change.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.pending_dir = self.folder / "pending"
        self.ready_dir = self.folder / "ready"
        self.pending_dir.mkdir(parents=True, exist_ok=True)
        self.ready_dir.mkdir(parents=True, exist_ok=True)

    @property
    def ledger_path(self) -> Path:
        """The ledger file of this outbox (see `Ledger`)."""
        return self.folder / "ledger.jsonl"

    def stage(self, batch: str, notifications: Sequence[Notification]) -> Path:
        """Write `notifications` as ``pending/<batch>.json``, replacing an earlier staging of
        `batch`; they are not sent until `release`. Returns the file."""
        document = {
            "batch": _checked_batch(batch),
            "notifications": [
                {"key": n.key, "payload": n.payload, "text": n.text} for n in notifications
            ],
        }
        text = json.dumps(document, allow_nan=False, separators=(",", ":"))
        return write_atomically(self.pending_dir, f"{batch}.json", text + "\n")

    def stage_more(self, batch: str, notifications: Sequence[Notification]) -> Path:
        """`stage` `batch` with what is staged for it already plus `notifications` (by key).

        For a batch re-run after a crash: what its first attempt staged and committed no longer
        looks new to the re-run, yet was never released.
        """
        by_key = {n.key: n for n in self.staged_notifications(batch)}
        by_key.update((n.key, n) for n in notifications)
        return self.stage(batch, list(by_key.values()))

    def staged_notifications(self, batch: str) -> list[Notification]:
        """The notifications staged for `batch` (none when nothing is)."""
        path = self.pending_dir / f"{_checked_batch(batch)}.json"
        try:
            return _read_notifications(path)
        except FileNotFoundError:
            return []

    def release(self, batch: str) -> bool:
        """Make the staged `batch` ready to send (an atomic rename); False if none is staged.

        Releasing a batch again (staged again after its first release) adds a second ready
        entry: its notifications already sent are skipped by the ledger, by key.
        """
        source = self.pending_dir / f"{_checked_batch(batch)}.json"
        if not source.exists():
            return False
        target = self.ready_dir / f"{self._next_sequence():012d}_{batch}.json"
        try:
            os.rename(source, target)
        except FileNotFoundError:
            return False  # released or discarded by another process meanwhile
        fsync_directory(self.ready_dir)
        fsync_directory(self.pending_dir)
        return True

    def discard(self, batch: str) -> None:
        """Forget the staged `batch` (its batch failed): its notifications are never sent."""
        (self.pending_dir / f"{_checked_batch(batch)}.json").unlink(missing_ok=True)

    def staged(self) -> list[str]:
        """The batches staged and neither released nor discarded, by name."""
        return sorted(
            path.stem for path in self.pending_dir.glob("*.json") if not path.name.startswith(".")
        )

    def ready(self) -> list[tuple[str, list[Notification]]]:
        """Every ready entry, oldest release first: (entry id, its notifications).

        The entry id is the file's name without ``.json`` (``000000000007_app-uuid_42``); pass
        it to `done`. An entry removed meanwhile (by another deliverer) is left out.
        """
        entries = []
        for name in sorted(os.listdir(self.ready_dir)):
            if not _READY.fullmatch(name):
                continue
            path = self.ready_dir / name
            try:
                entries.append((path.stem, _read_notifications(path)))
            except FileNotFoundError:
                continue
        return entries

    def done(self, entry: str) -> None:
        """Remove the ready entry once every notification in it was sent on every channel.

        Not fsynced: if a crash undoes the removal, the entry comes back and the ledger skips
        what it holds.
        """
        (self.ready_dir / f"{entry}.json").unlink(missing_ok=True)

    def _next_sequence(self) -> int:
        numbers = [
            int(match.group(1))
            for match in map(_READY.fullmatch, os.listdir(self.ready_dir))
            if match
        ]
        return max(numbers, default=0) + 1


class Ledger:
    """Which notification was attempted and which sent, per channel name and key, on disk.

    Each event is one JSON line (``{"channel": ..., "key": ..., "event": ...}``), appended,
    flushed and fsynced before the caller goes on; events are ``attempt`` (a send starts),
    ``sent`` (it succeeded) and ``failed`` (it surely did not arrive). An ``attempt`` with
    neither after it is a send a crash interrupted: the receiver may have it, so the next send
    of that key is a repeat. The file is read once, when the ledger is made (a torn last line,
    from a crash while writing, is cut off). It stays bounded: past twice `keep` lines per
    channel (plus the interrupted attempts) it is rewritten, atomically, with the newest `keep`
    sent keys of each channel and the interrupted attempts. Older keys are forgotten: a
    notification released again after more than `keep` newer ones were sent is sent again.
    """

    def __init__(self, path: Path, keep: int = LEDGER_KEEP) -> None:
        self.path = Path(path)
        self.keep = keep
        # channel -> key -> "attempt" | "failed" | "sent"; sent keys in the order they were sent
        self._state: dict[str, dict[str, str]] = {}
        self._lines = 0
        self._kept_attempts = 0
        self._load()

    @property
    def lines(self) -> int:
        """How many lines the file holds now."""
        return self._lines

    def is_sent(self, channel: str, key: str) -> bool:
        """Whether `key` was sent on `channel` (and is still remembered)."""
        return self._state.get(channel, {}).get(key) == "sent"

    def attempted_unsent(self, channel: str, key: str) -> bool:
        """Whether a send of `key` on `channel` started and has no recorded outcome."""
        return self._state.get(channel, {}).get(key) == "attempt"

    def record_attempt(self, channel: str, key: str) -> None:
        """Record, durably, that a send of `key` on `channel` starts now."""
        self._append(channel, key, "attempt")

    def record_sent(self, channel: str, key: str) -> None:
        """Record, durably, that `key` was delivered on `channel`."""
        self._append(channel, key, "sent")

    def record_failed(self, channel: str, key: str) -> None:
        """Record that the send of `key` on `channel` surely did not arrive (so its retry is
        not a repeat)."""
        self._append(channel, key, "failed")

    def _apply(self, channel: str, key: str, event: str) -> None:
        keys = self._state.setdefault(channel, {})
        if keys.get(key) == "sent":
            return
        keys.pop(key, None)  # re-inserted at the end: the newest sent keys come last
        keys[key] = event

    def _append(self, channel: str, key: str, event: str) -> None:
        line = json.dumps({"channel": channel, "key": key, "event": event}, separators=(",", ":"))
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self._apply(channel, key, event)
        self._lines += 1
        if self._lines > self._limit():
            self._compact()

    def _limit(self) -> int:
        """Lines past which to compact: twice `keep` per channel, plus the interrupted attempts
        the last compaction kept (so a compaction never follows the previous one at once)."""
        return 2 * self.keep * max(1, len(self._state)) + self._kept_attempts

    def _load(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        complete = data.rfind(b"\n") + 1
        if complete < len(data):  # a torn line: appending after it would spoil the next one
            logger.warning("notification ledger %s: dropping a torn last line", self.path)
            with open(self.path, "r+b") as handle:
                handle.truncate(complete)
                os.fsync(handle.fileno())
        for raw in data[:complete].splitlines():
            self._lines += 1
            try:
                record = json.loads(raw)
                self._apply(str(record["channel"]), str(record["key"]), str(record["event"]))
            except (ValueError, KeyError, TypeError):
                logger.warning("notification ledger %s: skipping an unreadable line", self.path)
        if self._lines > self._limit():
            self._compact()

    def _compact(self) -> None:
        records: list[tuple[str, str, str]] = []
        for channel, keys in self._state.items():
            sent = [key for key, event in keys.items() if event == "sent"][-self.keep :]
            interrupted = [key for key, event in keys.items() if event == "attempt"]
            records += [(channel, key, "attempt") for key in interrupted]
            records += [(channel, key, "sent") for key in sent]
        lines = [
            json.dumps({"channel": c, "key": k, "event": e}, separators=(",", ":")) + "\n"
            for c, k, e in records
        ]
        write_atomically(self.path.parent, self.path.name, "".join(lines))
        self._state = {}
        for channel, key, event in records:
            self._apply(channel, key, event)
        self._lines = len(lines)
        self._kept_attempts = sum(1 for record in records if record[2] == "attempt")


def _read_notifications(path: Path) -> list[Notification]:
    """The notifications of an outbox file; FileNotFoundError when it is gone."""
    text = path.read_text(encoding="utf-8")
    try:
        document = json.loads(text)
        return [Notification(**item) for item in document["notifications"]]
    except (ValueError, KeyError, TypeError) as error:
        raise CryptoAssetsError(
            f"notification outbox file {path} is unreadable ({error}): "
            "move it away to send the rest"
        ) from error


def _checked_batch(batch: str) -> str:
    if not _BATCH.fullmatch(batch):
        raise ValueError(f"batch id {batch!r} is not a file name of letters, digits, '.', '_', '-'")
    return batch
