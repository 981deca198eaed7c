"""The SQL predicates both sinks select runs of trades and windows with (delta-rs and Spark SQL),
the inputs of a batch's scoring query, and both lakehouses the rows a run wrote and the trades
of its trade spans.

The two dialects differ only in how a timestamp literal is written, so `window_clause` and
`written_clause` take the sink's own literal function; everything else is the same text for both.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

from crypto_assets.analytics.schema import TRADE_INPUT_FIELDS, TRADES_ANALYTICS, TRADES_RAW
from crypto_assets.analytics.transforms import WINDOW_COLUMNS
from crypto_assets.analytics.window_runs import Run, TradeSpan

_DAY_MS = 86_400_000
_EPOCH = dt.date(1970, 1, 1)
_EPOCH_UTC = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_ONE_MS = dt.timedelta(milliseconds=1)


def sql_string(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def utc_date(epoch_ms: int) -> str:
    """The UTC date (``YYYY-MM-DD``, trades_raw's partition value) of epoch milliseconds."""
    return (_EPOCH + dt.timedelta(days=epoch_ms // _DAY_MS)).isoformat()


def any_of(clauses: Sequence[str]) -> str:
    """The disjunction of `clauses` (false when there are none)."""
    return " OR ".join(f"({clause})" for clause in clauses) if clauses else "false"


def trade_time_clause(run: Run, window_ms: int, prefix: str = "", *, dates: bool = True) -> str:
    """Trades of `run`'s windows: partition range (unless not `dates`), then trade_time."""
    last_ms = run.last + window_ms - 1
    symbol = f"{prefix}symbol = {sql_string(run.symbol)}"
    times = f"{prefix}trade_time BETWEEN {run.first} AND {last_ms}"
    if not dates:
        return f"{symbol} AND {times}"
    return (
        f"{symbol} "
        f"AND {prefix}trade_date >= {sql_string(utc_date(run.first))} "
        f"AND {prefix}trade_date <= {sql_string(utc_date(last_ms))} "
        f"AND {times}"
    )


def window_clause(run: Run, timestamp: Callable[[int], str], prefix: str = "") -> str:
    """Windows of `run`, with `timestamp` writing the sink's timestamp literal."""
    return (
        f"{prefix}symbol = {sql_string(run.symbol)} "
        f"AND {prefix}window_start >= {timestamp(run.first)} "
        f"AND {prefix}window_start <= {timestamp(run.last)}"
    )


def scoring_inputs(
    trades: Sequence[Run],
    window_ms: int,
    stored: Sequence[Run],
    timestamp: Callable[[int], str],
    tables: Callable[[str], str],
) -> tuple[str, str]:
    """The two inputs of `transforms.scoring_sql` (see `TableSink.score`), as SELECTs: the trades
    of `trades`' windows, and the stored windows inside `stored` but outside `trades`.

    `timestamp` writes the sink's timestamp literal and `tables` names a table as its engine does.
    """
    in_windows = any_of([trade_time_clause(r, window_ms) for r in trades])
    wanted = any_of([window_clause(r, timestamp) for r in stored])
    excluded = any_of([window_clause(r, timestamp) for r in trades])
    return (
        f"SELECT {', '.join(TRADE_INPUT_FIELDS)} FROM {tables(TRADES_RAW)} WHERE {in_windows}",
        f"SELECT {', '.join(WINDOW_COLUMNS)} FROM {tables(TRADES_ANALYTICS)} "
        f"WHERE ({wanted}) AND NOT ({excluded})",
    )


def trade_span_clause(span: TradeSpan) -> str:
    """Trades of `span`: partition range, trade ids and trade times (file statistics)."""
    return (
        f"symbol = {sql_string(span.symbol)} "
        f"AND trade_date >= {sql_string(utc_date(span.first_time))} "
        f"AND trade_date <= {sql_string(utc_date(span.last_time))} "
        f"AND trade_id BETWEEN {span.first_id} AND {span.last_id} "
        f"AND trade_time BETWEEN {span.first_time} AND {span.last_time}"
    )


def written_clause(column: str, since: dt.datetime, timestamp: Callable[[int], str]) -> str:
    """Rows whose write time `column` is at or after `since` (aware), at millisecond precision.

    Delta records a timestamp's statistics in milliseconds, the maximum truncated: a bound
    truncated too never skips a file that holds a row at or after `since`.
    """
    return f"{column} >= {timestamp((since - _EPOCH_UTC) // _ONE_MS)}"
