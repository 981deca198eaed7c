"""Tests of the Databricks deployment, against a local emulation of the Databricks REST API."""
