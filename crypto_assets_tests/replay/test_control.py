"""Binance control requests as a pure function: state in, reply and new state out."""

from __future__ import annotations

import json

from crypto_assets.replay.control import MAX_STREAMS_PER_CONNECTION, handle_control


def request(method: str, params: list | None = None, request_id: int = 1) -> str:
    body: dict = {"method": method, "id": request_id}
    if params is not None:
        body["params"] = params
    return json.dumps(body)


def test_subscribe_adds_streams_once_in_order_and_lowercases_symbols() -> None:
    outcome = handle_control(
        request("SUBSCRIBE", ["BTCUSDT@trade", "ethusdt@bookTicker", "btcusdt@trade"], 4),
        ("ethusdt@trade",),
        combined=True,
    )

    assert outcome.reply == {"result": None, "id": 4}
    assert outcome.streams == ("ethusdt@trade", "btcusdt@trade", "ethusdt@bookTicker")
    assert outcome.combined is True


def test_unsubscribe_and_list() -> None:
    streams = ("btcusdt@trade", "ethusdt@trade")

    removed = handle_control(request("UNSUBSCRIBE", ["btcusdt@trade"], 2), streams, False)
    listed = handle_control(request("LIST_SUBSCRIPTIONS", None, 3), removed.streams, False)

    assert removed.reply == {"result": None, "id": 2}
    assert listed.reply == {"result": ["ethusdt@trade"], "id": 3}


def test_errors_keep_the_state() -> None:
    streams = ("btcusdt@trade",)

    for text in ("{not json", request("NOPE"), request("SUBSCRIBE", [42]), "[1, 2]"):
        outcome = handle_control(text, streams, True)
        assert "error" in outcome.reply
        assert outcome.streams == streams
        assert outcome.combined is True


def test_invalid_json_reports_line_and_column() -> None:
    outcome = handle_control('{"method": }', (), False)

    assert outcome.reply == {
        "error": {"code": 3, "msg": "Invalid JSON: expecting value at line 1 column 12"},
        "id": None,
    }


def test_boolean_is_not_a_request_id() -> None:
    outcome = handle_control('{"method":"LIST_SUBSCRIPTIONS","id":true}', (), False)

    assert outcome.reply["error"]["code"] == 2
    assert outcome.reply["id"] is None


def test_too_many_streams_is_refused() -> None:
    names = [f"sym{i}usdt@trade" for i in range(MAX_STREAMS_PER_CONNECTION + 1)]

    outcome = handle_control(request("SUBSCRIBE", names), (), False)

    assert outcome.reply["error"]["code"] == 2
    assert outcome.streams == ()


def test_property_requests() -> None:
    set_true = handle_control(request("SET_PROPERTY", ["combined", True]), (), False)
    too_many = handle_control(request("GET_PROPERTY", ["combined", 1]), (), False)

    assert set_true.reply == {"result": None, "id": 1}
    assert set_true.combined is True
    assert too_many.reply["error"] == {"code": 2, "msg": "Invalid request: too many parameters"}
