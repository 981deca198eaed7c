"""The landing writer: batching by size and age, atomic visible files, the quarantine."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import pytest

from crypto_assets.producer.landing_writer import LandingWriteError, LandingWriter, write_atomically

NAME = re.compile(r"^trades_\d{8}_\d{6}_[0-9a-f]{12}\.json$")


class FakeClock:
    """A settable monotonic clock (plain object, not a mock)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def lines(n: int, start: int = 0) -> list[str]:
    return [json.dumps({"trade_id": i}) for i in range(start, start + n)]


def read_ids(directory: Path) -> list[int]:
    return [
        json.loads(line)["trade_id"]
        for path in sorted(directory.glob("trades_*.json"))
        for line in path.read_text().splitlines()
    ]


def test_full_batches_are_written_at_once_with_the_contract_name(tmp_path: Path) -> None:
    landing = tmp_path / "landing" / "trades"
    writer = LandingWriter(landing, tmp_path / "landing" / "_quarantine", 60.0, 100)
    for line in lines(250):
        writer.add(line)
    files = sorted(landing.iterdir())
    assert len(files) == 2
    assert all(NAME.match(p.name) for p in files)
    assert writer.pending == 50
    writer.flush()
    assert sorted(read_ids(landing)) == list(range(250))
    assert (writer.files_written, writer.trades_written) == (3, 250)
    assert not [p for p in landing.iterdir() if p.name.startswith(".")]


def test_a_partial_batch_is_written_when_the_interval_passes(tmp_path: Path) -> None:
    clock = FakeClock()
    writer = LandingWriter(tmp_path / "t", tmp_path / "q", 5.0, 1000, clock=clock)
    for line in lines(3):
        writer.add(line)
    clock.now = 4.9
    writer.flush_if_due()
    assert list((tmp_path / "t").iterdir()) == []
    clock.now = 5.0
    writer.flush_if_due()
    assert read_ids(tmp_path / "t") == [0, 1, 2]
    clock.now = 11.0
    writer.flush_if_due()  # nothing pending: no empty file
    assert writer.files_written == 1


def test_rejected_frames_go_to_the_quarantine_with_reason_and_time(tmp_path: Path) -> None:
    quarantine = tmp_path / "landing" / "_quarantine"
    writer = LandingWriter(tmp_path / "landing" / "trades", quarantine, 5.0, 1000)
    writer.reject('{"bad', "bad_json", "Expecting value", 1234)
    writer.reject("héllo", "wrong_event_type", "", 1235)
    writer.flush()
    (path,) = quarantine.glob("quarantine_*.json")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert rows == [
        {"received_time": 1234, "reason": "bad_json", "detail": "Expecting value", "raw": '{"bad'},
        {"received_time": 1235, "reason": "wrong_event_type", "detail": "", "raw": "héllo"},
    ]
    assert (writer.quarantined, writer.quarantine_files) == (2, 1)
    assert list((tmp_path / "landing" / "trades").iterdir()) == []


def test_write_atomically_replaces_the_hidden_temporary_file(tmp_path: Path) -> None:
    path = write_atomically(tmp_path, "trades_x.json", ["a", "b"])
    assert path.read_text() == "a\nb\n"
    assert [p.name for p in tmp_path.iterdir()] == ["trades_x.json"]


def test_a_polling_reader_never_sees_a_partial_file(tmp_path: Path) -> None:
    landing = tmp_path / "trades"
    writer = LandingWriter(landing, tmp_path / "q", 60.0, 997)
    big = "x" * 300  # long lines: each file is ~300 KB, written in several syscalls
    done = threading.Event()
    seen: dict[str, int] = {}
    problems: list[str] = []

    def poll() -> None:
        while True:
            finished = done.is_set()  # one more full pass after the writer is done
            for path in landing.glob("trades_*.json"):
                if path.name in seen:
                    continue
                text = path.read_text()
                rows = text.splitlines()
                if not text.endswith("\n") or any(json.loads(r)["pad"] != big for r in rows):
                    problems.append(path.name)
                seen[path.name] = len(rows)
            if finished:
                return

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        for i in range(40_000):
            writer.add(json.dumps({"trade_id": i, "pad": big}))
        writer.flush()
    finally:
        done.set()
        reader.join()
    assert problems == []
    assert len(seen) == writer.files_written == 41
    assert sorted(read_ids(landing)) == list(range(40_000))


def test_an_unwritable_landing_dir_is_a_one_line_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where the landing directory should be")
    with pytest.raises(LandingWriteError, match="cannot create the landing directory") as caught:
        LandingWriter(blocker / "trades", tmp_path / "q")
    assert "\n" not in str(caught.value)


def test_a_failed_write_keeps_the_batch_pending(tmp_path: Path) -> None:
    landing = tmp_path / "trades"
    writer = LandingWriter(landing, tmp_path / "q", 60.0, 1000)
    for line in lines(5):
        writer.add(line)
    landing.rmdir()
    landing.write_text("the directory was replaced by a file")
    with pytest.raises(LandingWriteError, match="cannot write a landing file"):
        writer.flush()
    assert writer.pending == 5
    landing.unlink()
    landing.mkdir()
    writer.flush()
    assert read_ids(landing) == [0, 1, 2, 3, 4]
