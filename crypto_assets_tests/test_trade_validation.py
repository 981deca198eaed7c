"""The one validation rule of a landing row (DESIGN.md), value by value."""

from __future__ import annotations

import pytest

from crypto_assets.trade_validation import (
    EARLIEST_TIME_MS,
    FUTURE_SLACK_MS,
    amount_problem,
    landing_row_problem,
    looks_good,
    time_problem,
)
from crypto_assets_tests.sample_rows import GOOD_ROW as GOOD
from crypto_assets_tests.sample_rows import NOW_MS


def test_a_real_landing_row_is_good() -> None:
    assert looks_good(GOOD, NOW_MS + FUTURE_SLACK_MS)
    assert landing_row_problem(GOOD, NOW_MS) is None
    assert landing_row_problem({**GOOD, "extra": [1, 2]}, NOW_MS) is None  # extra fields are fine
    assert landing_row_problem({**GOOD, "price": 61837}, NOW_MS) is None  # an integer price
    without_optional = {k: v for k, v in GOOD.items() if k not in ("event_type", "ingestion_time")}
    assert landing_row_problem(without_optional, NOW_MS) is None


@pytest.mark.parametrize(
    ("row", "words"),
    [
        ([GOOD], "an array, not a JSON object"),
        ("BTCUSDT", "a string, not a JSON object"),
        (None, "null, not a JSON object"),
        (3, "a number, not a JSON object"),
        ({k: v for k, v in GOOD.items() if k != "symbol"}, "missing symbol"),
        ({**GOOD, "trade_time": None, "price": None}, "missing price, trade_time"),
        ({**GOOD, "symbol": "btcusdt"}, "symbol 'btcusdt' is not 2-20 upper-case"),
        ({**GOOD, "symbol": "B"}, "is not 2-20"),
        ({**GOOD, "symbol": "BTC\nUSDT"}, "is not 2-20"),
        ({**GOOD, "symbol": 7}, "symbol 7"),
        ({**GOOD, "trade_id": -1}, "trade_id -1 is not a whole number"),
        ({**GOOD, "trade_id": 1.5}, "trade_id 1.5"),
        ({**GOOD, "trade_id": True}, "trade_id True"),
        ({**GOOD, "trade_id": 2**63}, "trade_id 9223372036854775808"),
        ({**GOOD, "trade_id": "12"}, "trade_id '12'"),
        ({**GOOD, "price": "61837.63"}, "must be JSON numbers"),
        ({**GOOD, "quantity": False}, "must be JSON numbers"),
        ({**GOOD, "price": 0}, "price 0.0 is not a finite number above zero"),
        ({**GOOD, "price": -3.5}, "price -3.5"),
        ({**GOOD, "quantity": 0.0}, "quantity 0.0"),
        ({**GOOD, "price": 1e200, "quantity": 1e200}, "price x quantity"),
        ({**GOOD, "trade_time": 1_723_161_255_342_000}, "(microseconds? divide by 1000)"),
        ({**GOOD, "event_time": 1_723_161_255_343_000}, "event_time 1723161255343000"),
        ({**GOOD, "trade_time": 1_723_161_255}, "(seconds? multiply by 1000)"),
        ({**GOOD, "trade_time": 0}, "trade_time 0 is not epoch milliseconds"),
        ({**GOOD, "trade_time": -1}, "trade_time -1"),
        ({**GOOD, "trade_time": 32_503_680_000_000}, "from 2017-01-01 to a day from now"),
        ({**GOOD, "trade_time": 1_700_000_000_000.0}, "trade_time 1700000000000.0 is not a whole"),
        ({**GOOD, "is_buyer_maker": 1}, "is_buyer_maker 1 is not true or false"),
        ({**GOOD, "is_buyer_maker": "true"}, "is_buyer_maker 'true'"),
        ({**GOOD, "event_type": 5}, "event_type 5 is not a string"),
        ({**GOOD, "ingestion_time": "now"}, "ingestion_time 'now'"),
    ],
)
def test_bad_rows_say_why(row: object, words: str) -> None:
    if type(row) is dict:  # the quick test never accepts what the full rule refuses
        assert not looks_good(row, NOW_MS + FUTURE_SLACK_MS)
    problem = landing_row_problem(row, NOW_MS)
    assert problem is not None
    assert words in problem
    assert "\n" not in problem


def test_time_bounds_are_inclusive() -> None:
    day = 86_400_000
    assert time_problem("T", EARLIEST_TIME_MS, NOW_MS) is None
    assert time_problem("T", EARLIEST_TIME_MS - 1, NOW_MS) is not None
    assert time_problem("T", NOW_MS + day, NOW_MS) is None
    assert time_problem("T", NOW_MS + day + 1, NOW_MS) is not None


@pytest.mark.parametrize(
    ("price", "quantity"),
    [(float("nan"), 1.0), (1.0, float("nan")), (float("inf"), 1.0), (1.0, -0.0), (5e-324, 5e-324)],
)
def test_non_finite_and_non_positive_amounts(price: float, quantity: float) -> None:
    assert amount_problem(price, quantity) is not None
