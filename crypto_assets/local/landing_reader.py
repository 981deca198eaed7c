"""The local deployment's reader of landing files: Spark's file source, the bytes read here.

Spark's file source and checkpoint hand each landing file to exactly one committed batch. Spark
lists the files (`binaryFile` without its content column) and logs each batch's in the query's
checkpoint; the batch takes their names from there and reads each whole from the landing folder:
no Spark job, no trip through the JVM. Spark never parses them: every line is judged in Python
by `landing_decoder`, with the rule the producer's parser shares, and no file, however
malformed, can fail a batch. A batch takes at most `max_bytes_per_trigger` of files (always at
least one file), so a backlog of any size is worked off in bounded batches with bounded memory.

A file deleted by hand after the stream listed it is skipped and named in a warning; a file that
ends mid-line (truncated by hand) is named too, its cut last line going to trades_quarantine
like any malformed line.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from urllib.parse import unquote

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
from crypto_assets.analytics.landing_retention import Expired, LandingRetention
from crypto_assets.analytics.ports import DEFAULT_MAX_BYTES_PER_TRIGGER
from crypto_assets.landing_files import LANDING_FILE_GLOB
from crypto_assets.local.file_source_log import files_of_running_batch

logger = logging.getLogger(__name__)

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
    """Landing files under one directory, streamed as file names and read by the batch."""

    def __init__(
        self,
        landing_dir: Path,
        max_bytes_per_trigger: int = DEFAULT_MAX_BYTES_PER_TRIGGER,
        max_files_per_trigger: int | None = None,
        checkpoint_dir: Path | None = None,
        retention: LandingRetention | None = None,
    ) -> None:
        self.landing_dir = landing_dir
        # Processed files are archived by Spark and aged out (None: every file stays in place).
        self.retention = retention
        self.max_bytes_per_trigger = max_bytes_per_trigger
        self.max_files_per_trigger = max_files_per_trigger
        # The query's checkpoint, where Spark lists the files of the running batch (None: they
        # are collected from the batch's DataFrame).
        self.checkpoint_dir = checkpoint_dir

    def stream(self, spark: SparkSession) -> DataFrame:
        """The streaming DataFrame of new landing files' names (`source_file`)."""
        reader = (
            spark.readStream.format("binaryFile")
            .schema(BINARY_FILE_SCHEMA)
            .option("pathGlobFilter", LANDING_FILE_GLOB)
            # A file deleted between listing and reading is skipped, not a batch failed forever.
            .option("ignoreMissingFiles", "true")
        )
        if self.retention is not None:
            reader = reader.options(**self.retention.source_options())
        # Spark accepts one of the two limits, not both.
        if self.max_files_per_trigger:
            reader = reader.option("maxFilesPerTrigger", self.max_files_per_trigger)
        else:
            reader = reader.option("maxBytesPerTrigger", self.max_bytes_per_trigger)
        return reader.load(str(self.landing_dir)).select(
            F.col("_metadata.file_name").alias("source_file")
        )

    def expire_processed(self) -> Expired:
        """Delete archived landing files older than the retention (nothing without one)."""
        return Expired() if self.retention is None else self.retention.expire()

    def decode(self, batch_df: DataFrame, processed: dt.datetime) -> tuple[DecodedBatch, int]:
        """The batch's good trades and rejected lines, and how many files it held."""
        names, contents = [], []
        for name in self._batch_files(batch_df):
            try:
                contents.append((Path(self.landing_dir) / name).read_bytes())
            except FileNotFoundError:
                logger.warning(
                    "landing file %s was listed for this batch but is gone (deleted or moved by "
                    "hand?): its trades are not in trades_raw, and the producer, whose state "
                    "counts them as landed, will not back-fill them; to recover, put the file "
                    "back under a new trades_*.json name, or add its trade ids to 'missing' in "
                    "producer_state.json and restart the producer (REST back-fill)",
                    name,
                )
                continue
            names.append(name)
        report_damaged_files(names, contents)
        return decode_landing_files(zip(names, contents, strict=True), processed), len(names)

    def _batch_files(self, batch_df: DataFrame) -> list[str]:
        """The names of the batch's files, as the file source took them.

        Read from the checkpoint, where Spark logged them before running the batch: a Spark job
        collecting `batch_df` took 20 ms of a small batch's 30 in this step (100 ms on a busy
        machine). Without a readable log, that job. Spark gives each name as in a URI
        (``trades_a%20b.json``), the log the whole URI: both are unescaped here.
        """
        if self.checkpoint_dir is not None:
            listed = files_of_running_batch(Path(self.checkpoint_dir))
            if listed is not None:
                return listed
        return [unquote(name) for name in batch_df.toArrow()["source_file"].to_pylist()]


def report_damaged_files(names: list[str], contents: list[bytes]) -> None:
    """One warning per file that is empty or ends mid-line (the producer ends every line)."""
    for name, content in zip(names, contents, strict=True):
        if not content:
            logger.warning("landing file %s is empty (truncated by hand?): no trades from it", name)
        elif not content.endswith(b"\n"):
            logger.warning(
                "landing file %s ends mid-line (truncated by hand?): its cut last line goes to "
                "trades_quarantine, the trades cut off are not in trades_raw",
                name,
            )
