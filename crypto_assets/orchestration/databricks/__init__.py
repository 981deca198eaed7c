"""Dagster's side of the Databricks deployment: step launcher, Pipes, remote entry points."""
