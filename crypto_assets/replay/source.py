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

from crypto_assets.binance.rest_client import INVALID_SYMBOL, BinanceRestClient, RestError
from crypto_assets.binance.stream_client import (
    UNREACHABLE_ADVICE,
    StreamUnavailableError,
    combined_stream_url,
    connect,
)
from crypto_assets.errors import CryptoAssetsError
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


class UnknownPairsError(CryptoAssetsError):
    """Binance does not list some of the pairs asked for; the message names them."""


def _listed(client: BinanceRestClient, pairs: tuple[str, ...]) -> tuple[dict[str, dict], list[str]]:
    """What `exchangeInfo` says of each pair, and the pairs it does not list."""
    try:
        return client.exchange_info(pairs), []
    except RestError as exc:
        if exc.code != INVALID_SYMBOL:
            raise
    # One unknown symbol fails the whole call: ask pair by pair which ones it is.
    infos: dict[str, dict] = {}
    unknown: list[str] = []
    for pair in pairs:
        try:
            infos.update(client.exchange_info((pair,)))
        except RestError as exc:
            if exc.code != INVALID_SYMBOL:
                raise
            unknown.append(pair)
    return infos, unknown


def check_pairs(source: TradeSource, pairs: tuple[str, ...], timeout: float = 5.0) -> list[str]:
    """Check `pairs` against the source's ``GET /api/v3/exchangeInfo``; warnings to log.

    Live: a pair Binance does not list raises `UnknownPairsError` (its stream would stay silent
    forever). Replay: the pairs the recording does not carry are a warning, as are pairs whose
    status is not TRADING and a REST endpoint that does not answer.
    """
    client = BinanceRestClient(source.rest_url, timeout=timeout)
    try:
        infos, unknown = _listed(client, pairs)
    except RestError as exc:
        return [f"pairs not checked: exchangeInfo failed ({exc})"]
    warnings = [
        f"{pair} is {infos[pair.upper()].get('status')} on {source.kind}, not TRADING: "
        "expect no trades"
        for pair in pairs
        if pair.upper() in infos and infos[pair.upper()].get("status") != "TRADING"
    ]
    if unknown and source.kind == "live":
        raise UnknownPairsError(
            f"pairs: Binance does not list {', '.join(unknown)} (exchangeInfo: -1121 Invalid "
            "symbol); spell a pair as Binance does, e.g. btcusdt"
        )
    if unknown:
        carried = ", ".join(pair for pair in pairs if pair.upper() in infos) or "none of them"
        warnings.append(
            f"the replay does not carry {', '.join(unknown)}: no trades will arrive for "
            f"{'it' if len(unknown) == 1 else 'them'} (of these pairs it carries {carried})"
        )
    return warnings


def carried_pairs(
    source: TradeSource, pairs: tuple[str, ...], timeout: float = 5.0
) -> tuple[str, ...] | None:
    """Those of `pairs` the source lists (``exchangeInfo``), in order; None if it cannot say."""
    try:
        infos, _ = _listed(BinanceRestClient(source.rest_url, timeout=timeout), pairs)
    except RestError:
        return None
    return tuple(pair for pair in pairs if pair.upper() in infos)


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


def open_source(
    settings: Settings,
    landing_dir: Path | None = None,
    probe_timeout: float = PROBE_TIMEOUT_SECONDS,
) -> TradeSource:
    """The source `settings.source` asks for; ``auto`` falls back to the replay when live fails.

    A replay continues the market the producer's state in `landing_dir` says was landed.
    """
    rest_url = default_rest_url(settings.binance_ws_url, settings.binance_rest_url)
    live = TradeSource("live", settings.binance_ws_url, rest_url)
    if settings.source == "live":
        return live
    if settings.source == "replay":
        return start_replay(landing_dir)
    try:
        probe_live(settings.binance_ws_url, settings.trading_pairs, probe_timeout)
    except StreamUnavailableError as exc:
        logger.warning("live Binance unavailable (%s): falling back to the replay", exc)
        return start_replay(landing_dir)
    logger.info("live Binance reachable at %s", settings.binance_ws_url)
    return live
