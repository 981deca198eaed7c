"""The folder lock between real processes: a holder in a child process, the refusal here."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from crypto_assets.folder_lock import FolderInUseError, FolderLock
from crypto_assets_tests.lock_holder import lock_held_by_a_child


def _lock(tmp_path: Path) -> FolderLock:
    return FolderLock(tmp_path / "f.lock", tmp_path, "test folder", "a holder", "wait for it")


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen]:
    """A child process holding the lock of `tmp_path` until its stdin closes."""
    with lock_held_by_a_child(tmp_path / "f.lock", tmp_path) as process:
        yield process


def test_a_second_process_is_refused_with_the_folder_and_the_holders_pid(
    tmp_path: Path, holder: subprocess.Popen
) -> None:
    with pytest.raises(FolderInUseError) as refused:
        _lock(tmp_path).acquire()
    message = str(refused.value)
    assert message == (
        f"test folder {tmp_path} is in use by a holder (pid {holder.pid}, lock "
        f"{tmp_path / 'f.lock'}): wait for it"
    )
    assert "\n" not in message


def test_the_lock_is_free_again_once_the_holder_exits(
    tmp_path: Path, holder: subprocess.Popen
) -> None:
    holder.stdin.close()
    assert holder.wait(timeout=30) == 0
    with _lock(tmp_path) as lock:
        assert lock.held
        assert (tmp_path / "f.lock").read_text() == f"{os.getpid()}\n"
    assert not lock.held


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path, holder: subprocess.Popen) -> None:
    holder.kill()
    holder.wait(timeout=30)
    with _lock(tmp_path) as lock:
        assert lock.held


def test_two_holders_in_one_process_exclude_each_other_until_released(tmp_path: Path) -> None:
    first = _lock(tmp_path).acquire()
    with pytest.raises(FolderInUseError, match=f"pid {os.getpid()},"):
        _lock(tmp_path).acquire()
    first.release()
    second = _lock(tmp_path).acquire()
    assert second.held
    second.release()
