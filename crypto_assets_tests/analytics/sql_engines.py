"""The two engines the transforms' SQL runs on, behind one call: Arrow tables in, Arrow out."""

from __future__ import annotations

from typing import Protocol

import pyarrow as pa
from pyspark.sql import SparkSession


class Engine(Protocol):
    def run(self, sql: str, **tables: pa.Table) -> pa.Table:
        """The result of `sql`, its ``{name}`` placeholders bound to the Arrow `tables`."""
        ...


class SparkEngine:
    """Spark SQL, as the Databricks sink runs the transforms (`SparkDeltaSink.score`)."""

    def __init__(self, spark: SparkSession) -> None:
        self.spark = spark

    def run(self, sql: str, **tables: pa.Table) -> pa.Table:
        frames = {name: self.spark.createDataFrame(table) for name, table in tables.items()}
        return self.spark.sql(sql, **frames).toArrow()
