"""Binance's live-subscription requests (SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS, *_PROPERTY).

Pure: a request text and the connection's current subscriptions and ``combined`` property in,
the JSON reply and the new state out. Error codes and messages follow Binance's "WebSocket
Streams" documentation: 0 unknown property, 1 invalid value type, 2 invalid request,
3 invalid JSON.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

MAX_STREAMS_PER_CONNECTION = 1024
METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")
# <symbol>@<channel>[@<option>], or a market-wide stream such as !ticker@arr.
_STREAM_NAME = re.compile(r"^(?:[a-z0-9]+|![A-Za-z]+)@[A-Za-z0-9_@!]+$")


@dataclass(frozen=True)
class ControlOutcome:
    """The reply to send and the connection's state after the request."""

    reply: dict
    streams: tuple[str, ...]
    combined: bool


def normalize_stream(name: str) -> str:
    """Binance stream symbols are lowercase; the channel part keeps its case (``bookTicker``)."""
    symbol, at, channel = name.partition("@")
    return symbol.lower() + at + channel


def is_stream_name(name: str) -> bool:
    """Whether ``name`` has the shape of a Binance stream name."""
    return bool(_STREAM_NAME.match(name))


def handle_control(text: str, streams: tuple[str, ...], combined: bool) -> ControlOutcome:
    """Apply one client request to the connection's subscriptions; never raises."""
    try:
        request = json.loads(text)
    except json.JSONDecodeError as exc:
        message = exc.msg[:1].lower() + exc.msg[1:]
        msg = f"Invalid JSON: {message} at line {exc.lineno} column {exc.colno}"
        return _error(3, msg, None, streams, combined)
    return _dispatch(request, streams, combined)


def _dispatch(request: object, streams: tuple[str, ...], combined: bool) -> ControlOutcome:
    def error(code: int, msg: str, request_id: object = None) -> ControlOutcome:
        return _error(code, msg, request_id, streams, combined)

    if not isinstance(request, dict):
        return error(2, "Invalid request: expected a JSON object")
    request_id = request.get("id")
    if isinstance(request_id, bool) or not isinstance(request_id, int) or request_id < 0:
        return error(2, "Invalid request: request ID must be an unsigned integer")
    if "method" not in request:
        return error(2, "Invalid request: missing field `method`", request_id)
    method = request["method"]
    if method not in METHODS:
        expected = ", ".join(f"`{name}`" for name in METHODS)
        msg = f"Invalid request: unknown variant `{method}`, expected one of {expected}"
        return error(2, msg, request_id)
    params = request.get("params", [])
    if not isinstance(params, list):
        return error(2, "Invalid request: params must be an array", request_id)
    ok = {"result": None, "id": request_id}
    if method == "LIST_SUBSCRIPTIONS":
        return ControlOutcome({"result": list(streams), "id": request_id}, streams, combined)
    if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
        bad = [name for name in params if not isinstance(name, str)]
        if bad:
            msg = f"Invalid request: invalid type {type(bad[0]).__name__}, expected a string"
            return error(2, msg, request_id)
        names = [normalize_stream(name) for name in params]
        bad = [name for name in names if not is_stream_name(name)]
        if bad:
            return error(2, f"Invalid request: invalid stream name {bad[0]!r}", request_id)
        if method == "UNSUBSCRIBE":
            return ControlOutcome(ok, tuple(s for s in streams if s not in names), combined)
        merged = tuple(dict.fromkeys((*streams, *names)))
        if len(merged) > MAX_STREAMS_PER_CONNECTION:
            limit = MAX_STREAMS_PER_CONNECTION
            return error(2, f"Invalid request: more than {limit} streams", request_id)
        return ControlOutcome(ok, merged, combined)
    return _property(method, params, request_id, streams, combined)


def _property(
    method: str, params: list, request_id: int, streams: tuple[str, ...], combined: bool
) -> ControlOutcome:
    expected_count = 2 if method == "SET_PROPERTY" else 1
    if len(params) > expected_count:
        return _error(2, "Invalid request: too many parameters", request_id, streams, combined)
    if len(params) < expected_count or not isinstance(params[0], str):
        msg = "Invalid request: property name must be a string"
        return _error(2, msg, request_id, streams, combined)
    if params[0] != "combined":
        return _error(0, "Unknown property", request_id, streams, combined)
    if method == "GET_PROPERTY":
        return ControlOutcome({"result": combined, "id": request_id}, streams, combined)
    if not isinstance(params[1], bool):
        msg = "Invalid value type: expected Boolean"
        return _error(1, msg, request_id, streams, combined)
    return ControlOutcome({"result": None, "id": request_id}, streams, params[1])


def _error(
    code: int,
    msg: str,
    request_id: object,
    streams: tuple[str, ...],
    combined: bool,
) -> ControlOutcome:
    return ControlOutcome(
        {"error": {"code": code, "msg": msg}, "id": request_id}, streams, combined
    )
