"""The producer: websocket frames → parse → sequencer (exactly once) → landing files.

One consumer loop in the caller's thread takes received frames from the transport in batches;
the transport's threads only read sockets. On stop (or at the end of the duration) everything
received is landed before `run` returns: nothing received is lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from crypto_assets.binance.parsing import (
    SERVER_SHUTDOWN,
    ControlFrame,
    Rejection,
    TradeRecord,
    parse_frame,
)
from crypto_assets.binance.rest_client import BinanceRestClient
from crypto_assets.binance.stream_client import (
    UNREACHABLE_ADVICE,
    StreamClient,
    StreamUnavailableError,
    combined_stream_url,
)
from crypto_assets.producer.gap_filler import GapFiller
from crypto_assets.producer.landing_target import StateFile
from crypto_assets.producer.landing_writer import (
    LandingWriteError,
    LandingWriter,
    TradeIdRanges,
    describe_ranges,
)
from crypto_assets.producer.producer_files import ProducerFiles
from crypto_assets.producer.producer_state import ProducerStateFile, landing_folder_name
from crypto_assets.producer.trade_sequencer import SymbolProgress, TradeSequencer
from crypto_assets.settings import SettingsError, check_setting, setting_default

if TYPE_CHECKING:
    from crypto_assets.producer.landing_target import LandingUpload, ProducerState

logger = logging.getLogger(__name__)

_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
# How often the loop looks at the clock for flushes, gaps, progress and the deadline.
_TICK_SECONDS = 0.1
_DRAIN_PER_TICK = 5000
# Trades held in memory while the landing disk is full: minutes of a busy market (~250 B each).
DEFAULT_MAX_PENDING_TRADES = 200_000
# How often a progress line is logged (and `on_progress` called), unless told.
DEFAULT_PROGRESS_SECONDS = 10.0
# The configuration's fields that are settings: checked by the setting's own field (its bounds and
# validators, crypto_assets.settings), and defaulting to its default.
_SETTINGS_FIELDS = {
    "ws_url": "binance_ws_url",
    "pairs": "trading_pairs",
    "batch_interval_seconds": "batch_interval_seconds",
    "max_trades_per_batch": "max_trades_per_batch",
}


def default_rest_url(ws_url: str, binance_rest_url: str) -> str:
    """REST base for `ws_url`: on loopback the same host:port over http(s), else the given one."""
    parts = urlsplit(ws_url)
    if parts.hostname in _LOOPBACK_HOSTS:
        scheme = "https" if parts.scheme == "wss" else "http"
        return f"{scheme}://{parts.netloc}"
    return binance_rest_url


@dataclass(frozen=True)
class ProducerConfig:
    """What the producer connects to, where it lands files, and its timings (seconds).

    `ws_url`, `pairs`, `batch_interval_seconds` and `max_trades_per_batch` are settings
    (BINANCE_WS_URL, TRADING_PAIRS, BATCH_INTERVAL_SECONDS, MAX_TRADES_PER_BATCH): their defaults
    and bounds are the `Settings` fields'. The rest are the producer's own.
    """

    ws_url: str
    pairs: tuple[str, ...]
    landing_dir: Path
    rest_url: str | None = None
    quarantine_dir: Path | None = None
    batch_interval_seconds: float = setting_default("batch_interval_seconds")
    max_trades_per_batch: int = setting_default("max_trades_per_batch")
    # Trades held in memory while the landing disk is full (minutes of a busy market); beyond it
    # the oldest are dropped, reported and back-filled from REST once space returns. None: the
    # default, or a whole batch if batches are bigger (see `pending_bound`).
    max_pending_trades: int | None = None
    duration_seconds: float | None = None
    silence_timeout: float = 60.0
    max_connection_age: float = 23.5 * 3600
    connect_timeout: float = 10.0
    gap_grace_seconds: float = 1.5
    max_gap_fill_trades: int = 100_000
    min_reconnect_interval: float = 1.0
    max_consecutive_failures: int = 10
    # How often a progress line is logged and `on_progress` called.
    progress_interval_seconds: float = DEFAULT_PROGRESS_SECONDS
    # Whether this module logs the progress line; off where the caller writes it elsewhere (the
    # Dagster op puts it in the run's log, which `crypto-assets run` prints as well).
    log_progress: bool = True
    # At stop, ask REST for trades after the last id seen (lost in flight by a late drop).
    fill_tail_on_stop: bool = True
    source: str | None = None  # a label for the summary: live, replay; None: the ws_url
    # What was landed, so that a restarted producer back-fills the trades it missed meanwhile.
    # None: no state, the first trade of each symbol is the baseline.
    state_path: Path | StateFile | None = StateFile.BESIDE_LANDING
    # Where this feed resumes, given what earlier runs landed (a feed that begins a new market
    # segment has nothing to back-fill). None: where they stopped; the ids since are back-filled.
    resume: Callable[[Mapping[str, SymbolProgress]], Mapping[str, SymbolProgress]] | None = None

    def __post_init__(self) -> None:
        for name, setting in _SETTINGS_FIELDS.items():
            check_setting(setting, getattr(self, name), name)
        for name in ("silence_timeout", "max_connection_age", "progress_interval_seconds"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{name}={getattr(self, name)!r}: must be greater than zero")
        if self.max_pending_trades is not None and (
            self.max_pending_trades < self.max_trades_per_batch
        ):
            raise SettingsError(
                f"max_pending_trades={self.max_pending_trades!r}: must be ≥ max_trades_per_batch "
                f"({self.max_trades_per_batch})"
            )
        if self.duration_seconds is not None and self.duration_seconds <= 0:
            raise SettingsError(f"duration_seconds={self.duration_seconds!r}: must be > 0 or None")

    @property
    def pending_bound(self) -> int:
        """`max_pending_trades`, else the default bound (at least one whole batch)."""
        if self.max_pending_trades is not None:
            return self.max_pending_trades
        return max(DEFAULT_MAX_PENDING_TRADES, self.max_trades_per_batch)

    @property
    def resolved_quarantine_dir(self) -> Path:
        """The landing folder's quarantine (`ProducerFiles.quarantine_dir`) unless set."""
        return self.quarantine_dir or ProducerFiles.of(self.landing_dir).quarantine_dir

    @property
    def resolved_state_path(self) -> Path | None:
        """The landing folder's state file (`ProducerFiles.state_path`) by default; None: none."""
        if self.state_path is StateFile.BESIDE_LANDING:
            return ProducerFiles.of(self.landing_dir).state_path
        return None if self.state_path is None else Path(self.state_path)


@dataclass(frozen=True)
class ProducerStats:
    """Counters of a run so far; `per_symbol` counts landed (or pending) trades by symbol."""

    trades: int
    files: int
    quarantined: int
    duplicates_dropped: int
    gaps_filled: int
    gaps_unfilled: int
    reconnects: int
    seconds: float
    per_symbol: Mapping[str, int] = field(default_factory=dict)
    gaps_filled_from_rest: int = 0
    gaps_pending: int = 0
    trades_landed: int = 0  # in visible landing files; `trades` also counts the open batch
    pending_trades: int = 0  # received, not yet in a visible file (the open batch, a full disk)
    dropped_trades: int = 0  # dropped unlanded because the disk stayed full (REST back-fills)
    disk_full_seconds: float = 0.0  # time the landing disk was full, this run
    disk_full: bool = False  # the landing disk is full right now

    def _disk_text(self) -> str:
        if not (self.disk_full or self.dropped_trades or self.disk_full_seconds):
            return ""
        now = "full now" if self.disk_full else "writable"
        return (
            f"; landing disk {now}, full for {self.disk_full_seconds:.0f} s in all, "
            f"{self.pending_trades} trades pending, {self.dropped_trades} dropped unlanded "
            "(made gaps for REST back-fill)"
        )

    def progress_line(self, previous: ProducerStats | None = None) -> str:
        """Progress in one line for a terminal; the rate is since `previous` (else the start)."""
        symbols = ", ".join(f"{s} {n}" for s, n in sorted(self.per_symbol.items())) or "none"
        trades = self.trades - (previous.trades if previous else 0)
        seconds = self.seconds - (previous.seconds if previous else 0.0)
        rate = trades / seconds if seconds > 0 else 0.0
        return (
            f"progress after {self.seconds:.0f} s: {self.trades_landed} trades landed in "
            f"{self.files} files, {self.trades - self.trades_landed} more in the open batch "
            f"({symbols} received), {rate:.1f} trades/s, gaps: {self.gaps_filled} trades filled, "
            f"{self.gaps_pending} pending, {self.gaps_unfilled} unfilled; "
            f"reconnects {self.reconnects}{self._disk_text()}"
        )


@dataclass(frozen=True)
class ProducerSummary(ProducerStats):
    """The result of a finished run, with the kind of source it read (live or replay)."""

    source: str = "live"
    # Whether the run ended on a stop request (`stop()`, a stop event, a Dagster termination)
    # rather than at the end of its duration.
    stopped: bool = False

    def summary_line(self) -> str:
        """The run in one line, for the CLI and logs."""
        symbols = ", ".join(f"{s} {n}" for s, n in sorted(self.per_symbol.items())) or "none"
        return (
            f"produced {self.trades} trades ({symbols}) in {self.files} files in "
            f"{self.seconds:.1f} s from {self.source}; quarantined {self.quarantined}, "
            f"duplicates dropped {self.duplicates_dropped}, gap trades filled {self.gaps_filled}, "
            f"unfilled {self.gaps_unfilled}, reconnects {self.reconnects}{self._disk_text()}"
        )


class Producer:
    """Streams trades of `config.pairs` into landing files until stopped or the duration ends.

    With `upload`, `config.landing_dir` is a local spool whose files `upload` moves to their
    destination (a Unity Catalog Volume), and the state lives there too (`landing_target`).
    """

    def __init__(
        self,
        config: ProducerConfig,
        on_progress: Callable[[ProducerStats], None] | None = None,
        *,
        upload: LandingUpload | None = None,
    ) -> None:
        self.config = config
        self.on_progress = on_progress
        self.upload = upload
        self._stop = threading.Event()
        self._stop_requested = False
        self._symbols = frozenset(p.upper() for p in config.pairs)
        self._per_symbol: dict[str, int] = {}
        self._started = time.monotonic()
        self.sequencer = TradeSequencer(grace_seconds=config.gap_grace_seconds)
        state_path = config.resolved_state_path
        self.state: ProducerState | None = None
        if upload is not None:
            if Path(config.landing_dir) != upload.spool_dir or state_path != upload.state_path:
                raise SettingsError(
                    f"landing_dir={config.landing_dir}, state_path={state_path}: a Volume upload "
                    f"lands in its spool {upload.spool_dir}, its state at {upload.state_path}"
                )
            # The local copy is uploaded as the Volume's state: it names the Volume's folder.
            local = ProducerStateFile(state_path, upload.destination)
            self.state = upload.producer_state(local)
        elif state_path is not None:
            folder = landing_folder_name(config.landing_dir)
            self.state = ProducerStateFile(state_path, folder)
        self.writer = LandingWriter(
            Path(config.landing_dir),
            config.resolved_quarantine_dir,
            config.batch_interval_seconds,
            config.max_trades_per_batch,
            on_landed=None if self.state is None else self._save_state,
            max_pending_trades=config.pending_bound,
            on_dropped=self._dropped,
            report_interval_seconds=config.progress_interval_seconds,
        )
        self._state_save_failing = False
        rest = BinanceRestClient(config.rest_url) if config.rest_url else None
        self.gap_filler = GapFiller(
            rest,
            sequencer=self.sequencer,
            emit=self._emit,
            max_trades_per_gap=config.max_gap_fill_trades,
            paused=lambda: self.writer.disk_full,
        )
        self.client = StreamClient(
            combined_stream_url(config.ws_url, config.pairs),
            silence_timeout=config.silence_timeout,
            max_connection_age=config.max_connection_age,
            connect_timeout=config.connect_timeout,
            min_attempt_interval=config.min_reconnect_interval,
            max_consecutive_failures=config.max_consecutive_failures,
        )

    def stop(self) -> None:
        """Ask `run` to land what it has and return; safe from signal handlers and other threads."""
        self._stop.set()

    def stats(self) -> ProducerStats:
        """Counters so far."""
        return ProducerStats(**self._counts())

    def run(self, stop_event: threading.Event | None = None) -> ProducerSummary:
        """Produce until `stop()`, `stop_event`, the configured duration, or a lost stream."""
        self._resume()
        try:
            self.client.start()
        except StreamUnavailableError as exc:
            raise StreamUnavailableError(f"{exc} — {UNREACHABLE_ADVICE}") from exc
        if self.upload is not None:
            self.upload.start()
        self._started = time.monotonic()
        deadline = (
            None
            if self.config.duration_seconds is None
            else self._started + self.config.duration_seconds
        )
        logger.info(
            "producing %s from %s into %s",
            ",".join(sorted(self._symbols)),
            self.config.ws_url,
            self.config.landing_dir,
        )
        if self.upload is not None:
            logger.info("uploading each landing file to %s", self.upload.destination)
        try:
            self._loop(deadline, stop_event)
        finally:
            stopped_ms = time.time_ns() // 1_000_000
            self.client.stop()
            self._drain(final=True)
            self.writer.flush()  # also a last try when the disk was full
            if not self.writer.disk_full:
                self.gap_filler.fill_due(time.monotonic(), final=True)
                if self.config.fill_tail_on_stop:
                    self.gap_filler.fill_tail(stopped_ms, time.monotonic())
                self.writer.flush()
            if self.writer.disk_full:
                self._report_unlanded()
            if self.upload is not None:
                self.upload.stop()  # a last upload; what fails waits in the spool
            if self.state is not None:
                self.state.close()  # the landing folder's lock: another producer may start now
        self.client.raise_if_failed()
        summary = ProducerSummary(
            **self._counts(),
            source=self.config.source or self.config.ws_url,
            stopped=self._stop_requested,
        )
        logger.info("%s", summary.summary_line())
        return summary

    def _resume(self) -> None:
        """Seed the sequencer with what earlier runs landed, and save that as the new start."""
        if self.state is None:
            return
        now = time.monotonic()
        progress = self.state.load(Path(self.config.landing_dir), self._symbols)
        if self.config.resume is not None:
            progress = dict(self.config.resume(progress))
        for symbol, landed in sorted(progress.items()):
            self.sequencer.seed(symbol, landed, now)
            logger.info(
                "%s: landed up to trade id %s (%s ids below still missing) by an earlier run",
                symbol,
                landed.high,
                sum(last - first + 1 for first, last in landed.missing),
            )
        try:
            self.state.save(progress)
        except LandingWriteError as exc:
            if not exc.disk_full:
                raise
            # The old state still says what was landed: a later save (after a landing) catches up.
            logger.warning("%s: producing on, the state is saved after the next landing file", exc)

    def _save_state(self, landed_file: Path) -> None:
        # Called with nothing pending: everything the sequencer accepted is in visible files.
        if self.state is None:
            return
        try:
            self.state.save(self.sequencer.progress())
        except LandingWriteError as exc:
            # Landing goes on; the next start reads the landing files newer than the old state.
            if not self._state_save_failing:
                logger.warning("%s (warned once until a save succeeds)", exc)
            self._state_save_failing = True
            return
        if self._state_save_failing:
            logger.warning("producer state saved again after %s", landed_file.name)
            self._state_save_failing = False

    def _dropped(self, dropped: TradeIdRanges) -> None:
        # Accepted but never landed: no longer counted, and gaps again for REST (the state saved
        # after the next landing file lists them as missing, not landed).
        for symbol, ranges in dropped.items():
            count = sum(last - first + 1 for first, last in ranges)
            self._per_symbol[symbol] = self._per_symbol.get(symbol, 0) - count
        self.gap_filler.reopen(dropped, time.monotonic())

    def _report_unlanded(self) -> None:
        logger.error(
            "stopping with the landing disk full: %s trades not landed (%s) and %s dropped; the "
            "state file still says only what was landed, so the next start back-fills them from "
            "REST",
            self.writer.pending,
            describe_ranges(self.writer.pending_ranges()),
            self.writer.dropped_trades,
        )

    def _loop(self, deadline: float | None, stop_event: threading.Event | None) -> None:
        next_progress = time.monotonic() + self.config.progress_interval_seconds
        previous: ProducerStats | None = None
        while True:
            self._drain(final=False)
            now = time.monotonic()
            if self._stop.is_set() or (stop_event is not None and stop_event.is_set()):
                logger.info("stop requested")
                self._stop_requested = True
                return
            if deadline is not None and now >= deadline:
                logger.info("duration of %s s reached", self.config.duration_seconds)
                return
            if self.client.failure is not None:
                return
            self.writer.flush_if_due()
            self.gap_filler.fill_due(now)
            if now >= next_progress:
                # On the interval's grid (no drift of a tick per line) unless a line was missed.
                next_progress += self.config.progress_interval_seconds
                if next_progress <= now:
                    next_progress = now + self.config.progress_interval_seconds
                stats = self.stats()
                if self.config.log_progress:
                    logger.info("%s", stats.progress_line(previous))
                previous = stats
                if self.on_progress is not None:
                    self.on_progress(stats)

    def _drain(self, final: bool) -> None:
        """Process queued frames: up to one tick's worth, or (final) everything queued."""
        client = self.client
        if final:
            batch = client.take(client.queued, timeout=0)
        else:
            batch = client.take(_DRAIN_PER_TICK, timeout=_TICK_SECONDS)
        symbols = self._symbols
        accept = self.sequencer.accept
        add = self.writer.add
        per_symbol = self._per_symbol
        now = time.monotonic()
        for connection_id, payload, received_ms in batch:
            result = parse_frame(payload, received_ms, symbols)
            if type(result) is TradeRecord:
                symbol = result.symbol
                if accept(symbol, result.trade_id, now):
                    add(result.to_json())
                    per_symbol[symbol] = per_symbol.get(symbol, 0) + 1
            elif type(result) is Rejection:
                self.writer.reject(result.raw, result.reason, result.detail, received_ms)
            else:
                self._control(connection_id, result)

    def _control(self, connection_id: int, frame: ControlFrame) -> None:
        if frame.kind == SERVER_SHUTDOWN:
            logger.warning("server announced shutdown on connection %s: rotating", connection_id)
            self.client.rotate(connection_id)
        elif "error" in frame.payload:
            # The producer sends no requests, so an error reply means something is off upstream.
            logger.warning("error reply on connection %s: %s", connection_id, frame.payload)
        else:
            logger.debug("control frame on connection %s: %s", connection_id, frame.payload)

    def _emit(self, record: TradeRecord) -> None:
        self.writer.add(record.to_json())
        self._per_symbol[record.symbol] = self._per_symbol.get(record.symbol, 0) + 1

    def _counts(self) -> dict:
        return {
            "trades": sum(self._per_symbol.values()),
            "files": self.writer.files_written,
            "quarantined": self.writer.quarantined,
            "duplicates_dropped": self.sequencer.duplicates,
            "gaps_filled": self.sequencer.filled + self.gap_filler.tail_filled,
            "gaps_unfilled": self.sequencer.unfilled,
            "reconnects": max(0, self.client.connections_opened - 1),
            "seconds": time.monotonic() - self._started,
            "per_symbol": dict(self._per_symbol),
            "gaps_filled_from_rest": self.gap_filler.filled_from_rest,
            "gaps_pending": self.sequencer.missing_trades(),
            "trades_landed": self.writer.trades_written,
            "pending_trades": self.writer.pending,
            "dropped_trades": self.writer.dropped_trades,
            "disk_full_seconds": self.writer.disk_full_seconds,
            "disk_full": self.writer.disk_full,
        }
