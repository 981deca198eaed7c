"""The local deployment's reader of landing files: Spark's file source over raw bytes.

Spark's file source and checkpoint hand each landing file to exactly one committed batch. The
files are read whole as bytes (`binaryFile`), so Spark never parses them: every line is judged
in Python by `landing_decoder`, with the rule the producer's parser shares, and no file, however
malformed, can fail a batch. A batch takes at most `max_bytes_per_trigger` of files (always at
least one file), so a backlog of any size is worked off in bounded batches with bounded memory.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F  # noqa: N812 - the PySpark convention
from pyspark.sql.types import (
    BinaryType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from crypto_assets.analytics.landing_decoder import DecodedBatch, decode_landing_files
from crypto_assets.landing_files import LANDING_FILE_GLOB

# ~260,000 producer trades a batch: the driver peaks near 1 GB resident (measured with
# benchmarks/analytics_throughput.py); 32 MiB took a quarter longer for a backlog.
DEFAULT_MAX_BYTES_PER_TRIGGER = 64 * 1024 * 1024
# The fixed schema of Spark's binaryFile source (a stream must be given its schema).
BINARY_FILE_SCHEMA = StructType(
    [
        StructField("path", StringType()),
        StructField("modificationTime", TimestampType()),
        StructField("length", LongType()),
        StructField("content", BinaryType()),
    ]
)


class LocalLandingReader:
    """Landing files under one directory, streamed as (file name, content) rows."""

    def __init__(
        self,
        landing_dir: Path,
        max_bytes_per_trigger: int = DEFAULT_MAX_BYTES_PER_TRIGGER,
        max_files_per_trigger: int | None = None,
    ) -> None:
        self.landing_dir = landing_dir
        self.max_bytes_per_trigger = max_bytes_per_trigger
        self.max_files_per_trigger = max_files_per_trigger

    def stream(self, spark: SparkSession) -> DataFrame:
        """The streaming DataFrame of new landing files (`source_file`, `content`)."""
        reader = (
            spark.readStream.format("binaryFile")
            .schema(BINARY_FILE_SCHEMA)
            .option("pathGlobFilter", LANDING_FILE_GLOB)
            # A file deleted between listing and reading is skipped, not a batch failed forever.
            .option("ignoreMissingFiles", "true")
        )
        # Spark accepts one of the two limits, not both.
        if self.max_files_per_trigger:
            reader = reader.option("maxFilesPerTrigger", self.max_files_per_trigger)
        else:
            reader = reader.option("maxBytesPerTrigger", self.max_bytes_per_trigger)
        return reader.load(str(self.landing_dir)).select(
            F.col("_metadata.file_name").alias("source_file"), "content"
        )

    def decode(self, batch_df: DataFrame, processed: dt.datetime) -> tuple[DecodedBatch, int]:
        """The batch's good trades and rejected lines, and how many files it held."""
        files = batch_df.toArrow()
        names = files["source_file"].to_pylist()
        contents = files["content"].to_pylist()
        return decode_landing_files(zip(names, contents, strict=True), processed), len(names)
