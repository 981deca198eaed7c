"""Parsing real recorded frames, legacy and microsecond variants, and every rejection reason."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from crypto_assets.binance import parsing
from crypto_assets.binance.parsing import (
    ControlFrame,
    Rejection,
    TradeRecord,
    parse_frame,
    trade_from_rest,
)
from crypto_assets_tests.recorded_trades import LANDING_FIELDS, landing_row

SYMBOLS = frozenset({"BTCUSDT", "ETHUSDT"})
# A receive time just after the recording (2024-08-09): its trades are plausible then.
RECEIVED_MS = 1_723_161_600_000


def recorded_frames(recording: Path, count: int | None = None) -> list[str]:
    frames = []
    with gzip.open(recording, "rt", encoding="utf-8") as handle:
        for line in handle:
            frames.append(line.split(" ", 1)[1].rstrip("\n"))
            if count is not None and len(frames) == count:
                break
    return frames


@pytest.fixture(scope="module")
def frames(recording: Path) -> list[str]:
    return recorded_frames(recording)


def test_every_recorded_frame_parses_to_its_landing_row(frames: list[str]) -> None:
    for number, frame in enumerate(frames):
        record = parse_frame(frame, RECEIVED_MS + number, SYMBOLS)
        assert type(record) is TradeRecord, frame
        expected = landing_row(frame, RECEIVED_MS + number)
        assert json.loads(record.to_json()) == expected
        assert list(json.loads(record.to_json())) == list(LANDING_FIELDS)


def test_bytes_frames_parse_like_text(frames: list[str]) -> None:
    assert parse_frame(frames[0].encode(), RECEIVED_MS, SYMBOLS) == parse_frame(
        frames[0], RECEIVED_MS, SYMBOLS
    )


def test_to_json_is_one_line_and_round_trips_floats(frames: list[str]) -> None:
    for frame in frames[:2000]:
        record = parse_frame(frame, RECEIVED_MS, SYMBOLS)
        line = record.to_json()
        assert "\n" not in line
        parsed = json.loads(line)
        assert parsed["price"] == record.price
        assert parsed["quantity"] == record.quantity
        assert parsed["trade_value_usdt"] == record.trade_value_usdt


def test_to_json_of_tiny_and_huge_values_is_valid_json() -> None:
    record = TradeRecord("trade", 1, "BTCUSDT", 2, 1e-08, 1e22, 1e14, 3, False, 4)
    assert json.loads(record.to_json())["quantity"] == 1e22
    assert json.loads(record.to_json())["price"] == 1e-08


def test_only_subscribed_symbols_are_trades(frames: list[str]) -> None:
    eth = next(f for f in frames if '"s":"ETHUSDT"' in f)
    result = parse_frame(eth, RECEIVED_MS, frozenset({"BTCUSDT"}))
    assert type(result) is Rejection
    assert result.reason == parsing.UNKNOWN_SYMBOL
    assert result.raw == eth


def test_legacy_buyer_and_seller_order_ids_are_accepted(frames: list[str]) -> None:
    message = json.loads(frames[0])
    message["data"]["b"] = 88
    message["data"]["a"] = 50
    legacy = json.dumps(message)
    assert parse_frame(legacy, RECEIVED_MS, SYMBOLS) == parse_frame(frames[0], RECEIVED_MS, SYMBOLS)


def test_microsecond_times_become_milliseconds(frames: list[str]) -> None:
    message = json.loads(frames[0])
    data = message["data"]
    event_ms, trade_ms = data["E"], data["T"]
    data["E"] = event_ms * 1000 + 999
    data["T"] = trade_ms * 1000 + 123
    record = parse_frame(json.dumps(message), RECEIVED_MS, SYMBOLS)
    assert (record.event_time, record.trade_time) == (event_ms, trade_ms)


def test_bare_payload_without_envelope_is_accepted(frames: list[str]) -> None:
    payload = json.dumps(json.loads(frames[0])["data"])
    assert parse_frame(payload, RECEIVED_MS, SYMBOLS) == parse_frame(
        frames[0], RECEIVED_MS, SYMBOLS
    )


def _mutated(frame: str, **changes: object) -> str:
    message = json.loads(frame)
    for key, value in changes.items():
        if value is _DELETE:
            del message["data"][key]
        else:
            message["data"][key] = value
    return json.dumps(message)


_DELETE = object()


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"p": "abc"}, parsing.NON_NUMERIC),
        ({"q": None}, parsing.NON_NUMERIC),
        ({"p": "0.00000000"}, parsing.NON_POSITIVE),
        ({"q": "-1.5"}, parsing.NON_POSITIVE),
        ({"p": "NaN"}, parsing.NON_POSITIVE),
        ({"p": "inf"}, parsing.NON_POSITIVE),
        ({"q": _DELETE}, parsing.MISSING_FIELD),
        ({"t": _DELETE}, parsing.MISSING_FIELD),
        ({"E": _DELETE}, parsing.MISSING_FIELD),
        ({"m": _DELETE}, parsing.MISSING_FIELD),
        ({"s": "DOGEUSDT"}, parsing.UNKNOWN_SYMBOL),
        ({"e": "aggTrade"}, parsing.WRONG_EVENT_TYPE),
        ({"t": "123"}, parsing.BAD_FIELD_TYPE),
        ({"T": 1.5}, parsing.BAD_FIELD_TYPE),
        ({"m": "true"}, parsing.BAD_FIELD_TYPE),
        ({"p": "1e200", "q": "1e200"}, parsing.NON_POSITIVE),  # the product overflows
        ({"T": 1723161255}, parsing.IMPLAUSIBLE_TIME),  # seconds
        ({"T": 0}, parsing.IMPLAUSIBLE_TIME),
        ({"E": -5}, parsing.IMPLAUSIBLE_TIME),
        ({"T": 32_503_680_000_000}, parsing.IMPLAUSIBLE_TIME),  # year 3000
    ],
)
def test_invalid_trades_are_rejected_with_their_reason(
    frames: list[str], changes: dict, reason: str
) -> None:
    bad = _mutated(frames[0], **changes)
    result = parse_frame(bad, RECEIVED_MS, SYMBOLS)
    assert type(result) is Rejection
    assert result.reason == reason
    assert result.raw == bad
    assert result.detail


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"stream":"btcusdt@trade","data":{"e":"trade"', parsing.BAD_JSON),
        (b"\xff\xfe not utf-8", parsing.BAD_JSON),
        ("[1, 2]", parsing.NOT_A_TRADE_OBJECT),
        ('{"stream":"x","data":[1]}', parsing.NOT_A_TRADE_OBJECT),
        (
            '{"stream":"btcusdt@depth","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT"}}',
            parsing.WRONG_EVENT_TYPE,
        ),
    ],
)
def test_malformed_frames_are_rejected(text: str | bytes, reason: str) -> None:
    result = parse_frame(text, RECEIVED_MS, SYMBOLS)
    assert type(result) is Rejection
    assert result.reason == reason
    assert isinstance(result.raw, str)


def test_real_depth_frame_from_the_raw_recording_is_a_wrong_event(
    raw_recordings: list[Path],
) -> None:
    with gzip.open(raw_recordings[0], "rt", encoding="utf-8") as handle:
        depth = next(line.split(" ", 1)[1] for line in handle if "@depth" in line)
    result = parse_frame(depth, RECEIVED_MS, SYMBOLS)
    assert type(result) is Rejection
    assert result.reason == parsing.WRONG_EVENT_TYPE


@pytest.mark.parametrize(
    "text",
    [
        '{"result":null,"id":1}',
        '{"result":["btcusdt@trade"],"id":3}',
        '{"error":{"code":2,"msg":"Invalid request: unknown variant"},"id":4}',
    ],
)
def test_responses_are_control_frames(text: str) -> None:
    result = parse_frame(text, RECEIVED_MS, SYMBOLS)
    assert result == ControlFrame(parsing.RESPONSE, json.loads(text))


def test_server_shutdown_is_a_control_frame() -> None:
    text = '{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1723161255343}}'
    result = parse_frame(text, RECEIVED_MS, SYMBOLS)
    assert type(result) is ControlFrame
    assert result.kind == parsing.SERVER_SHUTDOWN


def test_rest_rows_become_records_like_the_stream(frames: list[str]) -> None:
    data = json.loads(frames[0])["data"]
    row = {
        "id": data["t"],
        "price": data["p"],
        "qty": data["q"],
        "quoteQty": "ignored",
        "time": data["T"],
        "isBuyerMaker": data["m"],
        "isBestMatch": True,
    }
    record = trade_from_rest("btcusdt", row, 42)
    expected = landing_row(frames[0], 42) | {"event_time": data["T"]}
    assert json.loads(record.to_json()) == expected
