"""Landing files to a Unity Catalog Volume: a local spool, uploaded file by file (Files API).

The producer's `LandingWriter` keeps writing complete files atomically into a local spool folder
(`default_spool_dir`). `VolumeUploader` uploads each complete spool file to
`VolumeLayout.landing_dir` with one ``PUT /api/2.0/fs/files{path}`` (so a reader of the Volume
never lists a partial file) and deletes it locally only once the upload succeeded. A failed upload
keeps the file and is retried with backoff in the uploader's own thread, while the producer goes
on receiving: nothing received is lost, and a restart uploads the spool first. A crash between an
upload and the local delete re-uploads the file under the same name with ``overwrite=true``:
the same content replaces itself, never a second file with the same trades.

The producer state file lives on the Volume too (`VolumeLayout.producer_state_path`). Its local
copy beside the spool is written after every landing file (and holds the spool's lock); the
uploader uploads that copy only after every spool file it covers is on the Volume, so the state on
the Volume never claims a trade the Volume's landing folder lacks. `VolumeProducerState` loads it
back at start (a 404 is no state) plus the ids of the Volume's landing files newer than it and of
the spool files not uploaded yet, as `ProducerStateFile` does with local landing files.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from email.utils import parsedate_to_datetime
from pathlib import Path

from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import NotFound

from crypto_assets.backoff import RestartBackoff
from crypto_assets.databricks.layout import VolumeLayout
from crypto_assets.databricks.workspace import error_text
from crypto_assets.errors import CryptoAssetsError
from crypto_assets.landing_files import is_landing_file
from crypto_assets.landing_record import trade_ids_by_symbol
from crypto_assets.producer.producer_files import DEFAULT_LANDING_FOLDER, ProducerFiles
from crypto_assets.producer.producer_state import (
    ProducerStateFile,
    check_state_folder,
    landed_ids_since,
    parse_state,
    with_landed,
)
from crypto_assets.producer.trade_sequencer import SymbolProgress

logger = logging.getLogger(__name__)

# 1, 2, 4 ... 60 s between attempts while uploads fail.
UPLOAD_BACKOFF = RestartBackoff(base_seconds=1.0, max_seconds=60.0)
# Volume files this much older than the state are still read at load (HTTP dates are to the
# second; reading a file the state already covers changes nothing).
_CLOCK_SLACK_MS = 2_000


class VolumeUploadError(CryptoAssetsError):
    """The Volume cannot be read where the producer must (its state at start)."""


def default_spool_dir(data_dir: Path) -> Path:
    """Where landing files wait for their upload: ``<data-dir>/spool/trades``."""
    return Path(data_dir) / "spool" / DEFAULT_LANDING_FOLDER


class VolumeUploader:
    """Uploads the complete files of `spool_dir` to the Volume's landing folder, then the state.

    `upload_once` is one synchronous round; `start` runs rounds in a thread, each when `notify`
    is called (a file landed) or when a failed round's backoff has passed; `stop` ends the thread
    after a last round. Every failed upload logs one line; so does the first success after one.
    """

    def __init__(
        self,
        client: WorkspaceClient,
        layout: VolumeLayout,
        spool_dir: Path,
        *,
        state_path: Path | None = None,
        backoff: RestartBackoff = UPLOAD_BACKOFF,
    ) -> None:
        self.client = client
        self.layout = layout
        self.spool_dir = Path(spool_dir)
        # The local state copy the producer writes (its `ProducerConfig.resolved_state_path`).
        self.state_path = Path(state_path) if state_path else ProducerFiles.of(spool_dir).state_path
        self.backoff = backoff
        self.files_uploaded = 0
        self.trades_uploaded = 0  # lines of the uploaded files
        self.failed_attempts = 0
        self._failures = 0  # consecutive failed rounds
        self._retry_at: float | None = None
        self._uploaded_state: bytes | None = None
        self._round = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def destination(self) -> str:
        """The Volume's landing folder, where the files end up."""
        return self.layout.landing_dir

    def pending_files(self) -> list[Path]:
        """The complete spool files not uploaded yet, oldest name first."""
        try:
            return sorted(p for p in self.spool_dir.iterdir() if is_landing_file(p.name))
        except FileNotFoundError:
            return []

    def upload_once(self, *, with_state: bool = True) -> bool:
        """Upload every pending spool file, then the state they cover; False after a failure.

        Without `with_state` only the files: a local state left by an earlier run may be older
        than the Volume's (another machine produced since) and must not replace it.
        """
        with self._round:
            # The state is read before the files are listed: every file it covers is listed.
            state = self._local_state() if with_state else None
            uploaded = 0
            for path in self.pending_files():
                if not self._upload_file(path):
                    return False
                uploaded += 1
            if state is not None and state != self._uploaded_state:
                if not self._put(self.layout.producer_state_path, state, self.state_path):
                    return False
                self._uploaded_state = state
            if self._failures:
                logger.info(
                    "uploads to %s resumed after %s failed attempts (%s files uploaded now)",
                    self.layout.landing_dir,
                    self._failures,
                    uploaded,
                )
            self._failures = 0
            self._retry_at = None
            return True

    def start(self) -> None:
        """Upload in a background thread from now on (a round at once, then on `notify`)."""
        if self._thread is not None:
            return
        self._stopping.clear()
        self._wake.set()
        self._thread = threading.Thread(target=self._run, name="volume-uploader", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        """A spool file (or the state) was written: upload it (once any backoff has passed)."""
        self._wake.set()

    def stop(self, timeout_seconds: float = 60.0) -> int:
        """A last round, then end the thread; returns how many files are left in the spool."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stopping.set()
            self._wake.set()
            thread.join(timeout_seconds)
        left = len(self.pending_files())
        logger.info(
            "uploaded %s landing files to %s (%s failed attempts)",
            self.files_uploaded,
            self.layout.landing_dir,
            self.failed_attempts,
        )
        if left:
            logger.warning(
                "%s landing files wait in %s for their upload to %s: the next start uploads them",
                left,
                self.spool_dir,
                self.layout.landing_dir,
            )
        return left

    def producer_state(self, local: ProducerStateFile) -> VolumeProducerState:
        """The producer's state on the Volume, with `local` (beside the spool) as its copy."""
        return VolumeProducerState(self, local)

    def read_state(self) -> tuple[bytes, int | None] | None:
        """The state file on the Volume and its modification time (epoch ms); None if absent."""
        path = self.layout.producer_state_path
        try:
            response = self.client.files.download(path)
            content = response.contents.read()
        except NotFound:
            return None
        except OSError as exc:
            raise VolumeUploadError(
                f"cannot read the producer state {path} on the Volume ({error_text(exc)}): "
                "check the workspace, or run crypto-assets databricks-setup"
            ) from exc
        return content, _http_date_ms(response.last_modified)

    def landed_ids_since(self, since_ms: int) -> dict[str, list[int]]:
        """Trade ids by symbol in the Volume's landing files modified at or after `since_ms`."""
        landed: dict[str, list[int]] = {}
        try:
            entries = list(self.client.files.list_directory_contents(self.layout.landing_dir))
            for entry in entries:
                name = entry.name or ""
                if entry.is_directory or not is_landing_file(name):
                    continue
                if entry.last_modified is not None and entry.last_modified < since_ms:
                    continue
                content = self.client.files.download(f"{self.layout.landing_dir}/{name}")
                _add_ids(landed, content.contents.read().decode("utf-8").splitlines(), name)
        except NotFound:
            return landed
        except OSError as exc:
            raise VolumeUploadError(
                f"cannot list the landing files in {self.layout.landing_dir} ({error_text(exc)})"
            ) from exc
        return landed

    def _run(self) -> None:
        while True:
            self._wake.wait(timeout=self._seconds_to_retry())
            self._wake.clear()
            stopping = self._stopping.is_set()
            if not stopping and self._retry_at is not None and time.monotonic() < self._retry_at:
                continue  # a file landed during the backoff: it waits for the retry
            self.upload_once()
            if stopping:
                return

    def _seconds_to_retry(self) -> float | None:
        if self._retry_at is None:
            return None
        return max(0.0, self._retry_at - time.monotonic())

    def _upload_file(self, path: Path) -> bool:
        try:
            content = path.read_bytes()
        except FileNotFoundError:
            return True  # uploaded and deleted by an earlier round
        target = f"{self.layout.landing_dir}/{path.name}"
        if not self._put(target, content, path):
            return False
        path.unlink(missing_ok=True)
        self.files_uploaded += 1
        self.trades_uploaded += sum(1 for line in content.split(b"\n") if line.strip())
        logger.debug("uploaded %s to %s", path.name, target)
        return True

    def _put(self, target: str, content: bytes, source: Path) -> bool:
        """One PUT of `content` to `target` (overwrite: a retried upload replaces itself)."""
        try:
            self.client.files.upload(target, io.BytesIO(content), overwrite=True)
        except OSError as exc:  # DatabricksError, requests' errors and the SDK's TimeoutError
            self._failures += 1
            self.failed_attempts += 1
            delay = self.backoff.delay(self._failures)
            self._retry_at = time.monotonic() + delay
            logger.warning(
                "upload of %s to %s failed (%s); %s files wait in %s, next attempt in %.0f s",
                source.name,
                target,
                error_text(exc),
                len(self.pending_files()),
                self.spool_dir,
                delay,
            )
            return False
        return True

    def _local_state(self) -> bytes | None:
        try:
            return self.state_path.read_bytes()
        except FileNotFoundError:
            return None


class VolumeProducerState:
    """`ProducerStateFile`'s role for a spool and a Volume: load from the Volume, save locally.

    `load` takes the spool's lock, uploads the spool, then reads the state on the Volume plus the
    landing files newer than it. `save` writes the local copy and wakes the uploader, which puts
    it on the Volume after the files it covers.
    """

    def __init__(self, uploader: VolumeUploader, local: ProducerStateFile) -> None:
        self.uploader = uploader
        self.local = local
        self._kept: dict[str, SymbolProgress] = {}

    def load(self, landing_dir: Path, symbols: Iterable[str]) -> dict[str, SymbolProgress]:
        """The progress of `symbols` on the Volume, including files landed after its last save."""
        self.local.own(Path(landing_dir))
        try:
            progress = self._load()
        except BaseException:
            self.local.close()
            raise
        wanted = set(symbols)
        self._kept = {s: p for s, p in progress.items() if s not in wanted}
        return {s: p for s, p in progress.items() if s in wanted}

    def save(self, progress: Mapping[str, SymbolProgress]) -> None:
        """Write the local state copy (plus the symbols not in use) and have it uploaded."""
        self.local.save({**self._kept, **progress})
        self.uploader.notify()

    def close(self) -> None:
        """Release the spool's lock."""
        self.local.close()

    def _load(self) -> dict[str, SymbolProgress]:
        # The spool first; what fails stays there and is read below.
        waiting = len(self.uploader.pending_files())
        if waiting:
            logger.info(
                "uploading %s landing files an earlier run left in %s",
                waiting,
                self.uploader.spool_dir,
            )
            self.uploader.upload_once(with_state=False)
        stored = self.uploader.read_state()
        if stored is None:
            return {}
        content, modified_ms = stored
        path = self.uploader.layout.producer_state_path
        try:
            document = json.loads(content.decode("utf-8"))
            progress = parse_state(document)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            logger.warning("producer state file %s is unreadable (%s): starting afresh", path, exc)
            return {}
        check_state_folder(document, self.uploader.layout.landing_dir, path)
        since = 0 if modified_ms is None else modified_ms - _CLOCK_SLACK_MS
        landed = self.uploader.landed_ids_since(since)
        for symbol, ids in landed_ids_since(self.uploader.spool_dir, 0).items():
            landed.setdefault(symbol, []).extend(ids)
        for symbol, ids in landed.items():
            progress[symbol] = with_landed(progress.get(symbol), ids)
        return progress


def _add_ids(landed: dict[str, list[int]], lines: list[str], name: str) -> None:
    try:
        ids = trade_ids_by_symbol(lines)
    except (ValueError, KeyError, TypeError) as exc:
        logger.warning("cannot read landing file %s (%s): not counted as landed", name, exc)
        return
    for symbol, symbol_ids in ids.items():
        landed.setdefault(symbol, []).extend(symbol_ids)


def _http_date_ms(value: str | None) -> int | None:
    if not value:
        return None
    try:
        return int(parsedate_to_datetime(value).timestamp() * 1000)
    except (TypeError, ValueError):
        return None
