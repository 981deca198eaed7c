"""Where trades come from: live Binance, or the bundled recording replayed in-process.

``CRYPTO_SOURCE=live`` uses ``BINANCE_WS_URL``; ``replay`` serves the bundled recording of real
trades at real speed, looping, with times moved to now; ``auto`` probes the live endpoint and
falls back to the replay. Replayed data is always announced loudly: it is not the market now.
A replay continues the market an earlier run landed: it starts at the first lap whose trade ids
are all above the ids in the producer's state file, so a second run lands new trades.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal

from crypto_assets.binance.stream_client import StreamUnavailableError, combined_stream_url, connect
from crypto_assets.producer.producer import UNREACHABLE_ADVICE, default_rest_url
from crypto_assets.producer.producer_state import landed_highs, state_path_beside
from crypto_assets.settings import Settings

logger = logging.getLogger(__name__)

PROBE_TIMEOUT_SECONDS = 5.0
REPLAY_WARNING = (
    "REPLAYED DATA: trades come from the bundled recording of real Binance trades "
    "(2024-08-08/09), replayed with times moved to now — this is NOT the live market"
)


@dataclass
class TradeSource:
    """Websocket and REST base URLs of the chosen source; close() stops an in-process replay."""

    kind: Literal["live", "replay"]
    ws_url: str
    rest_url: str
    _server: object | None = field(default=None, repr=False)

    @property
    def own_replay(self) -> bool:
        """True when this source started a replay: a market segment that begins anew."""
        return self._server is not None

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
    """Serve the bundled recording on 127.0.0.1 (real speed, looping, rebased times).

    With `landing_dir`, the market continues after the trade ids its producer state says landed.
    """
    # The replay server (and its websockets/asyncio stack) loads only when a replay is asked for.
    from crypto_assets.recording import bundled_recording  # noqa: PLC0415
    from crypto_assets.replay.recording_feed import (  # noqa: PLC0415
        first_lap_above,
        load_recordings,
    )
    from crypto_assets.replay.server import ReplayOptions, ReplayServer  # noqa: PLC0415

    recordings = (bundled_recording(),)
    recording = load_recordings(recordings)
    first_lap = 0
    if landing_dir is not None:
        highs = landed_highs(state_path_beside(landing_dir), landing_dir, recording.symbols)
        first_lap = first_lap_above(recording, highs)
    if first_lap:
        starts = ", ".join(
            f"{symbol} from id {table.ids[0] + first_lap * table.span}"
            for symbol, table in sorted(recording.symbols.items())
        )
        logger.info(
            "replay continues at lap %s (%s), after the trades landed in %s",
            first_lap,
            starts,
            landing_dir,
        )
    server = ReplayServer(
        ReplayOptions(
            recordings=recordings,
            host="127.0.0.1",
            port=0,
            speed=1.0,
            loop=True,
            rebase_time=True,
            first_lap=first_lap,
        ),
        recording,
    )
    server.start()
    logger.warning("%s; serving it on %s", REPLAY_WARNING, server.url)
    return TradeSource("replay", server.url, server.rest_url, server)


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
