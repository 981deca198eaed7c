"""The local deployment: files under CRYPTO_DATA_DIR, local Spark, Delta tables by delta-rs."""
