"""Binance's REST ``historicalTrades``, ``exchangeInfo`` and ``ping`` over the market's trades.

Pure request handling: a path and query in, an HTTP status and JSON body out. Only trades the
market has already published are served, like the exchange, which knows no future trades;
``exchangeInfo`` lists the symbols the recording carries, as ``TRADING``.
Error codes and messages are Binance's (-1100, -1102, -1121, -1128, -1130).
"""

from __future__ import annotations

import json
import re
import time
from decimal import Decimal
from urllib.parse import parse_qs

from crypto_assets.replay.market import Market, PublishedTrade

HISTORICAL_TRADES_PATH = "/api/v3/historicalTrades"
PING_PATH = "/api/v3/ping"
EXCHANGE_INFO_PATH = "/api/v3/exchangeInfo"
# Quote assets a spot symbol ends with, longest first (FDUSD before USD-less matches).
_QUOTE_ASSETS = ("FDUSD", "USDT", "USDC", "TUSD", "BUSD", "BTC", "ETH", "BNB", "EUR", "TRY")
_SYMBOLS_RANGE = '^\\[("[A-Z0-9-_.]{1,20}"(,"[A-Z0-9-_.]{1,20}"){0,}){0,1}\\]$'
DEFAULT_LIMIT = 500
MAX_LIMIT = 1000
_EIGHT_PLACES = Decimal("0.00000001")
_SYMBOL_RANGE = "^[A-Z0-9-_.]{1,20}$"
_NUMBER_RANGE = "^[0-9]{1,20}$"


class RestError(Exception):
    """A Binance API error: HTTP status plus ``{"code":..,"msg":..}``."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status = status
        self.body = {"code": code, "msg": msg}


def is_rest_path(path: str) -> bool:
    """Whether the request path belongs to the REST API rather than the streams."""
    return path.startswith("/api/")


def handle_rest(market: Market, path: str, query: str) -> tuple[int, bytes]:
    """Answer one REST GET; returns ``(http status, JSON body)``."""
    try:
        if path == PING_PATH:
            body: object = {}
        elif path == EXCHANGE_INFO_PATH:
            body = exchange_info(market, parse_qs(query, keep_blank_values=True))
        elif path == HISTORICAL_TRADES_PATH:
            body = historical_trades(market, parse_qs(query, keep_blank_values=True))
        else:
            return 404, b'{"code":-1000,"msg":"Not found."}'
    except RestError as exc:
        return exc.status, _dumps(exc.body)
    return 200, _dumps(body)


def exchange_info(market: Market, params: dict[str, list[str]]) -> dict:
    """Exchange information for ``symbol``, ``symbols`` (a JSON array) or every carried symbol."""
    symbol, symbols = _single(params, "symbol"), _single(params, "symbols")
    if symbol is not None and symbols is not None:
        raise RestError(400, -1128, "Combination of optional parameters invalid.")
    carried = set(market.symbols)
    if symbols is not None:
        asked = _symbol_list(symbols)
    elif symbol is not None:
        asked = [_symbol(symbol)]
    else:
        asked = sorted(carried)
    if any(name not in carried for name in asked):
        raise RestError(400, -1121, "Invalid symbol.")
    return {
        "timezone": "UTC",
        "serverTime": time.time_ns() // 1_000_000,
        "rateLimits": [],
        "exchangeFilters": [],
        "symbols": [_symbol_info(name) for name in dict.fromkeys(asked)],
    }


def historical_trades(market: Market, params: dict[str, list[str]]) -> list[dict]:
    """Published trades of ``symbol`` from ``fromId`` (or the latest ``limit``), oldest first."""
    symbol = _symbol(_single(params, "symbol") or "")
    if symbol not in market.symbols:
        raise RestError(400, -1121, "Invalid symbol.")
    limit = _number(params, "limit")
    if limit is None:
        limit = DEFAULT_LIMIT
    if not 1 <= limit <= MAX_LIMIT:
        raise RestError(400, -1130, "Data sent for parameter 'limit' is not valid.")
    from_id = _number(params, "fromId")
    return [_trade_json(row) for row in market.published_trades(symbol, from_id, limit)]


def _symbol(value: str) -> str:
    if not value:
        raise RestError(
            400, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
        )
    if not re.fullmatch(r"[A-Z0-9\-_.]{1,20}", value):
        raise RestError(
            400,
            -1100,
            f"Illegal characters found in parameter 'symbol'; legal range is '{_SYMBOL_RANGE}'.",
        )
    return value


def _symbol_list(value: str) -> list[str]:
    try:
        names = json.loads(value)
    except ValueError:
        names = None
    if (
        not isinstance(names, list)
        or not names
        or not all(isinstance(n, str) and re.fullmatch(r"[A-Z0-9\-_.]{1,20}", n) for n in names)
    ):
        raise RestError(
            400,
            -1100,
            f"Illegal characters found in parameter 'symbols'; legal range is '{_SYMBOLS_RANGE}'.",
        )
    return names


def _symbol_info(symbol: str) -> dict:
    quote = next((q for q in _QUOTE_ASSETS if symbol.endswith(q) and symbol != q), "")
    return {
        "symbol": symbol,
        "status": "TRADING",
        "baseAsset": symbol[: len(symbol) - len(quote)],
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "isSpotTradingAllowed": True,
    }


def _single(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    return values[-1] if values else None


def _number(params: dict[str, list[str]], name: str) -> int | None:
    value = _single(params, name)
    if value is None:
        return None
    if not re.fullmatch(r"[0-9]{1,20}", value):
        raise RestError(
            400,
            -1100,
            f"Illegal characters found in parameter '{name}'; legal range is '{_NUMBER_RANGE}'.",
        )
    return int(value)


def _trade_json(row: PublishedTrade) -> dict:
    trade = row.trade
    quote = (Decimal(trade.price) * Decimal(trade.qty)).quantize(_EIGHT_PLACES)
    return {
        "id": row.trade_id,
        "price": trade.price,
        "qty": trade.qty,
        "quoteQty": f"{quote:f}",
        "time": row.trade_time,
        "isBuyerMaker": trade.is_buyer_maker,
        "isBestMatch": trade.is_best_match,
    }


def _dumps(body: object) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()
