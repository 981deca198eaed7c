"""A real HTTP receiver on loopback for the notification tests: a webhook, or Slack's Web API.

A `ThreadingHTTPServer` on 127.0.0.1 (a free port the first time, the same port after a
restart) records every POST (path, headers, JSON or form body, the status it answered, when). Its
switches: `status` (answer 503 instead of 200), `stop`/`start` (down means the socket is
closed, so connections are refused), and in Slack mode `slack_error` (answer
``{"ok": false, "error": ...}`` to ``/chat.postMessage``, as Slack does, instead of
``{"ok": true, ...}``).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qsl


@dataclass(frozen=True)
class Received:
    """One POST: where, with which headers (names lower-cased) and body, and what it answered."""

    path: str
    headers: dict[str, str]
    body: object
    status: int
    accepted: bool  # a 2xx answer, and in Slack mode ``"ok": true``
    at: float  # when it arrived (epoch seconds)


class Receiver:
    """The loopback receiver; `start` it (or use ``with``), read `received` or `wait_for`."""

    def __init__(self, slack: bool = False) -> None:
        self.slack = slack
        self.status = 200
        self.slack_error: str | None = None
        self.port = 0
        self._received: list[Received] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>/`` (the port stays the same across restarts)."""
        return f"http://127.0.0.1:{self.port}/"

    @property
    def received(self) -> list[Received]:
        """Every POST so far, in arrival order."""
        with self._lock:
            return list(self._received)

    def accepted(self) -> list[Received]:
        """The POSTs it accepted (answered 2xx, and ``ok`` in Slack mode)."""
        return [item for item in self.received if item.accepted]

    def accepted_keys(self) -> list[str]:
        """The Idempotency-Key header of each accepted POST, in arrival order."""
        return [item.headers.get("idempotency-key", "") for item in self.accepted()]

    def wait_for(self, count: int, timeout_s: float = 5.0) -> list[Received]:
        """The accepted POSTs once there are at least `count` (fails after `timeout_s`)."""
        deadline = time.monotonic() + timeout_s
        while len(accepted := self.accepted()) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(accepted)} of {count} POSTs after {timeout_s} s")
            time.sleep(0.01)
        return accepted

    def start(self) -> Receiver:
        """Listen (again) on the port; the first start picks a free one."""
        if self._server is not None:
            return self
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the listening socket: connections are refused until `start`."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        assert self._thread is not None
        self._thread.join(5)
        self._server = self._thread = None

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _answer(self, path: str) -> tuple[int, dict[str, object] | None]:
        """The status and JSON body to answer a POST to `path` with."""
        if self.status != 200 or not self.slack:
            return self.status, None
        if not path.endswith("/chat.postMessage"):
            return 200, {"ok": False, "error": "unknown_method"}
        if self.slack_error is not None:
            return 200, {"ok": False, "error": self.slack_error}
        return 200, {"ok": True, "channel": "C0123", "ts": f"{time.time():.6f}"}

    def _record(self, item: Received) -> None:
        with self._lock:
            self._received.append(item)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                content_type = self.headers.get("Content-Type", "")
                json_body = "json" in content_type
                body: object = json.loads(raw) if json_body else dict(parse_qsl(raw.decode()))
                status, answer = receiver._answer(self.path)
                accepted = 200 <= status < 300 and (answer is None or answer.get("ok") is True)
                headers = {name.lower(): value for name, value in self.headers.items()}
                receiver._record(Received(self.path, headers, body, status, accepted, time.time()))
                payload = json.dumps(answer if answer is not None else {}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the tests read `received`, not stderr."""

        return Handler
