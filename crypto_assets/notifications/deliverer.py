"""`Deliverer`: sends the outbox's ready notifications on every channel, once each.

For each ready entry (oldest first), each notification and each channel that has not sent it:
record the attempt in the ledger, send, record the success. A channel that fails is left alone
until its backoff delay (per channel, growing with its consecutive failures) has passed, while
the other channels go on; nothing is dropped. An entry is done when every notification in it
was sent on every channel. The only duplicate a receiver can get is the send a crash (or a
timeout) interrupted before its outcome was recorded: it is sent again and counted as a repeat,
and the ``Idempotency-Key`` lets the receiver drop it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from crypto_assets.backoff import RestartBackoff
from crypto_assets.notifications.channels import Channel, DeliveryError
from crypto_assets.notifications.message import Notification
from crypto_assets.notifications.outbox import LEDGER_KEEP, Ledger, Outbox

logger = logging.getLogger(__name__)

# 1 s after a channel's first failure, then 2, 4 ... up to a minute between tries.
DEFAULT_BACKOFF = RestartBackoff(base_seconds=1, max_seconds=60)


@dataclass
class DeliveryStats:
    """What one `Deliverer` did so far.

    delivered: successful sends (a notification sent on two channels counts two), repeats
        among them (sends an earlier process started without recording the outcome).
    failures: failed send attempts.
    waiting: ready notifications not yet sent on every channel, after the latest drain
        (staged, unreleased ones are not counted).
    failing: the channels failing now, each with its latest reason.
    lags_s: for each market notification this deliverer completed (sent on its last channel),
        seconds from its detected_time to then.
    """

    delivered: int = 0
    repeats: int = 0
    failures: int = 0
    waiting: int = 0
    failing: dict[str, str] = field(default_factory=dict)
    lags_s: list[float] = field(default_factory=list)

    def followed_by(self, later: DeliveryStats) -> DeliveryStats:
        """The stats of two deliverers that ran one after the other (the state is `later`'s)."""
        return DeliveryStats(
            delivered=self.delivered + later.delivered,
            repeats=self.repeats + later.repeats,
            failures=self.failures + later.failures,
            waiting=later.waiting,
            failing=dict(later.failing),
            lags_s=[*self.lags_s, *later.lags_s],
        )

    def line(self) -> str:
        """``notifications: 4 sent (0 repeated), 0 waiting, alert -> sent p95 0.41 s``."""
        text = (
            f"notifications: {self.delivered} sent ({self.repeats} repeated), "
            f"{self.waiting} waiting"
        )
        if self.lags_s:
            ordered = sorted(self.lags_s)
            p95 = ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]
            text += f", alert -> sent p95 {p95:.2f} s"
        if self.failing:
            text += "; failing: " + "; ".join(self.failing.values())
        return text


@dataclass
class _ChannelHealth:
    failures: int = 0  # consecutive
    retry_at: float = 0.0  # on the monotonic clock
    reason: str = ""


class Deliverer:
    """Delivers `outbox`'s ready notifications on `channels`, by `drain` or in a thread.

    `clock` is the wall clock (seconds since the epoch, for `lags_s`), `monotonic` the clock of
    backoff delays and of `stop`'s timeout; both can be replaced (tests). `drain` never sleeps:
    a channel waiting out its delay is skipped, and the thread of `start` waits for the next
    poll or `wake`. One deliverer per outbox folder at a time (the ledger is not shared).
    """

    def __init__(
        self,
        outbox: Outbox,
        channels: Sequence[Channel],
        backoff: RestartBackoff = DEFAULT_BACKOFF,
        *,
        poll_s: float = 0.5,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        ledger_keep: int = LEDGER_KEEP,
    ) -> None:
        names = [channel.name for channel in channels]
        if len(set(names)) != len(names):
            raise ValueError(f"two channels share a name: {names}")
        self.outbox = outbox
        self.channels = list(channels)
        self.backoff = backoff
        self.poll_s = poll_s
        self.ledger = Ledger(outbox.ledger_path, keep=ledger_keep)
        self._clock = clock
        self._monotonic = monotonic
        self._health = {channel.name: _ChannelHealth() for channel in self.channels}
        self._stats = DeliveryStats()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._deadline: float | None = None
        self._thread: threading.Thread | None = None
        self._last_error = ""

    @property
    def stats(self) -> DeliveryStats:
        """A copy of the statistics so far."""
        with self._lock:
            return self._snapshot()

    def drain(self) -> DeliveryStats:
        """One pass over the ready entries (channels in their backoff delay skipped); returns
        the statistics so far."""
        with self._lock:
            self._pass(final=False)
            return self._snapshot()

    def start(self) -> Deliverer:
        """Drain in a daemon thread, `poll_s` seconds after the previous drain or at once on
        `wake`, until `stop`."""
        if self._thread is None:
            self._stopping.clear()
            self._deadline = None
            self._thread = threading.Thread(
                target=self._run, name="notifications-deliverer", daemon=True
            )
            self._thread.start()
        return self

    def wake(self) -> None:
        """Drain now (new entries were released), without waiting for the next poll."""
        self._wake.set()

    def stop(self, timeout_s: float = 10.0) -> DeliveryStats:
        """Drain one last time (every channel tried, backoff or not) and stop, within about
        `timeout_s` (a send under way finishes); what is left stays in the outbox."""
        self._deadline = self._monotonic() + timeout_s
        if self._thread is None:
            with self._lock:
                self._pass(final=True)
        else:
            self._stopping.set()
            self._wake.set()
            self._thread.join(timeout_s)
            alive = self._thread.is_alive()
            self._thread = None
            if alive:  # a send outlasting the timeout; the daemon thread ends with the process
                logger.warning("notifications: the last drain did not end within %g s", timeout_s)
                return self._snapshot()  # without the lock, which that drain holds
        return self.stats

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._guarded_pass(final=False)
            self._wake.wait(self.poll_s)
            self._wake.clear()
        self._guarded_pass(final=True)

    def _guarded_pass(self, final: bool) -> None:
        """A pass that logs (once per distinct error) instead of ending the thread."""
        try:
            with self._lock:
                self._pass(final)
            self._last_error = ""
        except Exception as error:
            if str(error) != self._last_error:
                logger.exception("notifications: delivery pass failed: %s", error)
            self._last_error = str(error)

    def _pass(self, final: bool) -> None:
        now = self._monotonic()
        usable = {
            channel.name
            for channel in self.channels
            if final or now >= self._health[channel.name].retry_at
        }
        started_failing: list[str] = []
        waiting = 0
        waiting_on = dict.fromkeys(self._health, 0)
        for entry, notifications in self.outbox.ready():
            complete = True
            for notification in notifications:
                todo = [
                    c for c in self.channels if not self.ledger.is_sent(c.name, notification.key)
                ]
                for channel in todo:
                    if (
                        channel.name in usable
                        and not self._past_deadline()
                        and not self._send(channel, notification, started_failing)
                    ):
                        usable.discard(channel.name)
                left = [c.name for c in todo if not self.ledger.is_sent(c.name, notification.key)]
                for name in left:
                    waiting_on[name] += 1
                if left:
                    complete = False
                    waiting += 1
                elif todo:
                    self._record_lag(notification)
            if complete:
                self.outbox.done(entry)
        self._stats.waiting = waiting
        for name in started_failing:
            health = self._health[name]
            logger.warning(
                "notifications: %s failing (%s); retrying in %g s, %d waiting",
                name,
                health.reason,
                self.backoff.delay(health.failures),
                waiting_on[name],
            )

    def _send(self, channel: Channel, notification: Notification, started: list[str]) -> bool:
        """Send with its ledger records and the channel's health; False when it failed."""
        health = self._health[channel.name]
        repeat = self.ledger.attempted_unsent(channel.name, notification.key)
        self.ledger.record_attempt(channel.name, notification.key)
        try:
            channel.send(notification)
        except Exception as error:
            if not isinstance(error, DeliveryError):  # a channel breaking its contract
                error = DeliveryError(channel.name, f"{type(error).__name__}: {error}", True)
            if not error.maybe_delivered:
                self.ledger.record_failed(channel.name, notification.key)
            self._stats.failures += 1
            health.failures += 1
            health.reason = error.reason
            health.retry_at = self._monotonic() + self.backoff.delay(health.failures)
            if health.failures == 1:
                started.append(channel.name)
            else:
                logger.debug("notifications: %s still failing (%s)", channel.name, error.reason)
            return False
        self.ledger.record_sent(channel.name, notification.key)
        self._stats.delivered += 1
        self._stats.repeats += repeat
        if health.failures:
            logger.info(
                "notifications: %s delivering again after %d failed attempts",
                channel.name,
                health.failures,
            )
            self._health[channel.name] = _ChannelHealth()
        return True

    def _record_lag(self, notification: Notification) -> None:
        detected = notification.payload.get("detected_time")
        if notification.payload.get("kind") != "market" or not isinstance(detected, str):
            return
        detected_s = datetime.fromisoformat(detected).timestamp()  # "...Z" is UTC
        self._stats.lags_s.append(self._clock() - detected_s)

    def _past_deadline(self) -> bool:
        return self._deadline is not None and self._monotonic() >= self._deadline

    def _snapshot(self) -> DeliveryStats:
        failing = {name: h.reason for name, h in self._health.items() if h.failures}
        return replace(self._stats, failing=failing, lags_s=list(self._stats.lags_s))
