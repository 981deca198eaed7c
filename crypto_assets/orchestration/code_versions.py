"""Code versions of the assets: a digest of the modules that decide what an asset holds.

Dagster compares an asset's code version with the one its latest materialization recorded and
marks the asset "code version changed" in the UI when they differ; a digest of the sources changes
exactly when the code does, where a hand-kept version string drifts. The sources are read with
`importlib.resources`, which works inside the zip the Databricks step launcher ships too.
"""

from __future__ import annotations

import hashlib
from importlib.resources import files

_PACKAGE = "crypto_assets"
_DIGITS = 12

# The modules that shape landing files: the producer, Binance parsing and the row rules.
PRODUCER_MODULES = (
    "landing_record.py",
    "binance/parsing.py",
    "producer/producer.py",
    "producer/landing_writer.py",
    "producer/trade_sequencer.py",
    "producer/gap_filler.py",
    "trade_validation.py",
)
# The modules that shape the three tables: one query writes them all, through either
# deployment's reader and sink.
ANALYTICS_MODULES = (
    "analytics/batch.py",
    "analytics/lag.py",
    "analytics/landing_decoder.py",
    "analytics/pipeline.py",
    "analytics/ports.py",
    "analytics/schema.py",
    "analytics/sink_sql.py",
    "analytics/transforms.py",
    "analytics/window_runs.py",
    "local/delta_sink.py",
    "local/landing_reader.py",
    "local/sql_engine.py",
    "databricks/autoloader_reader.py",
    "databricks/spark_delta_sink.py",
    "landing_record.py",
    "trade_validation.py",
)


def source_version(modules: tuple[str, ...]) -> str:
    """A short digest of the package's `modules` (paths relative to the package)."""
    digest = hashlib.sha256()
    root = files(_PACKAGE)
    for module in modules:
        digest.update(module.encode())
        digest.update(root.joinpath(module).read_bytes())
    return digest.hexdigest()[:_DIGITS]


PRODUCER_CODE_VERSION = source_version(PRODUCER_MODULES)
ANALYTICS_CODE_VERSION = source_version(ANALYTICS_MODULES)
