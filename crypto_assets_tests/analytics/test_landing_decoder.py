"""Landing bytes to good trades and rejected lines, without Spark: every line judged alone."""

from __future__ import annotations

import datetime as dt
import json

from crypto_assets.analytics.landing_decoder import MAX_RAW_LINE_CHARS, decode_landing_files
from crypto_assets.analytics.schema import TRADES_QUARANTINE_SCHEMA, TRADES_RAW_SCHEMA
from crypto_assets_tests.sample_rows import GOOD_ROW as GOOD

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
