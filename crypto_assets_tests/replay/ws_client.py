"""A websocket client of the replay server for tests (the websockets library's own)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from websockets.sync.client import ClientConnection, connect


@contextmanager
def stream_client(url: str) -> Iterator[ClientConnection]:
    """The websockets library's client, cut off abruptly on exit.

    At --speed max the server has pushed megabytes into the socket by then; a polite close
    would have to read them all to reach the server's close frame.
    """
    with connect(url, close_timeout=1) as ws:
        try:
            yield ws
        finally:
            with suppress(OSError):  # already closed by the server
                ws.socket.shutdown(socket.SHUT_RDWR)
