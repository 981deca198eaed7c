"""The landing record is defined once: what each consumer must hold is derived from it and checked.

Each expectation is built from `landing_record.FIELDS` with this test's own table of how a kind
is spelled in Arrow and Spark, and compared whole (names, order, types, nullability), so a field
added, dropped, retyped or reordered in one place but not in the definition fails here.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from pyspark.sql.types import (
    BooleanType,
    DoubleType,
    LongType,
    StringType,
    StructField,
    StructType,
)

from crypto_assets import landing_record
from crypto_assets.analytics import schema
from crypto_assets.analytics.landing_decoder import decode_landing_files
from crypto_assets.binance.parsing import TradeRecord, parse_frame, trade_from_rest
from crypto_assets.databricks import autoloader_reader
from crypto_assets.landing_record import BOOLEAN, DOUBLE, EPOCH_MS, FIELDS, LONG, STRING
from crypto_assets.orchestration.metadata import LANDING_SCHEMA, column_schema
from crypto_assets.trade_validation import REQUIRED_FIELDS, landing_row_problem
from crypto_assets_tests.recorded_trades import LANDING_FIELDS, landing_row

ARROW = {
    STRING: pa.string(),
    LONG: pa.int64(),
    EPOCH_MS: pa.int64(),
    DOUBLE: pa.float64(),
    BOOLEAN: pa.bool_(),
}
SPARK = {
    STRING: StringType(),
    LONG: LongType(),
    EPOCH_MS: LongType(),
    DOUBLE: DoubleType(),
    BOOLEAN: BooleanType(),
}
# A value of the wrong type for each kind, as a decoded JSON line may hold it.
WRONG = {STRING: 7, LONG: 1.5, EPOCH_MS: 1.5, DOUBLE: "1.0", BOOLEAN: 1}
SYMBOLS = frozenset({"BTCUSDT", "ETHUSDT"})
# A receive time just after the recording (2024-08-09): its trades are plausible then.
RECEIVED_MS = 1_723_161_600_000
NAMES = [field.name for field in FIELDS]
READ = [field.name for field in FIELDS if not field.recomputed]


def arrow_fields(names: list[str]) -> list[pa.Field]:
    by_name = {field.name: field for field in FIELDS}
    return [pa.field(name, ARROW[by_name[name].kind], nullable=True) for name in names]


def spark_schema(names: list[str]) -> StructType:
    by_name = {field.name: field for field in FIELDS}
    return StructType([StructField(name, SPARK[by_name[name].kind], True) for name in names])


@pytest.fixture(scope="module")
def frames(recording: Path) -> list[str]:
    """The first 200 recorded trade frames (both symbols)."""
    found = []
    with gzip.open(recording, "rt", encoding="utf-8") as lines:
        for line in lines:
            frame = line.split(" ", 1)[1].rstrip("\n")
            if '"e":"trade"' in frame:
                found.append(frame)
            if len(found) == 200:
                break
    return found


def test_the_definition_is_designs_table_and_consistent() -> None:
    assert tuple(NAMES) == LANDING_FIELDS  # the tests' independent reference of DESIGN's table
    assert len(set(NAMES)) == len(NAMES)
    assert all(field.meaning and "\n" not in field.meaning for field in FIELDS)
    assert tuple(NAMES) == landing_record.NAMES
    assert tuple(READ) == landing_record.READ
    assert tuple(f.name for f in FIELDS if f.required) == landing_record.REQUIRED
    assert {f.name: f.meaning for f in FIELDS} == landing_record.DESCRIPTIONS
    assert list(landing_record.DESCRIPTIONS) == NAMES
    assert landing_record.arrow_schema() == pa.schema(arrow_fields(NAMES))
    assert landing_record.spark_schema() == spark_schema(READ)


def test_the_producer_writes_every_field_in_order_with_its_type(frames: list[str]) -> None:
    assert TradeRecord._fields == tuple(NAMES)
    assert [kind for _, kind in landing_record.PYTHON_FIELDS] == [f.kind.python for f in FIELDS]
    records = [parse_frame(frame, RECEIVED_MS, SYMBOLS) for frame in frames]
    assert {type(record) for record in records} == {TradeRecord}
    assert {record.symbol for record in records} == SYMBOLS
    rest = trade_from_rest(
        "btcusdt",
        {
            "id": 5,
            "price": "61837.63",
            "qty": "0.02",
            "time": 1_723_161_255_342,
            "isBuyerMaker": True,
            "isBestMatch": True,
        },
        RECEIVED_MS,
    )
    for record, frame in [*zip(records, frames, strict=True), (rest, None)]:
        line = json.loads(record.to_json())
        assert list(line) == NAMES
        for field in FIELDS:
            assert type(line[field.name]) is field.kind.python, field.name
            assert field.kind.holds(line[field.name]), field.name
        if frame is not None:
            assert line == landing_row(frame, RECEIVED_MS)


def test_the_auto_loader_reader_reads_the_fields_readers_read() -> None:
    assert spark_schema(READ) == autoloader_reader.LANDING_LINE_SCHEMA
    assert list(autoloader_reader.FIELDS) == READ


def test_trade_inputs_are_record_fields() -> None:
    names = list(schema.TRADE_INPUT_FIELDS)
    assert names == [name for name in NAMES if name in names]  # the record's order
    assert set(names) <= set(READ)  # the metrics read no recomputed field


def test_trades_raw_starts_with_the_record_and_only_adds_columns() -> None:
    raw = schema.TRADES_RAW_SCHEMA
    assert list(raw)[: len(NAMES)] == arrow_fields(NAMES)
    assert not set(raw.names[len(NAMES) :]) & set(NAMES)
    assert pa.schema(arrow_fields(NAMES)) == LANDING_SCHEMA


def test_the_decoder_keeps_every_field_of_real_lines(frames: list[str]) -> None:
    lines = [parse_frame(frame, RECEIVED_MS, SYMBOLS).to_json() for frame in frames]
    processed = dt.datetime.fromtimestamp(RECEIVED_MS / 1000, dt.UTC)
    batch = decode_landing_files([("trades_x.json", "\n".join(lines).encode())], processed)
    assert batch.rejected.num_rows == 0
    assert batch.trades.select(NAMES).to_pylist() == [json.loads(line) for line in lines]


def test_the_ui_describes_every_field_by_its_meaning() -> None:
    for table_schema in (LANDING_SCHEMA, schema.TRADES_RAW_SCHEMA):
        columns = column_schema(table_schema).columns[: len(NAMES)]
        assert [(c.name, c.type, c.description) for c in columns] == [
            (f.name, str(ARROW[f.kind]), f.meaning) for f in FIELDS
        ]
    assert {name: schema.COLUMN_DESCRIPTIONS[name] for name in NAMES} == {
        f.name: f.meaning for f in FIELDS
    }


def test_validation_requires_and_types_the_fields_of_the_record(frames: list[str]) -> None:
    good = json.loads(parse_frame(frames[0], RECEIVED_MS, SYMBOLS).to_json())
    assert landing_row_problem(good, RECEIVED_MS) is None
    assert tuple(f.name for f in FIELDS if f.required) == REQUIRED_FIELDS
    for field in FIELDS:
        without = {k: v for k, v in good.items() if k != field.name}
        problem = landing_row_problem(without, RECEIVED_MS)
        assert problem == (f"missing {field.name}" if field.required else None), field.name
        wrong = landing_row_problem({**good, field.name: WRONG[field.kind]}, RECEIVED_MS)
        if field.recomputed:  # never read, so never judged
            assert wrong is None, field.name
        else:
            assert wrong is not None, field.name
            assert field.name in wrong, wrong


def test_readers_of_ids_read_the_records_symbol_and_trade_id(frames: list[str]) -> None:
    records = [parse_frame(frame, RECEIVED_MS, SYMBOLS) for frame in frames]
    lines = [record.to_json() for record in records]
    expected: dict[str, list[int]] = {}
    for record in records:
        expected.setdefault(record.symbol, []).append(record.trade_id)
    assert landing_record.trade_ids_by_symbol([*lines, "  "]) == expected
    assert landing_record.trade_ids_by_symbol(line.encode() for line in lines) == expected
    for bad, error in (("{", ValueError), ('{"symbol": "BTCUSDT"}', KeyError), ("[1]", TypeError)):
        with pytest.raises(error):
            landing_record.trade_ids_by_symbol([lines[0], bad])


def test_the_producer_and_the_definition_load_neither_pyarrow_nor_pyspark() -> None:
    code = (
        "import sys\n"
        "import crypto_assets.landing_record, crypto_assets.binance.parsing\n"
        "import crypto_assets.trade_validation\n"
        "print(sorted(m for m in ('pyarrow', 'pyspark') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
