"""Where a producer's landing files go: the port each deployment answers.

The producer writes complete files into one local folder. On the local deployment that folder is
the landing folder itself; on Databricks it is a spool, and a `LandingUpload` moves each file to
the Volume and keeps the producer's state there. The producer knows no deployment, only this.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from crypto_assets.producer.producer_state import ProducerStateFile
    from crypto_assets.producer.trade_sequencer import SymbolProgress


class ProducerState(Protocol):
    """Where the producer keeps the ids it landed per symbol (`ProducerStateFile` locally)."""

    def load(self, landing_dir: Path, symbols: Iterable[str]) -> dict[str, SymbolProgress]:
        """The progress per symbol landed so far."""
        ...

    def save(self, progress: Mapping[str, SymbolProgress]) -> None:
        """Keep `progress`."""
        ...

    def close(self) -> None:
        """Release the landing folder."""
        ...


class LandingUpload(Protocol):
    """Moves the files a producer lands in `spool_dir` to `destination`, in the background."""

    spool_dir: Path
    state_path: Path
    files_uploaded: int
    trades_uploaded: int

    @property
    def destination(self) -> str:
        """Where the files end up, for logs."""
        ...

    def pending_files(self) -> list[Path]:
        """Files still waiting in the spool."""
        ...

    def producer_state(self, local: ProducerStateFile) -> ProducerState:
        """The producer's state at the destination, with `local` as its copy in the spool."""
        ...

    def start(self) -> None:
        """Upload in the background from now on."""
        ...

    def stop(self) -> int:
        """A last upload, then stop; the files still pending."""
        ...


class StateFile(enum.Enum):
    """Where the producer keeps its state unless given a path (None: keep none)."""

    BESIDE_LANDING = "the landing folder's own (`ProducerFiles.state_path`)"


@dataclass(frozen=True)
class LandingTarget:
    """The folder a producer writes landing files in, its state file, and any upload from it.

    `state_path`: a path, `StateFile.BESIDE_LANDING` (the folder's own) or None (keep none).
    """

    landing_dir: Path
    state_path: Path | StateFile | None
    upload: LandingUpload | None = None

    @property
    def location(self) -> str:
        """Where the landing files end up: the folder, or the upload's destination."""
        return str(self.landing_dir) if self.upload is None else self.upload.destination
