"""The connectivity test: subscribe for a while, report trade rates and receive latency per symbol.

Latency is receive time minus Binance's event time ``E``, so it includes clock skew between this
machine and Binance's servers.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import websocket

from crypto_assets.binance.parsing import TradeRecord, parse_frame
from crypto_assets.binance.stream_client import (
    UNREACHABLE_ADVICE,
    StreamUnavailableError,
    combined_stream_url,
    connect,
)
from crypto_assets.errors import CryptoAssetsError


@dataclass(frozen=True)
class SymbolReport:
    """Trades received for one symbol and their receive latency in milliseconds."""

    symbol: str
    trades: int
    trades_per_second: float
    latency_mean_ms: float
    latency_p50_ms: float
    latency_p95_ms: float
    latency_max_ms: float

    def line(self) -> str:
        """One human-readable line."""
        if not self.trades:
            return f"{self.symbol}: no trades"
        return (
            f"{self.symbol}: {self.trades} trades, {self.trades_per_second:.2f} trades/s, "
            "latency ms "
            f"mean {self.latency_mean_ms:.1f} p50 {self.latency_p50_ms:.0f} "
            f"p95 {self.latency_p95_ms:.0f} max {self.latency_max_ms:.0f}"
        )


@dataclass(frozen=True)
class ConnectionReport:
    """The result of `check_connection`."""

    url: str
    seconds: float
    frames: int
    symbols: tuple[SymbolReport, ...]

    def lines(self) -> list[str]:
        """A header line and one line per symbol."""
        header = f"connected to {self.url}: {self.frames} frames in {self.seconds:.1f} s"
        return [header, *(report.line() for report in self.symbols)]


def _percentile(ordered: list[int], fraction: float) -> float:
    # Nearest rank: the smallest value with at least `fraction` of the values at or below it.
    return float(ordered[max(0, math.ceil(fraction * len(ordered)) - 1)])


def symbol_report(symbol: str, latencies: list[int], seconds: float) -> SymbolReport:
    """Rate and latency statistics for one symbol's trades."""
    if not latencies:
        return SymbolReport(symbol, 0, 0.0, math.nan, math.nan, math.nan, math.nan)
    ordered = sorted(latencies)
    return SymbolReport(
        symbol,
        len(ordered),
        len(ordered) / seconds,
        sum(ordered) / len(ordered),
        _percentile(ordered, 0.5),
        _percentile(ordered, 0.95),
        float(ordered[-1]),
    )


def check_connection(
    ws_url: str, pairs: tuple[str, ...], duration: float, connect_timeout: float = 10.0
) -> ConnectionReport:
    """Subscribe to the trades of `pairs` for `duration` seconds and measure what arrives."""
    url = combined_stream_url(ws_url, pairs)
    try:
        ws = connect(url, connect_timeout)
    except StreamUnavailableError as exc:
        raise StreamUnavailableError(f"{exc} — {UNREACHABLE_ADVICE}") from exc
    symbols = frozenset(p.upper() for p in pairs)
    latencies: dict[str, list[int]] = {s: [] for s in sorted(symbols)}
    frames = 0
    started = time.monotonic()
    ws.settimeout(0.5)
    try:
        while (elapsed := time.monotonic() - started) < duration:
            ws.settimeout(max(0.05, min(0.5, duration - elapsed)))
            try:
                opcode, payload = ws.recv_data()
            except websocket.WebSocketTimeoutException:
                continue
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                raise CryptoAssetsError(f"{ws_url} closed the connection — {UNREACHABLE_ADVICE}")
            received_ms = time.time_ns() // 1_000_000
            frames += 1
            result = parse_frame(payload, received_ms, symbols)
            if type(result) is TradeRecord:
                latencies[result.symbol].append(received_ms - result.event_time)
    except (websocket.WebSocketException, OSError) as exc:
        raise CryptoAssetsError(
            f"connection to {ws_url} lost: {exc} — {UNREACHABLE_ADVICE}"
        ) from exc
    finally:
        ws.shutdown()
    seconds = time.monotonic() - started
    return ConnectionReport(
        ws_url, seconds, frames, tuple(symbol_report(s, v, seconds) for s, v in latencies.items())
    )
