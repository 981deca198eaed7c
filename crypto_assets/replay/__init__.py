"""Offline Binance replay: recorded frames served over websocket and REST like the exchange."""
