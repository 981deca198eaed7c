"""The producer: Binance trade stream to atomic landing NDJSON files, with gap filling."""
