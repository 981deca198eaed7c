"""The Databricks deployment's tests compare with the analytics tests' full local run."""

from crypto_assets_tests.analytics.conftest import full_run, landing_records

__all__ = ["full_run", "landing_records"]
