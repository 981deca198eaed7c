"""Headless Chromium driven over its DevTools protocol: open a page, wait, click, screenshot.

`chromium --screenshot` cannot click, and some of the UI is behind a button (Dagster's
*[Show Markdown]*). This starts Chromium with its remote-debugging port on 127.0.0.1 and talks
to the page over the websocket Chromium gives it (websocket-client, a dependency of the project).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

import websocket

logger = logging.getLogger(__name__)

# Chromium's own background traffic stays off: everything here is loopback.
_QUIET_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--remote-debugging-address=127.0.0.1",
)  # fmt: skip
# The first leaf element whose own text is exactly LABEL, inside the table row (or the whole page
# when ROW is null) whose leaf element reads ROW: a button's label, in a metadata table's row.
_CLICK_JS = """((label, row) => {
  const leaves = (root, text) => [...root.querySelectorAll('*')].filter(
    (e) => e.childElementCount === 0 && e.textContent.trim() === text);
  let root = document;
  if (row !== null) {
    const cell = leaves(document, row)[0];
    if (!cell || !cell.closest('tr')) return 'no table row labelled ' + row;
    root = cell.closest('tr');
  }
  const target = leaves(root, label)[0];
  if (!target) return 'no element labelled ' + label;
  (target.closest('button') || target).click();
  return 'clicked';
})(%s, %s)"""
# The first button (in document order, after the button reading AFTER when AFTER is not null)
# whose visible text, aria-label, or an icon's aria-label inside it is exactly LABEL: Dagster's
# icon-only buttons (a split button's dropdown, ▾) carry only their icon's name, arrow_drop_down.
_BUTTON_JS = """((label, after) => {
  const buttons = [...document.querySelectorAll('button, [role=button]')];
  const labels = (b) => [b.innerText.trim(), b.getAttribute('aria-label'),
    ...[...b.querySelectorAll('[aria-label]')].map((e) => e.getAttribute('aria-label'))];
  let from = 0;
  if (after !== null) {
    const anchor = buttons.findIndex((b) => b.innerText.trim() === after);
    if (anchor < 0) return 'no button reads ' + after;
    from = anchor + 1;
  }
  const target = buttons.slice(from).find((b) => labels(b).includes(label));
  if (!target) return 'no button labelled ' + label;
  target.click();
  return 'clicked';
})(%s, %s)"""
# Scroll the first leaf element whose own text is exactly TEXT to the top of the viewport.
_SCROLL_JS = """(text => {
  const target = [...document.querySelectorAll('*')].find(
    (e) => e.childElementCount === 0 && e.textContent.trim() === text);
  if (!target) return false;
  target.scrollIntoView({block: 'start'});
  return true;
})(%s)"""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 just now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Chromium:
    """One headless Chromium and one page (tab) of it, spoken to over the DevTools protocol."""

    def __init__(self, profile: Path, width: int = 1600) -> None:
        binary = shutil.which("chromium") or shutil.which("chromium-browser")
        if binary is None:
            raise SystemExit("chromium not found: apt-get install -y chromium")
        self.port = free_port()
        self.width = width
        self._command = [
            binary, *_QUIET_FLAGS, f"--remote-debugging-port={self.port}",
            f"--user-data-dir={profile}", f"--window-size={width},1000", "about:blank",
        ]  # fmt: skip
        self._process: subprocess.Popen | None = None
        self._socket: websocket.WebSocket | None = None
        self._next_id = 0

    def __enter__(self) -> Chromium:
        self._process = subprocess.Popen(
            self._command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            self._socket = websocket.create_connection(self._page_socket_url(), timeout=60)
            self.call("Page.enable")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _page_socket_url(self, seconds: float = 30.0) -> str:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json", timeout=5) as r:
                    targets = json.load(r)
                return next(t for t in targets if t["type"] == "page")["webSocketDebuggerUrl"]
            except (urllib.error.URLError, ConnectionError, StopIteration):
                time.sleep(0.3)
        raise SystemExit(f"chromium's DevTools port {self.port} did not answer in {seconds:.0f} s")

    def close(self) -> None:
        """Close the connection and stop Chromium's process group."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)
            self._process.wait(timeout=30)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one DevTools command and return its result (events in between are skipped)."""
        assert self._socket is not None, "use Chromium as a context manager"
        self._next_id += 1
        self._socket.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv())
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def open(self, url: str, wait_for_text: str, height: int, seconds: float = 60.0) -> None:
        """Load `url` in a viewport `height` px tall; wait until it shows `wait_for_text`."""
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=self.width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        self.call("Page.navigate", url=url)
        self.wait_for_text(wait_for_text, seconds)
        self.wait_while_text("Loading", seconds)

    def _shows(self, text: str) -> bool:
        body = f"document.body !== null && document.body.innerText.includes({json.dumps(text)})"
        return bool(self.evaluate(body))

    def wait_for_text(self, text: str, seconds: float = 60.0) -> None:
        """Wait until the page's visible text contains `text`."""
        deadline = time.monotonic() + seconds
        while not self._shows(text):
            if time.monotonic() > deadline:
                raise SystemExit(f"the page never showed {text!r} within {seconds:.0f} s")
            time.sleep(0.5)

    def wait_while_text(self, text: str, seconds: float = 60.0) -> None:
        """Wait until the page no longer shows `text` (a spinner's label), then let it settle."""
        deadline = time.monotonic() + seconds
        while self._shows(text):
            if time.monotonic() > deadline:
                logger.warning("the page still shows %r after %.0f s", text, seconds)
                break
            time.sleep(0.5)
        time.sleep(2)  # fonts, charts and late rows

    def click_text(self, label: str, row_label: str | None = None) -> None:
        """Click the element labelled `label` (in the table row labelled `row_label`)."""
        outcome = self.evaluate(_CLICK_JS % (json.dumps(label), json.dumps(row_label)))
        if outcome != "clicked":
            raise SystemExit(f"cannot click {label!r}: {outcome}")
        time.sleep(3)  # the dialog opens and draws

    def click_button(self, label: str, after: str | None = None, settle: float = 2.0) -> None:
        """Click the button whose text or aria-label (or its icon's) is `label`.

        With `after`, the first such button following the button that reads `after`: the
        dropdown (▾, an icon named arrow_drop_down) of the split button *Materialize all*.
        """
        outcome = self.evaluate(_BUTTON_JS % (json.dumps(label), json.dumps(after)))
        if outcome != "clicked":
            raise SystemExit(f"cannot click the button {label!r}: {outcome}")
        time.sleep(settle)  # a menu or dialog opens and draws

    def scroll_to_text(self, text: str) -> None:
        """Scroll the element whose own text is `text` to the top of the viewport."""
        if not self.evaluate(_SCROLL_JS % json.dumps(text)):
            raise SystemExit(f"no element reads {text!r}")
        time.sleep(1)

    def screenshot(self, out: Path) -> None:
        """Write the viewport as a PNG to `out`."""
        shot = self.call("Page.captureScreenshot", format="png")
        out.write_bytes(base64.b64decode(shot["data"]))
        logger.info("wrote %s", out)
