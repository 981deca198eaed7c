"""The Dagster layer: assets, jobs, checks, sensors and schedules, one module per concern."""
