"""What makes a trade usable: one definition for the producer's parser and the analytics.

DESIGN.md "Validation of a landing row": a symbol of 2-20 upper-case letters or digits, a trade
id that is an integer >= 0, price, quantity and their product finite and above zero, trade and
event times in epoch milliseconds from 2017-01-01 to one day after processing, and a boolean
`is_buyer_maker`. Each check returns None for a good value or one line a person understands.
"""

from __future__ import annotations

import re
from typing import Any

from crypto_assets import landing_record

# Binance spot opened in July 2017; nothing earlier is a trade of this pipeline.
EARLIEST_TIME_MS = 1_483_228_800_000  # 2017-01-01T00:00:00Z
# Clocks drift and exchanges stamp ahead a little; a day ahead of processing is already absurd.
FUTURE_SLACK_MS = 86_400_000
MAX_TRADE_ID = 2**63 - 1  # a Delta `long`
SYMBOL_PATTERN = re.compile(r"[A-Z0-9]{2,20}")
_INF = float("inf")

# The fields a landing row must have, in the landing line's order.
REQUIRED_FIELDS = landing_record.REQUIRED
# The fields a row may lack but, when present, must fit their type (event_type, ingestion_time);
# a recomputed field (trade_value_usdt) is never read, so never judged.
_OPTIONAL_FIELDS = tuple(
    field
    for field in landing_record.fields(landing_record.READ)
    if field.name not in REQUIRED_FIELDS
)


def time_problem(name: str, value: int, now_ms: int) -> str | None:
    """Why `value` (an int) is not an epoch-millisecond time near `now_ms`, or None."""
    if EARLIEST_TIME_MS <= value <= now_ms + FUTURE_SLACK_MS:
        return None
    hint = ""
    if EARLIEST_TIME_MS <= value // 1000 <= now_ms + FUTURE_SLACK_MS:
        hint = " (microseconds? divide by 1000)"
    elif EARLIEST_TIME_MS <= value * 1000 <= now_ms + FUTURE_SLACK_MS:
        hint = " (seconds? multiply by 1000)"
    return f"{name} {value} is not epoch milliseconds from 2017-01-01 to a day from now{hint}"


def amount_problem(price: float, quantity: float) -> str | None:
    """Why `price` and `quantity` (floats) cannot be a trade, or None."""
    # `not (0 < x < inf)` also rejects NaN, which compares false with everything.
    if not 0.0 < price < _INF:
        return f"price {price!r} is not a finite number above zero"
    if not 0.0 < quantity < _INF:
        return f"quantity {quantity!r} is not a finite number above zero"
    if not 0.0 < price * quantity < _INF:
        return f"price x quantity ({price!r} x {quantity!r}) is not finite and above zero"
    return None


def _is_int(value: object) -> bool:
    return type(value) is int  # bool is an int subclass: True is no trade id


def _is_number(value: object) -> bool:
    return type(value) is float or type(value) is int


_JSON_KINDS = {
    list: "an array",
    str: "a string",
    bool: "a boolean",
    int: "a number",
    float: "a number",
    type(None): "null",
}


def landing_row_problem(row: Any, now_ms: int) -> str | None:
    """Why a decoded landing line (`row`, any JSON value) is not a usable trade, or None."""
    if type(row) is dict and looks_good(row, now_ms + FUTURE_SLACK_MS):
        return None
    return _row_problem(row, now_ms)


def looks_good(row: dict, latest_ms: int) -> bool:
    """A quick test that accepts only rows `_row_problem` accepts (the common, all-float case).

    One expression and no calls, for the analytics' hot path (about half the cost of the full
    rule); a row it refuses gets the full rule, which says why or accepts it after all.
    """
    get = row.get
    trade_id, price, quantity = get("trade_id"), get("price"), get("quantity")
    trade_time, event_time, symbol = get("trade_time"), get("event_time"), get("symbol")
    ingestion_time = get("ingestion_time")
    return (
        type(trade_id) is int
        and 0 <= trade_id <= MAX_TRADE_ID
        and type(price) is float
        and type(quantity) is float
        and 0.0 < price < _INF
        and 0.0 < quantity < _INF
        and 0.0 < price * quantity < _INF
        and type(trade_time) is int
        and EARLIEST_TIME_MS <= trade_time <= latest_ms
        and type(event_time) is int
        and EARLIEST_TIME_MS <= event_time <= latest_ms
        and type(get("is_buyer_maker")) is bool
        and type(symbol) is str
        and SYMBOL_PATTERN.fullmatch(symbol) is not None
        and type(get("event_type", "")) is str
        and (ingestion_time is None or type(ingestion_time) is int)
    )


def _row_problem(row: Any, now_ms: int) -> str | None:
    if type(row) is not dict:
        return f"line is {_JSON_KINDS.get(type(row), 'not')}, not a JSON object"
    missing = [name for name in REQUIRED_FIELDS if row.get(name) is None]
    if missing:
        return f"missing {', '.join(missing)}"
    symbol = row["symbol"]
    if type(symbol) is not str or not SYMBOL_PATTERN.fullmatch(symbol):
        return f"symbol {symbol!r} is not 2-20 upper-case letters or digits"
    trade_id = row["trade_id"]
    if not _is_int(trade_id) or not 0 <= trade_id <= MAX_TRADE_ID:
        return f"trade_id {trade_id!r} is not a whole number from 0 to 2^63-1"
    price, quantity = row["price"], row["quantity"]
    if not _is_number(price) or not _is_number(quantity):
        return f"price {price!r} and quantity {quantity!r} must be JSON numbers"
    problem = amount_problem(float(price), float(quantity))
    if problem:
        return problem
    for name in ("trade_time", "event_time"):
        value = row[name]
        if not _is_int(value):
            return f"{name} {value!r} is not a whole number of epoch milliseconds"
        problem = time_problem(name, value, now_ms)
        if problem:
            return problem
    if type(row["is_buyer_maker"]) is not bool:
        return f"is_buyer_maker {row['is_buyer_maker']!r} is not true or false"
    return _optional_field_problem(row)


def _optional_field_problem(row: dict) -> str | None:
    # Not required by DESIGN, but a value of the wrong type cannot be stored in its column.
    for field in _OPTIONAL_FIELDS:
        value = row.get(field.name)
        if value is not None and not field.kind.holds(value):
            return f"{field.name} {value!r} is not {field.kind.phrase}"
    return None
