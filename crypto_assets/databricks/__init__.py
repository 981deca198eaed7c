"""The Databricks deployment: where its data lives, its producer upload, setup and launch."""
