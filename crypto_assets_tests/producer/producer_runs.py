"""Run a real producer: against a replay server until everything sent has been handled, or on
the source the settings pick for a while."""

from __future__ import annotations

import threading
import time
from typing import Any

from crypto_assets.producer.producer import Producer, ProducerConfig, ProducerSummary
from crypto_assets.replay.source import open_source
from crypto_assets.settings import Settings
from crypto_assets_tests.landing_folder import landing_of


def produce_recording(
    server: object, config: ProducerConfig, linger_seconds: float = 0.0, **options: Any
) -> ProducerSummary:
    """Run the producer until the replay market has published and sent everything, then stop it.

    Stops once the market is finished, the server has sent nothing new for half a second, the
    producer's queue is empty and no gap is pending (everything sent has then been handled),
    plus `linger_seconds` of the quiet market. `options` go to `Producer` (e.g. `upload`).
    """
    producer = Producer(config, **options)
    done = threading.Event()

    def quiet() -> bool:
        stats = server.stats  # type: ignore[attr-defined]
        return (
            stats.market.finished
            and producer.client.queued == 0
            and (producer.stats().gaps_pending == 0)
        )

    def stop_when_everything_is_handled() -> None:
        last_sent, quiet_since = -1, None
        while not done.wait(0.1):
            sent = server.stats.connections.frames_sent  # type: ignore[attr-defined]
            if sent != last_sent or not quiet():
                last_sent, quiet_since = sent, None
            elif quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= 0.5:
                done.wait(linger_seconds)
                break
        producer.stop()

    watcher = threading.Thread(target=stop_when_everything_is_handled)
    watcher.start()
    try:
        return producer.run()
    finally:
        done.set()
        watcher.join()


def produce_from_source(
    settings: Settings, seconds: float, pairs: tuple[str, ...] = ("btcusdt", "ethusdt")
) -> ProducerSummary:
    """One producer run of `seconds` on the source `settings` picks, as the producer op runs it."""
    with open_source(settings, landing_of(settings)) as source:
        config = ProducerConfig(
            ws_url=source.ws_url,
            rest_url=source.rest_url,
            pairs=pairs,
            landing_dir=landing_of(settings),
            batch_interval_seconds=0.5,
            duration_seconds=seconds,
            gap_grace_seconds=0.3,
            source=source.kind,
            resume=source.resume,
        )
        return Producer(config).run()
