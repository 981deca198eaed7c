"""DuckDB, in process: where the local deployment runs the transforms' SQL over Arrow tables.

The local sink reads a batch's trades and stored windows from its Delta tables (delta-rs, through
their logs) as Arrow, and DuckDB computes their windows and alerts in a few milliseconds, where
Spark spent a third of a second per batch planning, compiling and warming up a new query.

Timestamps cross as UTC wall time: DuckDB's TIMESTAMP has no zone (a TIMESTAMPTZ would be shown
and cast in the session's zone), so inputs lose their UTC zone on the way in and results get it
back on the way out.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import pyarrow as pa

from crypto_assets.analytics.transforms import DUCKDB_MACROS

if TYPE_CHECKING:
    import duckdb


def _without_zone(table: pa.Table) -> pa.Table:
    schema = pa.schema(
        f.with_type(pa.timestamp(f.type.unit)) if pa.types.is_timestamp(f.type) else f
        for f in table.schema
    )
    return table.cast(schema)


def _in_utc(table: pa.Table) -> pa.Table:
    schema = pa.schema(
        f.with_type(pa.timestamp(f.type.unit, "UTC")) if pa.types.is_timestamp(f.type) else f
        for f in table.schema
    )
    return table.cast(schema)


class SqlEngine:
    """An in-memory DuckDB database with the transforms' macros; `run` is safe from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._database: duckdb.DuckDBPyConnection | None = None

    def _connection(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            if self._database is None:
                # Imported when a database is first made: the package is imported on Databricks
                # too (the definitions name every deployment), which has no DuckDB and never
                # computes with it.
                import duckdb  # noqa: PLC0415

                database = duckdb.connect()
                for macro in DUCKDB_MACROS:
                    database.execute(macro)
                self._database = database
            # A cursor per call: DuckDB's connections are not shared between threads.
            return self._database.cursor()

    def run(self, sql: str, **tables: pa.Table) -> pa.Table:
        """The result of `sql`, its ``{name}`` placeholders bound to the Arrow `tables`."""
        connection = self._connection()
        try:
            for name, table in tables.items():
                connection.register(name, _without_zone(table))
            result = connection.sql(sql.format(**{name: name for name in tables}))
            return _in_utc(result.to_arrow_table())
        finally:
            connection.close()
