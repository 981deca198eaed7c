"""Real-time Binance trade analytics: websocket producer, Spark Structured Streaming, Delta tables."""

__version__ = "0.1.0"
