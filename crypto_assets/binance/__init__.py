"""Binance spot: pure trade-frame parsing, the websocket transport and the REST client."""
