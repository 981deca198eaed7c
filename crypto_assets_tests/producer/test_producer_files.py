"""Where a landing folder's state, lock and quarantine are: its own, never a sibling's."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from crypto_assets.producer.producer_files import ProducerFiles
from crypto_assets.settings import Settings
from crypto_assets_tests.landing_folder import landing_of


def test_the_default_landing_folder_keeps_the_design_layout(tmp_path: Path) -> None:
    files = ProducerFiles.of(landing_of(Settings(data_dir=tmp_path)))
    assert files.landing_dir == tmp_path / "landing" / "trades"
    assert files.state_path == tmp_path / "landing" / "_state" / "producer_state.json"
    assert files.lock_path == tmp_path / "landing" / "_state" / "producer_state.lock"
    assert files.quarantine_dir == tmp_path / "landing" / "_quarantine"


def test_folders_under_one_parent_each_get_their_own_files(tmp_path: Path) -> None:
    a, b = ProducerFiles.of(tmp_path / "a"), ProducerFiles.of(tmp_path / "b")
    assert a.state_path == tmp_path / "_state" / "a" / "producer_state.json"
    assert a.lock_path == tmp_path / "_state" / "a" / "producer_state.lock"
    assert a.quarantine_dir == tmp_path / "_quarantine" / "a"
    trades = ProducerFiles.of(tmp_path / "trades")
    paths = [(f.state_path, f.lock_path, f.quarantine_dir) for f in (a, b, trades)]
    assert len({p for triple in paths for p in triple}) == 9


def test_a_relative_folder_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert ProducerFiles.of(Path("x")).state_path == Path(
        os.path.realpath(tmp_path), "_state", "x", "producer_state.json"
    )
