"""What a batch touched, as disjoint runs of windows: sized by the data, never by its time span.

A run is `(symbol, first window start, last window start)` in epoch ms, both inclusive. Touched
windows closer than `join_slots` window slots are one run; farther ones stay apart, so a batch
whose trades span years with nothing in between costs two runs, not a range over the years.
Work over many runs goes in chunks of at most `MAX_RUNS_PER_QUERY`, so no predicate grows
without bound (delta-rs overflows its stack on very long OR chains).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

MAX_RUNS_PER_QUERY = 64


class Run(NamedTuple):
    """Keys of `symbol` from `first` to `last`, inclusive: window starts (epoch ms) or trade ids."""

    symbol: str
    first: int
    last: int


def window_starts(trade_times: pa.Array, window_ms: int) -> pa.Array:
    """Start (epoch ms) of the tumbling window holding each trade time (epoch ms, >= 0)."""
    return pc.multiply(pc.divide(trade_times, window_ms), window_ms)


def runs_of(symbols: pa.Array, starts: pa.Array, window_ms: int, join_slots: int) -> list[Run]:
    """The disjoint runs covering every (symbol, start); sorted by symbol, then time."""
    keys = (
        pa.table({"symbol": symbols, "start": starts}).group_by(["symbol", "start"]).aggregate([])
    )
    keys = keys.sort_by([("symbol", "ascending"), ("start", "ascending")])
    runs: list[Run] = []
    reach = join_slots * window_ms
    for symbol, start in zip(keys["symbol"].to_pylist(), keys["start"].to_pylist(), strict=True):
        if runs and runs[-1].symbol == symbol and start - runs[-1].last <= max(reach, window_ms):
            runs[-1] = runs[-1]._replace(last=start)
        else:
            runs.append(Run(symbol, start, start))
    return runs


def id_runs(symbols: pa.Array, trade_ids: pa.Array, join_gap: int) -> list[Run]:
    """Disjoint runs of trade ids per symbol (`first`/`last` are ids), joined across `join_gap`."""
    return runs_of(symbols, trade_ids, 1, join_gap)


def chunks(runs: Sequence[Run], size: int = MAX_RUNS_PER_QUERY) -> Iterator[list[Run]]:
    """`runs` in consecutive pieces of at most `size`."""
    for start in range(0, len(runs), size):
        yield list(runs[start : start + size])


def widened(runs: Sequence[Run], before: int = 0, after: int = 0) -> list[Run]:
    """Each run extended by `before` ms at its start and `after` ms at its end."""
    return [Run(r.symbol, r.first - before, r.last + after) for r in runs]
