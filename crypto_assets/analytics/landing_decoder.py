"""Landing files (raw bytes) to good trades and rejected lines: pure Python, no Spark, no I/O.

Every line of every file is judged alone by `landing_row_problem`, the rule the producer's parser
shares, so no line, however malformed, can stop the others: not UTF-8, truncated, a JSON array
or string, CRLF line ends, a byte-order mark, a huge line. Blank lines are no rows. A rejected
line keeps its original text (non-UTF-8 bytes escaped) for the quarantine.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from crypto_assets.analytics.schema import TRADES_QUARANTINE_SCHEMA, TRADES_RAW_SCHEMA
from crypto_assets.trade_validation import landing_row_problem

_BOM = b"\xef\xbb\xbf"
_TIMESTAMP = TRADES_RAW_SCHEMA.field("processed_time").type
_DAY_MS = 86_400_000
_EPOCH = dt.date(1970, 1, 1)
# A quarantined line is kept whole up to this size; beyond it, its head and its length.
MAX_RAW_LINE_CHARS = 1 << 20


@dataclass(frozen=True)
class DecodedBatch:
    """The good trades (trades_raw columns, duplicates not yet removed) and the rejected lines."""

    trades: pa.Table
    rejected: pa.Table


def _repeat(moment: dt.datetime, count: int) -> pa.Array:
    return pa.repeat(pa.scalar(moment, _TIMESTAMP), count)


def _utc_dates(epoch_ms: pa.Array) -> pa.Array:
    # Formatted once per distinct day: pyarrow's strftime costs 1.3 us a row, this 0.05.
    days = pc.divide(epoch_ms, _DAY_MS)
    distinct = pc.unique(days)
    names = [(_EPOCH + dt.timedelta(days=day)).isoformat() for day in distinct.to_pylist()]
    return pc.take(pa.array(names, pa.string()), pc.index_in(days, distinct))


def raw_text(line: bytes) -> str:
    """A rejected line as the quarantine keeps it: non-UTF-8 bytes escaped, a huge one cut."""
    text = line.decode("utf-8", errors="backslashreplace")
    if len(text) > MAX_RAW_LINE_CHARS:
        return f"{text[:MAX_RAW_LINE_CHARS]}... ({len(line)} bytes, cut)"
    return text


def _json_problem(line: bytes, error: ValueError) -> str:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not UTF-8 text (byte {exc.start}): the landing format is UTF-8 NDJSON"
    first = str(error).splitlines()[0] if str(error) else type(error).__name__
    return f"not valid JSON ({first})"


def _lines(content: bytes) -> Iterable[bytes]:
    if content.startswith(_BOM):
        content = content[len(_BOM) :]
    for line in content.split(b"\n"):
        if line.endswith(b"\r"):
            line = line[:-1]  # noqa: PLW2901 - CRLF line ends
        if line.strip():
            yield line


def line_problem(line: bytes, now_ms: int) -> tuple[dict | None, str | None]:
    """One landing line judged alone: (row, None) for a usable trade, else (None, why)."""
    try:
        row = orjson.loads(line)
    except ValueError as exc:  # orjson.JSONDecodeError derives from it
        return None, _json_problem(line, exc)
    problem = landing_row_problem(row, now_ms)
    return (row, None) if problem is None else (None, problem)


def quarantine_rows(
    files: list[str], lines: list[str], reasons: list[str], processed: dt.datetime
) -> pa.Table:
    """The rejected lines as trades_quarantine rows."""
    return pa.table(
        {
            "source_file": pa.array(files, pa.string()),
            "raw_line": pa.array(lines, pa.string()),
            "reason": pa.array(reasons, pa.string()),
            "processed_time": _repeat(processed, len(reasons)),
        },
        schema=TRADES_QUARANTINE_SCHEMA,
    )


class TradeColumns:
    """Column lists of the good trades, appended to row by row."""

    def __init__(self) -> None:
        self.names = (
            "event_type",
            "event_time",
            "symbol",
            "trade_id",
            "price",
            "quantity",
            "trade_time",
            "is_buyer_maker",
            "ingestion_time",
            "source_file",
        )
        self.values: dict[str, list] = {name: [] for name in self.names}

    def append(self, row: dict, source_file: str) -> None:
        """Add one good row (as `landing_row_problem` accepted it) from `source_file`."""
        v = self.values
        v["event_type"].append(row.get("event_type"))
        v["event_time"].append(row["event_time"])
        v["symbol"].append(row["symbol"])
        v["trade_id"].append(row["trade_id"])
        v["price"].append(float(row["price"]))
        v["quantity"].append(float(row["quantity"]))
        v["trade_time"].append(row["trade_time"])
        v["is_buyer_maker"].append(row["is_buyer_maker"])
        v["ingestion_time"].append(row.get("ingestion_time"))
        v["source_file"].append(source_file)

    def table(self, processed: dt.datetime) -> pa.Table:
        """The trades_raw rows appended so far, processed at `processed`."""
        v = self.values
        count = len(v["symbol"])
        price = pa.array(v["price"], pa.float64())
        quantity = pa.array(v["quantity"], pa.float64())
        trade_time = pa.array(v["trade_time"], pa.int64())
        ingestion = pa.array(v["ingestion_time"], pa.int64())
        columns = {
            "event_type": pa.array(v["event_type"], pa.string()),
            "event_time": pa.array(v["event_time"], pa.int64()),
            "symbol": pa.array(v["symbol"], pa.string()),
            "trade_id": pa.array(v["trade_id"], pa.int64()),
            "price": price,
            "quantity": quantity,
            "trade_value_usdt": pc.multiply(price, quantity),
            "trade_time": trade_time,
            "is_buyer_maker": pa.array(v["is_buyer_maker"], pa.bool_()),
            "ingestion_time": ingestion,
            "source_file": pa.array(v["source_file"], pa.string()),
            "processed_time": _repeat(processed, count),
            "ingest_lag_ms": pc.subtract(ingestion, trade_time),
            "trade_date": _utc_dates(trade_time),
        }
        return pa.table(columns, schema=TRADES_RAW_SCHEMA)


def decode_landing_files(
    files: Iterable[tuple[str, bytes]], processed: dt.datetime
) -> DecodedBatch:
    """Judge every line of `files` ((file name, content)); `processed` is the UTC batch time."""
    now_ms = int(processed.timestamp() * 1000)
    good = TradeColumns()
    bad_files: list[str] = []
    bad_lines: list[str] = []
    reasons: list[str] = []
    loads = orjson.loads
    for source_file, content in files:
        for line in _lines(content):
            try:
                row = loads(line)
            except ValueError as exc:  # orjson.JSONDecodeError derives from it
                problem = _json_problem(line, exc)
            else:
                problem = landing_row_problem(row, now_ms)
                if problem is None:
                    good.append(row, source_file)
                    continue
            bad_files.append(source_file)
            bad_lines.append(raw_text(line))
            reasons.append(problem)
    rejected = quarantine_rows(bad_files, bad_lines, reasons, processed)
    return DecodedBatch(good.table(processed), rejected)
