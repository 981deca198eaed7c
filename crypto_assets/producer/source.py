"""Where trades come from: live Binance, or the bundled recording replayed in-process.

``CRYPTO_SOURCE=live`` uses ``BINANCE_WS_URL``; ``replay`` serves the bundled recording of real
trades at real speed, looping, with times moved to now; ``auto`` probes the live endpoint and
falls back to the replay. Replayed data is always announced loudly: it is not the market now.
A replay continues the market an earlier run landed (see `crypto_assets.replay.continuation`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal

from crypto_assets.binance.stream_client import (
    UNREACHABLE_ADVICE,
    StreamUnavailableError,
    combined_stream_url,
    connect,
)
from crypto_assets.producer.producer import default_rest_url
from crypto_assets.producer.trade_sequencer import SymbolProgress
from crypto_assets.settings import Settings

logger = logging.getLogger(__name__)

PROBE_TIMEOUT_SECONDS = 5.0
REPLAY_WARNING = (
    "REPLAYED DATA: trades come from the bundled recording of real Binance trades "
    "(2024-08-08/09), replayed with times moved to now — this is NOT the live market"
)


@dataclass
class TradeSource:
    """Websocket and REST base URLs of the chosen source; close() stops an in-process replay.

    `resume` maps what earlier runs landed to where a producer on this source resumes
    (`ProducerConfig.resume`); None: where they stopped.
    """

    kind: Literal["live", "replay"]
    ws_url: str
    rest_url: str
    resume: Callable[[Mapping[str, SymbolProgress]], Mapping[str, SymbolProgress]] | None = None
    _server: object | None = field(default=None, repr=False)

    def close(self) -> None:
        """Stop the replay server, if this source started one."""
        if self._server is not None:
            self._server.stop()  # type: ignore[attr-defined]
            self._server = None

    def __enter__(self) -> TradeSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def probe_live(ws_url: str, pairs: tuple[str, ...], timeout: float = PROBE_TIMEOUT_SECONDS) -> None:
    """One websocket handshake with `ws_url`; raises `StreamUnavailableError` if it fails."""
    try:
        connect(combined_stream_url(ws_url, pairs[:1]), timeout).close(timeout=1)
    except StreamUnavailableError as exc:
        raise StreamUnavailableError(f"{exc} — {UNREACHABLE_ADVICE}") from exc


def start_replay(landing_dir: Path | None = None) -> TradeSource:
    """Serve the bundled recording in-process; with `landing_dir`, continue its landed market."""
    # The replay server (and its websockets/asyncio stack) loads only when a replay is asked for.
    from crypto_assets.replay.continuation import start_continuing_replay  # noqa: PLC0415

    replay = start_continuing_replay(landing_dir)
    server = replay.server
    logger.warning("%s; serving it on %s", REPLAY_WARNING, server.url)
    return TradeSource("replay", server.url, server.rest_url, replay.segment.resume, server)


def open_source(settings: Settings, probe_timeout: float = PROBE_TIMEOUT_SECONDS) -> TradeSource:
    """The source `settings.source` asks for; ``auto`` falls back to the replay when live fails."""
    rest_url = default_rest_url(settings.binance_ws_url, settings.binance_rest_url)
    live = TradeSource("live", settings.binance_ws_url, rest_url)
    if settings.source == "live":
        return live
    if settings.source == "replay":
        return start_replay(settings.landing_dir)
    try:
        probe_live(settings.binance_ws_url, settings.trading_pairs, probe_timeout)
    except StreamUnavailableError as exc:
        logger.warning("live Binance unavailable (%s): falling back to the replay", exc)
        return start_replay(settings.landing_dir)
    logger.info("live Binance reachable at %s", settings.binance_ws_url)
    return live
