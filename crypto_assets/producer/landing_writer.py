"""Batches of NDJSON lines to atomic landing files, and rejected frames to the quarantine.

Every file is written under a hidden name (``.trades_….json.tmp``: Spark's file source and Auto
Loader skip names starting with ``.``), flushed, fsynced and renamed into place, then the directory
is fsynced, so a reader never sees a partial file and a crash never leaves one visible.

A full disk (ENOSPC, or a quota: EDQUOT) does not stop the writer: it keeps what it could not
write, retries with a small backoff, and holds at most `max_pending_trades` trades; beyond that it
drops the oldest, says exactly which (symbol and trade id ranges) and hands those ranges to
`on_dropped`, which makes them gaps for REST to back-fill once files can be written again. Any
other write error (a folder removed or read-only, permissions) is a `LandingWriteError`.
"""

from __future__ import annotations

import errno
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from crypto_assets import durable_files
from crypto_assets.errors import CryptoAssetsError
from crypto_assets.landing_files import landing_file_name
from crypto_assets.landing_record import trade_ids_by_symbol

logger = logging.getLogger(__name__)

# Errors that go away when space is freed: the writer waits for them instead of failing.
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_FIRST_RETRY_SECONDS = 0.5
_MAX_RETRY_SECONDS = 5.0
# Rejected frames kept while the quarantine cannot be written; beyond it the oldest are dropped.
MAX_PENDING_REJECTED = 10_000
# Ranges listed per symbol in a drop report; the rest are summed up.
_RANGES_SHOWN = 8

TradeIdRanges = Mapping[str, list[tuple[int, int]]]


class LandingWriteError(CryptoAssetsError):
    """A landing or quarantine file cannot be written (permissions, disk full, ...)."""

    def __init__(self, message: str, errno_code: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno_code

    @property
    def disk_full(self) -> bool:
        """Whether the cause is a full disk or quota (it may pass once space is freed)."""
        return self.errno in DISK_FULL_ERRNOS


def write_atomically(directory: Path, name: str, lines: list[str]) -> Path:
    """Write `lines` as NDJSON to ``directory/name`` so that it appears complete or not at all
    (`durable_files.write_atomically`: a failed write leaves no temporary behind)."""
    return durable_files.write_atomically(directory, name, "\n".join(lines) + "\n")


def trade_id_ranges(ids: Iterable[int]) -> list[tuple[int, int]]:
    """Contiguous inclusive ranges covering exactly `ids`, in order."""
    ranges: list[tuple[int, int]] = []
    for trade_id in sorted(set(ids)):
        if ranges and trade_id == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], trade_id)
        else:
            ranges.append((trade_id, trade_id))
    return ranges


def merge_ranges(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Inclusive id ranges sorted, with overlapping or adjacent ones joined."""
    merged: list[tuple[int, int]] = []
    for first, last in sorted(ranges):
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return merged


def describe_ranges(ranges: TradeIdRanges) -> str:
    """``BTCUSDT 120 trades (ids 5..99, 200..224); ETHUSDT ...`` for log lines."""
    parts = []
    for symbol, symbol_ranges in sorted(ranges.items()):
        merged = merge_ranges(symbol_ranges)
        count = sum(last - first + 1 for first, last in merged)
        shown = ", ".join(f"{first}..{last}" for first, last in merged[:_RANGES_SHOWN])
        more = len(merged) - _RANGES_SHOWN
        suffix = f" and {more} more ranges" if more > 0 else ""
        parts.append(f"{symbol} {count} trades (ids {shown}{suffix})")
    return "; ".join(parts) or "none"


def ranges_of_lines(lines: Iterable[str]) -> dict[str, list[tuple[int, int]]]:
    """The trade id ranges per symbol of NDJSON landing lines (the rare drop path parses them)."""
    ids = trade_ids_by_symbol(lines)
    return {symbol: trade_id_ranges(symbol_ids) for symbol, symbol_ids in ids.items()}


def _merge_into(target: dict[str, list[tuple[int, int]]], ranges: TradeIdRanges) -> None:
    for symbol, symbol_ranges in ranges.items():
        target[symbol] = merge_ranges([*target.get(symbol, []), *symbol_ranges])


class LandingWriter:
    """Collects trade lines and rejected frames; writes a file per batch (by size or by age)."""

    def __init__(
        self,
        landing_dir: Path,
        quarantine_dir: Path,
        batch_interval_seconds: float = 5.0,
        max_trades_per_batch: int = 1000,
        clock: Callable[[], float] = time.monotonic,
        *,
        on_landed: Callable[[Path], None] | None = None,
        max_pending_trades: int = 200_000,
        on_dropped: Callable[[TradeIdRanges], None] | None = None,
        report_interval_seconds: float = 10.0,
    ) -> None:
        if max_pending_trades < max_trades_per_batch:
            raise ValueError(
                f"max_pending_trades={max_pending_trades} must be at least "
                f"max_trades_per_batch={max_trades_per_batch}"
            )
        self.landing_dir = Path(landing_dir)
        self.quarantine_dir = Path(quarantine_dir)
        self.batch_interval_seconds = batch_interval_seconds
        self.max_trades_per_batch = max_trades_per_batch
        self.max_pending_trades = max_pending_trades
        self.report_interval_seconds = report_interval_seconds
        self._clock = clock
        # Called after a landing file is visible with nothing pending: every trade added so far
        # (and not dropped) is then landed.
        self.on_landed = on_landed
        # Called with the trade id ranges of dropped trades, at once (before any later landing).
        self.on_dropped = on_dropped
        self._lines: list[str] = []
        self._rejected: list[str] = []
        self._last_flush = clock()
        self.trades_written = 0
        self.files_written = 0
        self.quarantined = 0
        self.quarantine_files = 0
        self.dropped_trades = 0
        self.dropped_rejected = 0
        self.disk_full_episodes = 0
        self._full_seconds_before = 0.0  # of the episodes that ended
        self._blocked_since: float | None = None
        self._retry_delay = _FIRST_RETRY_SECONDS
        self._retry_at = 0.0
        self._next_report = 0.0
        self._unreported: dict[str, list[tuple[int, int]]] = {}  # dropped since the last line
        self._episode_dropped: dict[str, list[tuple[int, int]]] = {}
        self._quarantine_blocked = False
        try:
            self.landing_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LandingWriteError(
                f"cannot create the landing directory {self.landing_dir}: {exc.strerror or exc}",
                exc.errno,
            ) from exc

    @property
    def pending(self) -> int:
        """Trade lines received but not yet in a visible file."""
        return len(self._lines)

    @property
    def disk_full(self) -> bool:
        """Whether landing files cannot be written for lack of space right now."""
        return self._blocked_since is not None

    @property
    def disk_full_seconds(self) -> float:
        """Seconds spent unable to write for lack of space, over the writer's life."""
        current = 0.0 if self._blocked_since is None else self._clock() - self._blocked_since
        return self._full_seconds_before + current

    def pending_ranges(self) -> dict[str, list[tuple[int, int]]]:
        """The trade id ranges per symbol of the pending lines (for a report at stop)."""
        return ranges_of_lines(self._lines)

    def add(self, line: str) -> None:
        """Queue one NDJSON trade line; writes a file as soon as the batch is full."""
        lines = self._lines
        lines.append(line)
        if len(lines) >= self.max_trades_per_batch:
            if self._blocked_since is None:
                self._write_trades()
            elif len(lines) > self.max_pending_trades:
                self._drop_oldest()

    def reject(self, raw: str, reason: str, detail: str, received_ms: int) -> None:
        """Queue a rejected frame, raw and with its reason, for the quarantine directory."""
        self._rejected.append(
            json.dumps(
                {"received_time": received_ms, "reason": reason, "detail": detail, "raw": raw},
                ensure_ascii=False,
            )
        )
        self.quarantined += 1
        if len(self._rejected) > MAX_PENDING_REJECTED:
            excess = len(self._rejected) - MAX_PENDING_REJECTED
            del self._rejected[:excess]
            self.dropped_rejected += excess

    def flush_if_due(self) -> None:
        """Write the pending batch when it is older than the batch interval.

        While the disk is full: retry when the backoff allows, and report at most once per
        report interval.
        """
        now = self._clock()
        if self._blocked_since is not None:
            if now >= self._retry_at:
                self.flush()
            if self._blocked_since is not None and now >= self._next_report:
                self._report_still_full(now)
        elif now - self._last_flush >= self.batch_interval_seconds:
            self.flush()

    def flush(self) -> None:
        """Write every pending trade and rejected frame now (a full disk leaves them pending)."""
        if self._lines:
            self._write_trades()
        if self._rejected:
            self._write_quarantine()
        self._last_flush = self._clock()

    def _write_quarantine(self) -> None:
        try:
            self.quarantine_dir.mkdir(parents=True, exist_ok=True)
            path = write_atomically(
                self.quarantine_dir,
                landing_file_name(time.time(), prefix="quarantine"),
                self._rejected,
            )
        except OSError as exc:
            message = (
                f"cannot write a quarantine file in {self.quarantine_dir}: {exc.strerror or exc}"
            )
            if exc.errno not in DISK_FULL_ERRNOS:
                raise LandingWriteError(message, exc.errno) from exc
            if not self._quarantine_blocked:
                logger.warning(
                    "quarantine disk full: %s; keeping up to %s rejected frames in memory and "
                    "retrying at each flush",
                    message,
                    MAX_PENDING_REJECTED,
                )
                self._quarantine_blocked = True
            return
        if self._quarantine_blocked:
            logger.warning(
                "quarantine writable again; %s rejected frames were dropped meanwhile "
                "(their trades, if any, are gaps REST back-fills)",
                self.dropped_rejected,
            )
            self._quarantine_blocked = False
        logger.warning("quarantined %s frames in %s", len(self._rejected), path)
        self._rejected = []
        self.quarantine_files += 1

    def _write_trades(self) -> None:
        """Write the pending lines in files of at most `max_trades_per_batch` lines."""
        lines = self._lines
        size = self.max_trades_per_batch
        done = 0
        path: Path | None = None
        try:
            while done < len(lines):
                chunk = lines[done : done + size]
                path = write_atomically(self.landing_dir, landing_file_name(time.time()), chunk)
                done += len(chunk)
                self.trades_written += len(chunk)
                self.files_written += 1
                logger.debug("landed %s trades in %s", len(chunk), path.name)
        except OSError as exc:
            del lines[:done]
            message = f"cannot write a landing file in {self.landing_dir}: {exc.strerror or exc}"
            if exc.errno not in DISK_FULL_ERRNOS:
                # The batch stays pending: a later flush may succeed.
                raise LandingWriteError(message, exc.errno) from exc
            self._disk_is_full(message)
            return
        self._lines = []
        self._last_flush = self._clock()
        if self._blocked_since is not None:
            self._disk_is_back()
        if self.on_landed is not None and path is not None:
            self.on_landed(path)

    def _disk_is_full(self, message: str) -> None:
        now = self._clock()
        if self._blocked_since is None:
            self._blocked_since = now
            self._retry_delay = _FIRST_RETRY_SECONDS
            self._next_report = now + self.report_interval_seconds
            self.disk_full_episodes += 1
            logger.warning(
                "landing disk full: %s; keeping up to %s trades in memory (%s now) and retrying; "
                "beyond that the oldest are dropped and back-filled from REST once space returns",
                message,
                self.max_pending_trades,
                len(self._lines),
            )
        else:
            self._retry_delay = min(self._retry_delay * 2, _MAX_RETRY_SECONDS)
        self._retry_at = now + self._retry_delay
        if len(self._lines) > self.max_pending_trades:
            self._drop_oldest()

    def _disk_is_back(self) -> None:
        now = self._clock()
        seconds = now - (self._blocked_since or now)
        self._full_seconds_before += seconds
        self._blocked_since = None
        self._unreported = {}
        dropped = self._episode_dropped
        self._episode_dropped = {}
        logger.warning(
            "landing disk writable again after %.1f s: pending trades landed; dropped while full: "
            "%s%s",
            seconds,
            describe_ranges(dropped),
            " (gaps now, REST back-fills them)" if dropped else "",
        )

    def _report_still_full(self, now: float) -> None:
        self._next_report = now + self.report_interval_seconds
        dropped = self._unreported
        self._unreported = {}
        logger.warning(
            "landing disk still full after %.0f s (%s): %s trades pending (bound %s), %s dropped "
            "in all; dropped since the last line: %s",
            now - (self._blocked_since or now),
            self.landing_dir,
            len(self._lines),
            self.max_pending_trades,
            self.dropped_trades,
            describe_ranges(dropped),
        )

    def _drop_oldest(self) -> None:
        """Drop the oldest pending lines: the excess plus a tenth of the bound (fewer drops)."""
        lines = self._lines
        count = min(
            len(lines),
            max(len(lines) - self.max_pending_trades, self.max_pending_trades // 10, 1),
        )
        ranges = ranges_of_lines(lines[:count])
        del lines[:count]
        self.dropped_trades += count
        _merge_into(self._unreported, ranges)
        _merge_into(self._episode_dropped, ranges)
        if self.on_dropped is not None:
            self.on_dropped(ranges)
