"""Real-time Binance trade analytics: websocket producer, Spark streaming, Delta tables."""

__version__ = "0.1.0"
