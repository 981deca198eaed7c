"""The Databricks deployment's reader: Auto Loader over the Volume's landing JSON, fixed schema.

On Databricks the landing files are read by Auto Loader (``cloudFiles``, JSON, the schema given
and never evolved: a value that does not fit goes to the rescued-data column, a line that is not
JSON to the corrupt-record column). Off Databricks, where ``cloudFiles`` does not exist, Spark's
JSON file source reads them with the same schema, a malformed line becoming a row with its text
in the corrupt-record column, read as bytes (a line need not be UTF-8). Either way every row is
judged by `landing_row_problem`, the rule of the local reader, and a line Spark could not fit
into the schema is judged from its own text (or its rescued values), so it is quarantined with
the same reason the local deployment gives.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable

import orjson
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F  # noqa: N812 - the PySpark convention
from pyspark.sql.types import StringType, StructField, StructType

from crypto_assets import landing_record
from crypto_assets.analytics.landing_decoder import (
    DecodedBatch,
    TradeColumns,
    line_problem,
    quarantine_rows,
    raw_text,
)
from crypto_assets.analytics.landing_retention import Expired
from crypto_assets.analytics.ports import DEFAULT_MAX_BYTES_PER_TRIGGER
from crypto_assets.landing_files import LANDING_FILE_GLOB
from crypto_assets.trade_validation import landing_row_problem

RESCUED_DATA = "_rescued_data"
CORRUPT_RECORD = "_corrupt_record"
SOURCE_FILE = "source_file"
# Auto Loader adds the file's path to what it rescues; it is not a field of the line.
_RESCUED_FILE_PATH = "_file_path"
# The fields of a landing line that readers read (landing_record.READ; the recomputed
# trade_value_usdt is left out: Auto Loader rescues it, as any field outside the schema).
# Prices and quantities are doubles: a JSON integer fits (as the local rule accepts it), a string
# does not and is rescued or corrupt, as the local rule rejects it; whole-number fields are longs,
# so 1.5 or a boolean there is refused.
LANDING_LINE_SCHEMA = landing_record.spark_schema(landing_record.READ)
FIELDS = landing_record.READ


def _limit(prefix: str, max_bytes: int, max_files: int | None) -> dict[str, str]:
    # Spark accepts one of the two limits, not both.
    if max_files:
        return {f"{prefix}maxFilesPerTrigger": str(max_files)}
    return {f"{prefix}maxBytesPerTrigger": str(max_bytes)}


def auto_loader_options(
    schema_location: str, max_bytes_per_trigger: int, max_files_per_trigger: int | None = None
) -> dict[str, str]:
    """The ``cloudFiles`` options of the Databricks stream."""
    return {
        "cloudFiles.format": "json",
        "cloudFiles.schemaLocation": schema_location,
        # The schema is given and never evolves: a field that does not fit is rescued instead.
        "cloudFiles.schemaEvolutionMode": "rescue",
        "rescuedDataColumn": RESCUED_DATA,
        # A line that is not JSON at all keeps its text here (its columns, and the rescued
        # data, are null), so it is quarantined with its own reason and text, as locally.
        "columnNameOfCorruptRecord": CORRUPT_RECORD,
        "cloudFiles.includeExistingFiles": "true",
        "pathGlobFilter": LANDING_FILE_GLOB,
        **_limit("cloudFiles.", max_bytes_per_trigger, max_files_per_trigger),
    }


def file_source_options(
    max_bytes_per_trigger: int, max_files_per_trigger: int | None = None
) -> dict[str, str]:
    """The JSON file source options of the stream off Databricks."""
    return {
        "mode": "PERMISSIVE",
        "columnNameOfCorruptRecord": CORRUPT_RECORD,
        "pathGlobFilter": LANDING_FILE_GLOB,
        **_limit("", max_bytes_per_trigger, max_files_per_trigger),
        # A file deleted between listing and reading is skipped, not a batch failed forever.
        "ignoreMissingFiles": "true",
    }


class AutoLoaderReader:
    """Landing JSON under one folder, as rows of the landing schema plus their source file."""

    def __init__(
        self,
        landing_dir: str,
        schema_location: str,
        *,
        on_databricks: bool,
        max_bytes_per_trigger: int = DEFAULT_MAX_BYTES_PER_TRIGGER,
        max_files_per_trigger: int | None = None,
    ) -> None:
        self.landing_dir = landing_dir
        self.schema_location = schema_location
        self.on_databricks = on_databricks
        self.max_bytes_per_trigger = max_bytes_per_trigger
        self.max_files_per_trigger = max_files_per_trigger

    def stream(self, spark: SparkSession) -> DataFrame:
        """The streaming DataFrame of new landing lines (the schema's fields, `source_file`)."""
        schema = StructType(
            [*LANDING_LINE_SCHEMA.fields, StructField(CORRUPT_RECORD, StringType())]
        )
        if self.on_databricks:
            extra = [RESCUED_DATA]
            reader = spark.readStream.format("cloudFiles").options(
                **auto_loader_options(
                    self.schema_location, self.max_bytes_per_trigger, self.max_files_per_trigger
                )
            )
        else:
            extra = []
            reader = spark.readStream.format("json").options(
                **file_source_options(self.max_bytes_per_trigger, self.max_files_per_trigger)
            )
        return (
            reader.schema(schema)
            .load(self.landing_dir)
            .select(
                *FIELDS,
                *extra,
                # As bytes: a line that is not UTF-8 is kept as it came, and converting it to a
                # Python string would fail the batch, and every retry of it.
                F.col(CORRUPT_RECORD).cast("binary").alias(CORRUPT_RECORD),
                F.col("_metadata.file_name").alias(SOURCE_FILE),
            )
        )

    def expire_processed(self) -> Expired:
        """Nothing: the Volume's landing files stay (Auto Loader's cleanSource is not enabled)."""
        return Expired()

    def decode(self, batch_df: DataFrame, processed: dt.datetime) -> tuple[DecodedBatch, int]:
        """The batch's good trades and rejected lines, and how many files it held."""
        rows = batch_df.toArrow().to_pylist()
        return decode_rows(rows, processed), len({row[SOURCE_FILE] for row in rows})


def _line_of(row: dict) -> dict:
    """The landing line a schema row stands for: its fields, with rescued values put back."""
    line = {name: row[name] for name in FIELDS if row.get(name) is not None}
    rescued = row.get(RESCUED_DATA)
    if rescued:
        values = orjson.loads(rescued)
        values.pop(_RESCUED_FILE_PATH, None)
        line.update(values)
    return line


def decode_rows(rows: Iterable[dict], processed: dt.datetime) -> DecodedBatch:
    """Judge schema rows (`FIELDS`, `source_file`, rescued or corrupt column) like landing lines."""
    now_ms = int(processed.timestamp() * 1000)
    good = TradeColumns()
    bad_files: list[str] = []
    bad_lines: list[str] = []
    reasons: list[str] = []
    for row in rows:
        corrupt = row.get(CORRUPT_RECORD)
        if corrupt is not None:
            text = corrupt if isinstance(corrupt, bytes) else corrupt.encode("utf-8")
            line, problem = line_problem(text, now_ms)
            shown = raw_text(text)
        else:
            line = _line_of(row)
            problem = landing_row_problem(line, now_ms)
            shown = json.dumps(line, separators=(", ", ": "))
        if problem is None and line is not None:
            good.append(line, row[SOURCE_FILE])
            continue
        bad_files.append(row[SOURCE_FILE])
        bad_lines.append(shown)
        reasons.append(problem or "not a landing line")
    return DecodedBatch(
        good.table(processed), quarantine_rows(bad_files, bad_lines, reasons, processed)
    )
