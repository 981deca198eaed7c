"""Binance's REST ``/api/v3/historicalTrades`` (and ``/api/v3/ping``) over the market's trades.

Pure request handling: a path and query in, an HTTP status and JSON body out. Only trades the
market has already published are served, like the exchange, which knows no future trades.
Error codes and messages are Binance's (-1100, -1102, -1121, -1130).
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from urllib.parse import parse_qs

from crypto_assets.replay.market import Market, PublishedTrade

HISTORICAL_TRADES_PATH = "/api/v3/historicalTrades"
PING_PATH = "/api/v3/ping"
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
        elif path == HISTORICAL_TRADES_PATH:
            body = historical_trades(market, parse_qs(query, keep_blank_values=True))
        else:
            return 404, b'{"code":-1000,"msg":"Not found."}'
    except RestError as exc:
        return exc.status, _dumps(exc.body)
    return 200, _dumps(body)


def historical_trades(market: Market, params: dict[str, list[str]]) -> list[dict]:
    """Published trades of ``symbol`` from ``fromId`` (or the latest ``limit``), oldest first."""
    symbol = _single(params, "symbol")
    if not symbol:
        raise RestError(
            400, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
        )
    if not re.fullmatch(r"[A-Z0-9\-_.]{1,20}", symbol):
        raise RestError(
            400,
            -1100,
            f"Illegal characters found in parameter 'symbol'; legal range is '{_SYMBOL_RANGE}'.",
        )
    if symbol not in market.symbols:
        raise RestError(400, -1121, "Invalid symbol.")
    limit = _number(params, "limit")
    if limit is None:
        limit = DEFAULT_LIMIT
    if not 1 <= limit <= MAX_LIMIT:
        raise RestError(400, -1130, "Data sent for parameter 'limit' is not valid.")
    from_id = _number(params, "fromId")
    return [_trade_json(row) for row in market.published_trades(symbol, from_id, limit)]


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
