"""The Databricks reader: Auto Loader's options, and rows judged like the local reader's lines."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pytest
from pyspark.sql import DataFrame, SparkSession

from crypto_assets.analytics.landing_decoder import DecodedBatch, decode_landing_files
from crypto_assets.databricks.autoloader_reader import (
    CORRUPT_RECORD,
    FIELDS,
    LANDING_LINE_SCHEMA,
    RESCUED_DATA,
    SOURCE_FILE,
    AutoLoaderReader,
    auto_loader_options,
    decode_rows,
    file_source_options,
)
from crypto_assets_tests.analytics.landing_files import write_bytes

PROCESSED = dt.datetime(2024, 8, 2, tzinfo=dt.UTC)
FILE = "trades_20240801_000000_000001.json"
GOOD = {
    "event_type": "trade",
    "event_time": 1_722_470_400_123,
    "symbol": "BTCUSDT",
    "trade_id": 42,
    "price": 64_000.5,
    "quantity": 0.25,
    "trade_time": 1_722_470_400_100,
    "is_buyer_maker": False,
    "ingestion_time": 1_722_470_400_200,
}


def schema_row(line: dict, **extra: object) -> dict:
    """A row as Spark hands it over: every schema field (null when absent), the file name."""
    return {**{name: line.get(name) for name in FIELDS}, SOURCE_FILE: FILE, **extra}


def test_auto_loader_options_are_databricks_documented_ones() -> None:
    options = auto_loader_options("/Volumes/c/s/crypto_landing/_schemas/q", 1024)
    assert options == {
        "cloudFiles.format": "json",
        "cloudFiles.schemaLocation": "/Volumes/c/s/crypto_landing/_schemas/q",
        "cloudFiles.schemaEvolutionMode": "rescue",
        "rescuedDataColumn": "_rescued_data",
        "columnNameOfCorruptRecord": "_corrupt_record",
        "cloudFiles.includeExistingFiles": "true",
        "cloudFiles.maxBytesPerTrigger": "1024",
        "pathGlobFilter": "trades_*.json",
    }
    by_files = auto_loader_options("/s", 1024, max_files_per_trigger=5)
    assert by_files["cloudFiles.maxFilesPerTrigger"] == "5"
    assert "cloudFiles.maxBytesPerTrigger" not in by_files


def test_file_source_keeps_malformed_lines_as_rows() -> None:
    options = file_source_options(2048)
    assert options["mode"] == "PERMISSIVE"
    assert options["columnNameOfCorruptRecord"] == "_corrupt_record"
    assert options["maxBytesPerTrigger"] == "2048"
    assert options["pathGlobFilter"] == "trades_*.json"


def test_landing_schema_has_every_field_of_a_landing_line() -> None:
    assert set(LANDING_LINE_SCHEMA.fieldNames()) == set(GOOD)
    types = {f.name: f.dataType.simpleString() for f in LANDING_LINE_SCHEMA}
    assert types["price"] == types["quantity"] == "double"
    assert types["trade_id"] == types["trade_time"] == types["event_time"] == "bigint"
    assert types["is_buyer_maker"] == "boolean"


def test_good_rows_become_the_same_trades_as_the_local_decoder() -> None:
    other = {**GOOD, "trade_id": 43, "price": 64_001}  # a JSON integer price is a price too
    decoded = decode_rows([schema_row(GOOD), schema_row(other)], PROCESSED)
    content = "\n".join(json.dumps(line) for line in (GOOD, other)).encode()
    local = decode_landing_files([(FILE, content)], PROCESSED)
    assert decoded.rejected.num_rows == 0
    assert decoded.trades.equals(local.trades)
    assert decoded.trades["price"].to_pylist() == [64_000.5, 64_001.0]


def test_corrupt_rows_are_judged_from_their_text() -> None:
    string_price = json.dumps({**GOOD, "price": "64000.5"})
    rows = [
        schema_row({}, **{CORRUPT_RECORD: "not json"}),
        schema_row({}, **{CORRUPT_RECORD: string_price}),
        schema_row({"symbol": "BTCUSDT", "trade_id": 1}),  # fits the schema, fields missing
    ]
    decoded = decode_rows(rows, PROCESSED)
    assert decoded.trades.num_rows == 0
    reasons = decoded.rejected["reason"].to_pylist()
    assert reasons[0].startswith("not valid JSON")
    assert reasons[1] == "price '64000.5' and quantity 0.25 must be JSON numbers"
    assert reasons[2] == "missing event_time, price, quantity, trade_time, is_buyer_maker"
    lines = decoded.rejected["raw_line"].to_pylist()
    assert lines[:2] == ["not json", string_price]
    assert json.loads(lines[2]) == {"symbol": "BTCUSDT", "trade_id": 1}
    assert decoded.rejected["source_file"].to_pylist() == [FILE] * 3
    assert decoded.rejected.schema.field("processed_time").type == pa.timestamp("us", tz="UTC")


def test_rescued_values_are_put_back_before_judging() -> None:
    # Auto Loader's rescue mode: a value that does not fit its column is null there and kept,
    # with the file path, in the rescued-data JSON; an unknown field is rescued too.
    mistyped = schema_row(
        {**GOOD, "price": None},
        **{RESCUED_DATA: json.dumps({"price": "64000.5", "_file_path": f"/Volumes/x/{FILE}"})},
    )
    extra_field = schema_row(GOOD, **{RESCUED_DATA: json.dumps({"venue": "binance"})})
    decoded = decode_rows([mistyped, extra_field], PROCESSED)
    assert decoded.rejected["reason"].to_pylist() == [
        "price '64000.5' and quantity 0.25 must be JSON numbers"
    ]
    assert json.loads(decoded.rejected["raw_line"][0].as_py())["price"] == "64000.5"
    assert decoded.trades["trade_id"].to_pylist() == [42]  # an extra field harms no trade


@pytest.mark.spark
def test_a_line_that_is_not_utf8_is_quarantined_and_stops_nothing(
    spark: SparkSession, tmp_path: Path
) -> None:
    # Spark's JSON file source keeps such a line as its corrupt record, bytes and all: it must
    # reach the quarantine with its reason, not fail the batch (and every retry of it).
    landing = tmp_path / "landing"
    good = json.dumps(GOOD).encode()
    write_bytes(landing, FILE, b"\n".join([good, b'{"symbol": "BTC\xff\xfeUSDT"}']))
    reader = AutoLoaderReader(str(landing), str(tmp_path / "schemas"), on_databricks=False)
    decoded: list[DecodedBatch] = []

    def process(batch_df: DataFrame, _: int) -> None:
        decoded.append(reader.decode(batch_df, PROCESSED)[0])

    query = (
        reader.stream(spark)
        .writeStream.option("checkpointLocation", str(tmp_path / "checkpoint"))
        .foreachBatch(process)
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    (batch,) = decoded
    assert batch.trades["trade_id"].to_pylist() == [42]
    (reason,) = batch.rejected["reason"].to_pylist()
    assert reason.startswith("not UTF-8 text"), reason
