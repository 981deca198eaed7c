"""Landing bytes to good trades and rejected lines, without Spark: every line judged alone."""

from __future__ import annotations

import datetime as dt
import json
import random

from crypto_assets.analytics.landing_decoder import (
    MAX_RAW_LINE_CHARS,
    clean_trades,
    decode_landing_files,
    judge_each_line,
)
from crypto_assets.analytics.schema import TRADES_QUARANTINE_SCHEMA, TRADES_RAW_SCHEMA
from crypto_assets.landing_record import REQUIRED
from crypto_assets_tests.sample_rows import GOOD_ROW as GOOD
from crypto_assets_tests.sample_rows import NOW_MS

PROCESSED = dt.datetime(2024, 8, 9, tzinfo=dt.UTC)


def encoded(**changes: object) -> bytes:
    return json.dumps({**GOOD, **changes}).encode()


def test_good_lines_become_trades_raw_rows() -> None:
    content = encoded() + b"\n" + encoded(trade_id=7, price=2, quantity=3) + b"\n"
    batch = decode_landing_files([("trades_a.json", content)], PROCESSED)
    assert batch.trades.schema == TRADES_RAW_SCHEMA
    assert batch.rejected.schema == TRADES_QUARANTINE_SCHEMA
    first, second = batch.trades.to_pylist()
    assert {k: first[k] for k in GOOD} == GOOD
    assert first["source_file"] == "trades_a.json"
    assert first["ingest_lag_ms"] == 58
    assert first["trade_date"] == "2024-08-08"
    assert first["processed_time"] == PROCESSED
    assert (second["price"], second["trade_value_usdt"]) == (2.0, 6.0)  # value is p x q
    assert batch.rejected.num_rows == 0


def test_line_ends_blank_lines_and_a_byte_order_mark() -> None:
    content = b"\xef\xbb\xbf" + encoded() + b"\r\n\r\n   \n" + encoded(trade_id=8)  # no final \n
    batch = decode_landing_files([("f.json", content)], PROCESSED)
    assert batch.trades["trade_id"].to_pylist() == [GOOD["trade_id"], 8]
    assert batch.rejected.num_rows == 0


def test_an_empty_file_and_a_missing_ingestion_time() -> None:
    without = {k: v for k, v in GOOD.items() if k != "ingestion_time"}
    files = [("empty.json", b""), ("f.json", json.dumps(without).encode())]
    batch = decode_landing_files(files, PROCESSED)
    assert batch.trades["ingest_lag_ms"].to_pylist() == [None]


def test_each_bad_line_is_rejected_alone_with_its_text() -> None:
    lines = [
        encoded(),
        b'{"symbol": "BTCUSDT", "trade_id": ',
        b"\x80\x81 binary",
        encoded(trade_time=GOOD["trade_time"] * 1000),
        encoded(trade_id=9),
    ]
    batch = decode_landing_files([("mixed.json", b"\n".join(lines))], PROCESSED)
    assert batch.trades["trade_id"].to_pylist() == [GOOD["trade_id"], 9]
    rejected = batch.rejected.to_pylist()
    assert [r["raw_line"] for r in rejected] == [
        '{"symbol": "BTCUSDT", "trade_id": ',
        "\\x80\\x81 binary",
        lines[3].decode(),
    ]
    reasons = [r["reason"] for r in rejected]
    assert reasons[0].startswith("not valid JSON")
    assert reasons[1].startswith("not UTF-8 text (byte 0)")
    assert "microseconds?" in reasons[2]
    assert {r["source_file"] for r in rejected} == {"mixed.json"}


def test_a_huge_bad_line_is_kept_cut() -> None:
    huge = b"y" * (MAX_RAW_LINE_CHARS + 10)
    batch = decode_landing_files([("f.json", huge)], PROCESSED)
    (row,) = batch.rejected.to_pylist()
    assert row["raw_line"].endswith(f"... ({len(huge)} bytes, cut)")
    assert len(row["raw_line"]) < MAX_RAW_LINE_CHARS + 100


# Lines that Arrow's JSON reader and orjson may judge differently, or that only the full rule
# knows how to reject, each to be judged as `judge_each_line` judges it.
GOOD_LINE = encoded()
DOUBTFUL = [
    encoded(price=2, quantity=3),  # JSON integers: numbers all the same
    encoded(price=2**53 + 1),  # an integer no double holds exactly
    encoded(event_type=None, ingestion_time=None),
    encoded(event_type="{trade}"),  # a brace inside a string
    encoded(extra={"nested": [1, 2]}),
    encoded(trade_id=-1),
    encoded(trade_id=1.0),
    encoded(trade_id=2**63),
    encoded(symbol="btcusdt"),
    encoded(symbol=12),
    encoded(is_buyer_maker=1),
    encoded(price=0.0),
    encoded(price=1e200, quantity=1e200),
    encoded(price=-2.0, quantity=-3.0),  # a product above zero
    encoded(quantity=float("inf")),
    encoded(trade_time=GOOD["trade_time"] * 1000),
    *(encoded(**{name: None}) for name in REQUIRED),  # each required field missing
    GOOD_LINE.replace(b'"price": 61837.63', b'"price": NaN'),
    GOOD_LINE.replace(b'"quantity": 0.02', b'"quantity": Infinity'),
    GOOD_LINE.replace(b'"price": 61837.63', b'"price": 1e400'),
    GOOD_LINE.replace(b'"price": 61837.63', b'"price": 61837.63, "price": -1.0'),  # twice
    GOOD_LINE + GOOD_LINE.replace(b"3735683259", b"3735683260"),  # two objects on one line
    GOOD_LINE + b" null",  # a value after the object (Arrow's reader reads two rows)
    b"   ",  # only spaces
    b"\r",
    b"  " + GOOD_LINE,  # indented
    GOOD_LINE.replace(b'"trade"', b'"tr\tade"'),  # a raw tab inside a string
    GOOD_LINE.replace(b'"trade"', b'"tr\\u00e9de"'),
    b"[" + GOOD_LINE + b"]",
    b"null",
    b"\xff\xfe garbage",
    b'{"symbol": "BTCUSDT", "trade_id": ',
]


def both_roads(files: list[tuple[str, bytes]]) -> None:
    """`decode_landing_files` gives exactly `judge_each_line`'s outcome for `files`."""
    fast, slow = decode_landing_files(files, PROCESSED), judge_each_line(files, PROCESSED)
    assert fast.trades.to_pylist() == slow.trades.to_pylist()
    assert fast.rejected.to_pylist() == slow.rejected.to_pylist()


def test_a_clean_file_is_read_whole_with_the_same_outcome() -> None:
    lines = [encoded(trade_id=GOOD["trade_id"] + i, price=100.0 + i) for i in range(50)]
    content = b"\xef\xbb\xbf" + b"\r\n".join(lines) + b"\n\n"
    assert clean_trades(content, NOW_MS) is not None
    both_roads([("clean.json", content), ("also.json", b"\n".join(lines))])


def test_each_doubtful_line_is_judged_as_alone() -> None:
    for doubtful in DOUBTFUL:
        content = b"\n".join([GOOD_LINE, doubtful, encoded(trade_id=9)]) + b"\n"
        both_roads([("doubtful.json", content)])
        both_roads([("alone.json", doubtful)])


def test_two_objects_on_a_line_beside_a_line_of_spaces() -> None:
    # As many braces as lines that are not empty, and one object a line on average: line by line.
    two = GOOD_LINE + encoded(trade_id=10)
    both_roads([("two.json", b"\n".join([two, b"   "]))])
    both_roads([("two.json", b"\n".join([b"  ", GOOD_LINE, two]))])


def test_random_files_of_good_and_doubtful_lines_are_judged_as_line_by_line() -> None:
    rng = random.Random(18)
    pool = [GOOD_LINE, encoded(trade_id=5), b"", *DOUBTFUL]
    for attempt in range(200):
        files = [
            (f"f{attempt}_{n}.json", b"\n".join(rng.choices(pool, k=rng.randint(0, 6))))
            for n in range(rng.randint(1, 3))
        ]
        both_roads(files)
