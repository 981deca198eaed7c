"""Where a landing folder's producer keeps its state, lock and quarantine: derived here only.

They belong to the landing folder. The default folder, ``$CRYPTO_DATA_DIR/landing/trades``
(DESIGN.md "Layout and layering"), keeps them beside it in ``landing/_state/producer_state.json``,
``landing/_state/producer_state.lock`` and ``landing/_quarantine/``, names other tools rely on.
Any folder named ``trades`` does the same; any other gets a sub-folder named after it there, so
two landing folders under one parent never share a state or a lock:

    /p/trades   ->  /p/_state/producer_state.json     /p/_quarantine/
    /p/a        ->  /p/_state/a/producer_state.json   /p/_quarantine/a/

The state file also records the folder it describes (see `crypto_assets.producer.producer_state`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# The landing folder's name in every layout (`LocalLayout`, the spool, `VolumeLayout`).
DEFAULT_LANDING_FOLDER = "trades"
STATE_FOLDER = "_state"
QUARANTINE_FOLDER = "_quarantine"
STATE_FILE_NAME = "producer_state.json"


def lock_path_of(state_path: Path) -> Path:
    """The lock file a producer holds beside its state file: ``producer_state.lock``."""
    return Path(state_path).with_suffix(".lock")


@dataclass(frozen=True)
class ProducerFiles:
    """The state file, lock file and quarantine folder of one landing folder (absolute)."""

    landing_dir: Path

    @classmethod
    def of(cls, landing_dir: Path) -> ProducerFiles:
        """The files of `landing_dir`, made absolute (symbolic links resolved)."""
        return cls(Path(landing_dir).resolve())

    def _beside(self, folder: str) -> Path:
        """``<parent>/<folder>``, plus ``/<name>`` unless the landing folder is named ``trades``."""
        shared = self.landing_dir.parent / folder
        name = self.landing_dir.name
        return shared if name == DEFAULT_LANDING_FOLDER else shared / name

    @property
    def state_path(self) -> Path:
        """The producer state file: which trade ids landed in this folder."""
        return self._beside(STATE_FOLDER) / STATE_FILE_NAME

    @property
    def lock_path(self) -> Path:
        """The lock a producer of this folder holds while it runs."""
        return lock_path_of(self.state_path)

    @property
    def quarantine_dir(self) -> Path:
        """Where frames that fail to parse or validate go, raw with the reason."""
        return self._beside(QUARANTINE_FOLDER)
