"""What a batch touched, as disjoint runs of windows: sized by the data, never by its time span.

A run is `(symbol, first window start, last window start)` in epoch ms, both inclusive. Touched
windows closer than `join_slots` window slots are one run; farther ones stay apart, so a batch
whose trades span years with nothing in between costs two runs, not a range over the years.
Work over many runs goes in chunks of at most `MAX_RUNS_PER_QUERY`, so no predicate grows
without bound: delta-rs overflows its stack on very long OR chains, and Delta-Spark's file
skipping generates code for a scan's predicate that no longer compiles past a JVM method's 64 KB
(at 32 runs a batch's query of stored windows does: Spark logs an ERROR and a stack trace, then
runs it interpreted). A `TradeSpan` is the same for trades: a run of trade ids with the span of
their trade times, for lookups by both.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

MAX_RUNS_PER_QUERY = 24
_Keys = TypeVar("_Keys")  # a Run or a TradeSpan


class Run(NamedTuple):
    """Keys of `symbol` from `first` to `last`, inclusive: window starts (epoch ms) or trade ids."""

    symbol: str
    first: int
    last: int


def window_starts(trade_times: pa.Array, window_ms: int) -> pa.Array:
    """Start (epoch ms) of the tumbling window holding each trade time (epoch ms, >= 0)."""
    return pc.multiply(pc.divide(trade_times, window_ms), window_ms)


def _numbered(table: pa.Table, key: str, gap: int) -> pa.Table:
    """`table` sorted by symbol and `key`, with `run`: the number of the run each row is in.

    A run starts at the first row, where the symbol changes, and after a step of `key` over `gap`.
    """
    ordered = table.sort_by([("symbol", "ascending"), (key, "ascending")])
    symbols, keys = ordered["symbol"], ordered[key]
    changed = pc.not_equal(symbols[1:], symbols[:-1])
    gapped = pc.greater(pc.subtract(keys[1:], keys[:-1]), gap)
    starts = pa.concat_arrays([pa.array([True]), pc.or_(changed, gapped).combine_chunks()])
    return ordered.append_column("run", pc.cumulative_sum(pc.cast(starts, pa.int64())))


def _rows(table: pa.Table, columns: list[str]) -> Iterator[tuple]:
    """The rows of `table`'s `columns`, as tuples."""
    return zip(*(table[name].to_pylist() for name in columns), strict=True)


def runs_of(symbols: pa.Array, starts: pa.Array, window_ms: int, join_slots: int) -> list[Run]:
    """The disjoint runs covering every (symbol, start); sorted by symbol, then time."""
    if len(symbols) == 0:
        return []
    numbered = _numbered(
        pa.table({"symbol": symbols, "start": starts}),
        "start",
        max(join_slots * window_ms, window_ms),
    )
    runs = (
        numbered.group_by("run", use_threads=False)
        .aggregate([("symbol", "min"), ("start", "min"), ("start", "max")])
        .sort_by("run")
    )
    return [Run(*row) for row in _rows(runs, ["symbol_min", "start_min", "start_max"])]


def id_runs(symbols: pa.Array, trade_ids: pa.Array, join_gap: int) -> list[Run]:
    """Disjoint runs of trade ids per symbol (`first`/`last` are ids), joined across `join_gap`."""
    return runs_of(symbols, trade_ids, 1, join_gap)


class TradeSpan(NamedTuple):
    """Trades of `symbol` with ids `first_id`..`last_id` and trade times (epoch ms)
    `first_time`..`last_time`, all inclusive."""

    symbol: str
    first_id: int
    last_id: int
    first_time: int
    last_time: int


def trade_spans(trades: pa.Table, join_gap: int) -> list[TradeSpan]:
    """The disjoint runs of trade ids per symbol in `trades` (symbol, trade_id, trade_time),
    joined across gaps of at most `join_gap` ids, each with the span of its trade times."""
    if trades.num_rows == 0:
        return []
    numbered = _numbered(trades.select(["symbol", "trade_id", "trade_time"]), "trade_id", join_gap)
    spans = numbered.group_by("run", use_threads=False).aggregate(
        [
            ("symbol", "min"),
            ("trade_id", "min"),
            ("trade_id", "max"),
            ("trade_time", "min"),
            ("trade_time", "max"),
        ]
    )
    spans = spans.sort_by("run")
    columns = ["symbol_min", "trade_id_min", "trade_id_max", "trade_time_min", "trade_time_max"]
    return [TradeSpan(*row) for row in _rows(spans, columns)]


def chunks(runs: Sequence[_Keys], size: int = MAX_RUNS_PER_QUERY) -> Iterator[list[_Keys]]:
    """`runs` in consecutive pieces of at most `size`."""
    for start in range(0, len(runs), size):
        yield list(runs[start : start + size])


def widened(runs: Sequence[Run], before: int = 0, after: int = 0) -> list[Run]:
    """Each run extended by `before` ms at its start and `after` ms at its end."""
    return [Run(r.symbol, r.first - before, r.last + after) for r in runs]
