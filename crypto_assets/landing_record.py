"""The landing record, defined once: each field's name, type and meaning (DESIGN "Landing records").

A landing file is NDJSON: one JSON object per line, each line one trade, its fields in the
order of `FIELDS`. Everything that writes, reads or describes such a line derives from here:

- the producer's writer (`binance.parsing.TradeRecord`: its fields, their order, the JSON keys);
- the rule of a usable trade (`trade_validation`: the fields a row must have, the optional
  fields' types);
- the local decoder (`analytics.landing_decoder`: which fields it reads, their Arrow types);
- the Arrow schemas (`arrow_schema()`: the landing line, trades_raw's first columns);
- the Spark schema of the Auto Loader reader (`spark_schema()`);
- the column descriptions the Dagster UI shows (`DESCRIPTIONS`);
- the readers of a landed line's ids (`trade_ids_by_symbol`: producer state, Volume upload).

Bottom layer: standard library only. pyarrow and PySpark are imported inside the functions
that build their schemas, so the producer loads neither and Dagster's process no PySpark.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql.types import StructType


@dataclass(frozen=True)
class Kind:
    """A field's type, as each consumer spells it."""

    name: str  # as DESIGN's table writes it
    python: type  # what the producer's record holds
    json_types: tuple[type, ...]  # the exact Python types a decoded JSON value of it may have
    arrow: str  # the pyarrow type factory
    spark: str  # the pyspark.sql.types class
    phrase: str  # "is not <phrase>": what a wrong value is told it is not

    def holds(self, value: object) -> bool:
        """Whether a decoded JSON value fits (a boolean is no whole number, an integer a double)."""
        return type(value) in self.json_types


STRING = Kind("string", str, (str,), "string", "StringType", "a string")
LONG = Kind("long", int, (int,), "int64", "LongType", "a whole number")
EPOCH_MS = Kind("long ms", int, (int,), "int64", "LongType", "a whole number of epoch milliseconds")
# A JSON integer is a price too (stored as a double); a string is not.
DOUBLE = Kind("double", float, (float, int), "float64", "DoubleType", "a number")
BOOLEAN = Kind("boolean", bool, (bool,), "bool_", "BooleanType", "true or false")


@dataclass(frozen=True)
class Field:
    """One field of a landing line."""

    name: str
    kind: Kind
    meaning: str  # one line: the column description in the UI
    # A line without it (or with null) is no usable trade.
    required: bool = True
    # Readers recompute it from other fields and never read it from the line.
    recomputed: bool = False


FIELDS: tuple[Field, ...] = (
    Field("event_type", STRING, "Binance event type ('trade')", required=False),
    Field(
        "event_time", EPOCH_MS, "Binance event time E, epoch ms (REST back-fill: the trade time)"
    ),
    Field("symbol", STRING, "Binance symbol, upper case (BTCUSDT)"),
    Field("trade_id", LONG, "Binance trade id t, contiguous per symbol"),
    Field("price", DOUBLE, "trade price p"),
    Field("quantity", DOUBLE, "trade quantity q"),
    Field("trade_value_usdt", DOUBLE, "price x quantity", required=False, recomputed=True),
    Field("trade_time", EPOCH_MS, "trade time T, epoch ms (the event time of the windows)"),
    Field("is_buyer_maker", BOOLEAN, "true when the buyer was the maker (the taker sold)"),
    Field(
        "ingestion_time",
        EPOCH_MS,
        "wall clock when the producer received the frame, epoch ms",
        required=False,
    ),
)

BY_NAME: dict[str, Field] = {field.name: field for field in FIELDS}
# The keys of a landing line, in the order the producer writes them.
NAMES: tuple[str, ...] = tuple(BY_NAME)
# The fields a usable trade must have.
REQUIRED: tuple[str, ...] = tuple(f.name for f in FIELDS if f.required)
# The fields readers take from a line (the rest they recompute).
READ: tuple[str, ...] = tuple(f.name for f in FIELDS if not f.recomputed)
# Each field's meaning: the column descriptions of the UI.
DESCRIPTIONS: dict[str, str] = {f.name: f.meaning for f in FIELDS}
# (name, Python type) pairs in order: the producer's record is a NamedTuple of them.
PYTHON_FIELDS: tuple[tuple[str, type], ...] = tuple((f.name, f.kind.python) for f in FIELDS)


def fields(names: Iterable[str] = NAMES) -> list[Field]:
    """The fields named `names`, in that order; KeyError for a name that is no field."""
    return [BY_NAME[name] for name in names]


def arrow_schema(names: Iterable[str] = NAMES) -> pa.Schema:
    """The Arrow schema of the fields `names` (default: the whole line), all nullable."""
    import pyarrow as pa  # noqa: PLC0415 - the producer does not load pyarrow

    return pa.schema([pa.field(f.name, getattr(pa, f.kind.arrow)()) for f in fields(names)])


def spark_schema(names: Iterable[str] = READ) -> StructType:
    """The Spark schema of the fields `names` (default: those readers read), all nullable."""
    from pyspark.sql import types  # noqa: PLC0415 - neither the producer nor Dagster loads Spark

    return types.StructType(
        [types.StructField(f.name, getattr(types, f.kind.spark)()) for f in fields(names)]
    )


_SYMBOL, _TRADE_ID = (f.name for f in fields(("symbol", "trade_id")))


def trade_ids_by_symbol(lines: Iterable[str | bytes]) -> dict[str, list[int]]:
    """The trade ids of landing lines (blank ones skipped) by symbol, in the lines' order.

    Raises ValueError (not JSON), KeyError (no symbol or trade id) or TypeError (not an object)
    for a line that is not a landing line; the ids are not checked further.
    """
    landed: dict[str, list[int]] = {}
    for line in lines:
        if line.strip():
            row = json.loads(line)
            landed.setdefault(row[_SYMBOL], []).append(row[_TRADE_ID])
    return landed
