"""Landing files (raw bytes) to good trades and rejected lines: no Spark, no I/O.

Every line of every file is judged alone by `landing_row_problem`, the rule the producer's parser
shares, so no line, however malformed, can stop the others: not UTF-8, truncated, a JSON array
or string, CRLF line ends, a byte-order mark, a huge line. Blank lines are no rows. A rejected
line keeps its original text (non-UTF-8 bytes escaped) for the quarantine.

A clean file, the common case, takes a faster road with the same outcome: Arrow's JSON reader
parses it whole and `clean_trades` checks its columns at once (about 4 times faster than a line
at a time in Python). Any file that road is not sure of, one doubtful line is enough, is judged
line by line instead.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from crypto_assets import landing_record
from crypto_assets.analytics.schema import TRADES_QUARANTINE_SCHEMA, TRADES_RAW_SCHEMA
from crypto_assets.trade_validation import (
    EARLIEST_TIME_MS,
    FUTURE_SLACK_MS,
    SYMBOL_PATTERN,
    landing_row_problem,
)

_BOM = b"\xef\xbb\xbf"
_LINE_SCHEMA = landing_record.arrow_schema()
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


# The fields read from a line, and how the analytics recompute the others (`Field.recomputed`).
_READ = landing_record.fields(landing_record.READ)
_RECOMPUTED = [field.name for field in landing_record.FIELDS if field.recomputed]
_RECOMPUTE = {"trade_value_usdt": lambda cols: pc.multiply(cols["price"], cols["quantity"])}


def _array(field: landing_record.Field, values: list) -> pa.Array:
    """One read field of the good rows as an Arrow array of its type."""
    if field.kind is landing_record.DOUBLE:  # a JSON integer is a number too: made a double
        values = [None if v is None else float(v) for v in values]  # pyarrow refuses 2^53+1
    return pa.array(values, _LINE_SCHEMA.field(field.name).type)


class TradeColumns:
    """Column lists of the good trades' read fields, appended to row by row."""

    def __init__(self) -> None:
        self.values: dict[str, list] = {field.name: [] for field in _READ}
        self.source_files: list[str] = []
        # Values are taken out of each row rather than the rows kept: keeping 34,000 dicts made
        # the garbage collector's passes cost a batch about a seventh more decoding time.
        self._appends = tuple((name, values.append) for name, values in self.values.items())

    def append(self, row: dict, source_file: str) -> None:
        """Add one good row (as `landing_row_problem` accepted it) from `source_file`."""
        get = row.get
        for name, add in self._appends:
            add(get(name))
        self.source_files.append(source_file)

    def table(self, processed: dt.datetime) -> pa.Table:
        """The trades_raw rows appended so far, processed at `processed`."""
        read = pa.table({field.name: _array(field, self.values[field.name]) for field in _READ})
        return trades_raw_rows(read, pa.array(self.source_files, pa.string()), processed)


def trades_raw_rows(read: pa.Table, source_files: pa.Array, processed: dt.datetime) -> pa.Table:
    """trades_raw rows of good trades' read fields (`read`), from `source_files`."""
    columns = {field.name: read[field.name] for field in _READ}
    for name in _RECOMPUTED:
        columns[name] = _RECOMPUTE[name](columns)
    trade_time = columns["trade_time"]
    columns["source_file"] = source_files
    columns["processed_time"] = _repeat(processed, len(source_files))
    columns["ingest_lag_ms"] = pc.subtract(columns["ingestion_time"], trade_time)
    columns["trade_date"] = _utc_dates(trade_time)
    return pa.table(columns, schema=TRADES_RAW_SCHEMA)


# Arrow's reader takes only the fields read, as their types: a value of another JSON type fails
# the file, which then goes line by line.
_JSON_OPTIONS = pa_json.ParseOptions(
    explicit_schema=landing_record.arrow_schema(landing_record.READ),
    unexpected_field_behavior="ignore",
)
_SYMBOL = f"^{SYMBOL_PATTERN.pattern}$"


def _between(values: pa.ChunkedArray, low: float, high: float) -> pa.ChunkedArray:
    return pc.and_(pc.greater_equal(values, low), pc.less_equal(values, high))


def _above_zero_finite(values: pa.ChunkedArray) -> pa.ChunkedArray:
    return pc.and_(pc.greater(values, 0.0), pc.less(values, float("inf")))


_NEWLINE, _OPEN = ord("\n"), ord("{")


def _objects_one_a_line(body: bytes) -> int:
    """The lines of `body` that are not empty, if each starts with the one `{` it holds, else 0.

    Counted by numpy over the bytes: splitting the file into lines was 40% of the decoding.
    """
    if b"[" in body or not body:
        return 0
    data = np.frombuffer(body, np.uint8)
    # Each line's first byte: the file's, and the one after each newline but the last byte.
    firsts = np.concatenate((data[:1], data[np.flatnonzero(data[:-1] == _NEWLINE) + 1]))
    opening = firsts == _OPEN
    if not np.all(opening | (firsts == _NEWLINE)):  # a line starting otherwise
        return 0
    count = int(np.count_nonzero(opening))
    return count if np.count_nonzero(data == _OPEN) == count else 0


def clean_trades(content: bytes, now_ms: int) -> pa.Table | None:
    """The read fields of every line of `content`, or None unless each is a usable trade.

    Only a file whose every line that is not empty starts with the one `{` it holds (so no
    nesting and no second object) and which holds no `[` is parsed (Arrow's reader kills the
    process on a file of `null` lines: pyarrow 26 segfaults there); its columns must then pass
    the checks of `landing_row_problem`. Anything else, including what Arrow's reader accepts
    and orjson does not (NaN, Infinity), fails a check: None, and the caller judges the file
    line by line.
    """
    body = content.removeprefix(_BOM)
    count = _objects_one_a_line(body)
    if count == 0:
        return None
    try:
        read = pa_json.read_json(io.BytesIO(body), parse_options=_JSON_OPTIONS)
    except (pa.ArrowException, ValueError):  # not JSON, not UTF-8, a value of another type
        return None
    if read.num_rows != count:  # a value after the object on its line (`{...} null`)
        return None
    latest = now_ms + FUTURE_SLACK_MS
    price, quantity = read["price"], read["quantity"]
    checks = (
        pc.match_substring_regex(read["symbol"], _SYMBOL),
        pc.greater_equal(read["trade_id"], 0),
        _above_zero_finite(price),
        # With the price's, this one says the quantity is finite and above zero too.
        _above_zero_finite(pc.multiply(price, quantity)),
        _between(read["trade_time"], EARLIEST_TIME_MS, latest),
        _between(read["event_time"], EARLIEST_TIME_MS, latest),
        pc.is_valid(read["is_buyer_maker"]),
    )
    for check in checks:  # a null (a missing field) fails its check
        if not pc.all(pc.fill_null(check, False)).as_py():
            return None
    return read


def judge_each_line(files: Iterable[tuple[str, bytes]], processed: dt.datetime) -> DecodedBatch:
    """Judge every line of `files` ((file name, content)) alone; `processed` is the batch time."""
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


def decode_landing_files(
    files: Iterable[tuple[str, bytes]], processed: dt.datetime
) -> DecodedBatch:
    """`judge_each_line`'s outcome, a clean file by `clean_trades` and any other line by line."""
    now_ms = int(processed.timestamp() * 1000)
    trades = [TRADES_RAW_SCHEMA.empty_table()]
    rejected = [TRADES_QUARANTINE_SCHEMA.empty_table()]
    for source_file, content in files:
        clean = clean_trades(content, now_ms)
        if clean is None:
            judged = judge_each_line([(source_file, content)], processed)
            trades.append(judged.trades)
            rejected.append(judged.rejected)
        else:
            names = pa.array([source_file] * clean.num_rows, pa.string())
            trades.append(trades_raw_rows(clean, names, processed))
    return DecodedBatch(pa.concat_tables(trades), pa.concat_tables(rejected))
