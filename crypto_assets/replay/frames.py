"""Serialising recorded events into the bytes a Binance stream connection receives.

A frame depends on the connection's format (combined ``{"stream":..,"data":..}`` or raw
payload; milliseconds or ``timeUnit=MICROSECOND``) and on where the market is: the lap
(ids and times move forward) and the rebase shift. Unshifted millisecond payloads are the
recorded bytes unchanged.
"""

from __future__ import annotations

import json
import re
from typing import NamedTuple

from crypto_assets.replay.recording_feed import RecordedEvent

_EVENT_TIME = re.compile(rb'"E":(\d+)')
CORRUPTION_KINDS = ("truncated", "non_numeric_price", "missing_quantity", "negative_price")


class FrameFormat(NamedTuple):
    """How one connection wants frames: combined envelope or raw payload, ms or µs times."""

    combined: bool
    micro: bool


def render_frame(
    event: RecordedEvent,
    frame_format: FrameFormat,
    *,
    time_shift_ms: int,
    id_shift: int,
    corruption: str | None = None,
) -> bytes:
    """The frame for ``event`` with times moved by ``time_shift_ms`` and trade ids by ``id_shift``.

    ``corruption`` (one of CORRUPTION_KINDS) makes a trade frame malformed on purpose.
    """
    if event.data is None:
        payload = _shift_event_time(event.payload, time_shift_ms, frame_format.micro)
    elif corruption is None and not time_shift_ms and not id_shift and not frame_format.micro:
        payload = event.payload
    else:
        payload = _trade_payload(
            event.data, frame_format.micro, time_shift_ms, id_shift, corruption
        )
    frame = wrap(event.stream, payload) if frame_format.combined else payload
    if corruption == "truncated":
        return frame[: len(frame) // 2]
    return frame


def wrap(stream: str, payload: bytes) -> bytes:
    """The combined-stream envelope around a raw payload."""
    return b'{"stream":"' + stream.encode() + b'","data":' + payload + b"}"


def server_shutdown_frame(now_ms: int, frame_format: FrameFormat) -> bytes:
    """Binance's planned-shutdown notice, in the connection's format."""
    event_time = now_ms * 1000 if frame_format.micro else now_ms
    payload = json.dumps({"e": "serverShutdown", "E": event_time}, separators=(",", ":")).encode()
    return wrap("!serverShutdown", payload) if frame_format.combined else payload


def _shift_event_time(payload: bytes, shift_ms: int, micro: bool) -> bytes:
    if not shift_ms and not micro:
        return payload
    factor = 1000 if micro else 1

    def shifted(match: re.Match[bytes]) -> bytes:
        return b'"E":%d' % ((int(match.group(1)) + shift_ms) * factor)

    return _EVENT_TIME.sub(shifted, payload, count=1)


def _trade_payload(
    data: dict, micro: bool, time_shift_ms: int, id_shift: int, corruption: str | None
) -> bytes:
    factor = 1000 if micro else 1
    shifted = dict(data)
    shifted["E"] = (int(data["E"]) + time_shift_ms) * factor
    shifted["T"] = (int(data["T"]) + time_shift_ms) * factor
    shifted["t"] = int(data["t"]) + id_shift
    if corruption == "non_numeric_price":
        shifted["p"] = "not-a-price"
    elif corruption == "missing_quantity":
        del shifted["q"]
    elif corruption == "negative_price":
        shifted["p"] = "-" + str(data["p"])
    return json.dumps(shifted, separators=(",", ":")).encode()
