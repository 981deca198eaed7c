"""Binance spot REST: ``historicalTrades`` fills trade-id gaps, ``exchangeInfo`` checks pairs."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode

from crypto_assets.errors import CryptoAssetsError

logger = logging.getLogger(__name__)

MAX_LIMIT = 1000
INVALID_SYMBOL = -1121  # Binance's code for a symbol it does not list


class RestError(CryptoAssetsError):
    """A REST call failed; `status` and `code` carry Binance's HTTP status and error code if any."""

    def __init__(self, message: str, status: int | None = None, code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class BinanceRestClient:
    """A small synchronous client for the public endpoints the producer needs."""

    def __init__(self, base_url: str, timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def historical_trades(self, symbol: str, from_id: int, limit: int = MAX_LIMIT) -> list[dict]:
        """Up to `limit` (≤ 1000) trades of `symbol` with ids from `from_id`, oldest first."""
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be 1..{MAX_LIMIT}, got {limit}")
        query = urlencode({"symbol": symbol.upper(), "fromId": from_id, "limit": limit})
        rows = self._get(f"/api/v3/historicalTrades?{query}")
        if not isinstance(rows, list):
            raise RestError(f"historicalTrades for {symbol.upper()} returned {type(rows).__name__}")
        return rows

    def exchange_info(self, symbols: tuple[str, ...] | list[str]) -> dict[str, dict]:
        """Binance's description of each of `symbols` (status, baseAsset, …) by upper-case name.

        One symbol Binance does not list fails the whole call: `RestError` with code -1121.
        """
        names = json.dumps([s.upper() for s in symbols], separators=(",", ":"))
        body = self._get(f"/api/v3/exchangeInfo?{urlencode({'symbols': names})}")
        if not isinstance(body, dict) or not isinstance(body.get("symbols"), list):
            raise RestError(f"exchangeInfo from {self.base_url} has no list of symbols")
        return {str(info.get("symbol")): info for info in body["symbols"]}

    def _get(self, path_and_query: str) -> Any:
        url = self.base_url + path_and_query
        request = urllib.request.Request(url, headers={"Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise _http_error(url, exc) from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RestError(f"cannot reach {self.base_url}: {reason}") from exc
        except ValueError as exc:
            raise RestError(f"{url} returned a body that is not JSON") from exc


def _http_error(url: str, exc: urllib.error.HTTPError) -> RestError:
    # Binance errors are {"code": -1121, "msg": "Invalid symbol."}.
    try:
        body = json.loads(exc.read())
        code, msg = int(body["code"]), str(body["msg"])
    except (ValueError, KeyError, TypeError):
        return RestError(f"HTTP {exc.code} from {url}", status=exc.code)
    return RestError(f"Binance error {code} (HTTP {exc.code}): {msg}", status=exc.code, code=code)
