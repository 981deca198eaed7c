"""The outbox's files (staged, released, done) and the ledger's records and compaction."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from crypto_assets.notifications.message import Notification
from crypto_assets.notifications.outbox import Ledger, Outbox


def alerts(*keys: str) -> list[Notification]:
    return [Notification.operational("check", "s", f"m {k}", {}, key=k) for k in keys]


def test_staged_batches_wait_until_released_in_release_order(outbox: Outbox) -> None:
    outbox.stage("app-uuid_2", alerts("a"))
    outbox.stage("app-uuid_1", alerts("b"))
    outbox.stage("app-uuid_1", alerts("c", "d"))  # a re-run of batch 1 replaces its staging
    assert outbox.ready() == []
    assert outbox.staged() == ["app-uuid_1", "app-uuid_2"]
    assert outbox.release("app-uuid_2")
    assert outbox.release("app-uuid_1")
    assert not outbox.release("app-uuid_1")  # nothing staged any more
    ready = outbox.ready()
    assert [(entry, [n.key for n in ns]) for entry, ns in ready] == [
        ("000000000001_app-uuid_2", ["a"]),
        ("000000000002_app-uuid_1", ["c", "d"]),
    ]
    assert ready[1][1] == alerts("c", "d")  # read back whole
    outbox.done("000000000001_app-uuid_2")
    assert [entry for entry, _ in outbox.ready()] == ["000000000002_app-uuid_1"]
    assert outbox.staged() == []


def test_a_discarded_batch_is_never_ready(outbox: Outbox) -> None:
    outbox.stage("7", alerts("a"))
    outbox.discard("7")
    assert not outbox.release("7")
    assert outbox.ready() == []


def test_staging_leaves_no_temporary_file_and_rejects_unsafe_ids(outbox: Outbox) -> None:
    outbox.stage("b", alerts("a"))
    assert sorted(p.name for p in outbox.pending_dir.iterdir()) == ["b.json"]
    with pytest.raises(ValueError, match="not a file name"):
        outbox.stage("../escape", alerts("a"))
    with pytest.raises(ValueError, match="not a file name"):
        outbox.stage(".hidden", alerts("a"))


def test_the_ledger_remembers_attempts_and_sends_across_loads(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    ledger = Ledger(path)
    ledger.record_attempt("webhook", "k1")
    ledger.record_sent("webhook", "k1")
    ledger.record_attempt("webhook", "k2")  # then a crash
    ledger.record_attempt("slack", "k1")
    ledger.record_failed("slack", "k1")
    again = Ledger(path)
    assert again.is_sent("webhook", "k1")
    assert not again.is_sent("slack", "k1")
    assert again.attempted_unsent("webhook", "k2")
    assert not again.attempted_unsent("slack", "k1")  # it failed: a retry is no repeat
    assert not again.attempted_unsent("webhook", "k1")
    assert [json.loads(line) for line in path.read_text().splitlines()][:2] == [
        {"channel": "webhook", "key": "k1", "event": "attempt"},
        {"channel": "webhook", "key": "k1", "event": "sent"},
    ]


def test_compaction_keeps_the_newest_sent_keys_and_interrupted_attempts(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    ledger = Ledger(path, keep=3)
    ledger.record_attempt("a", "interrupted")
    for number in range(10):
        ledger.record_attempt("a", f"k{number}")
        ledger.record_sent("a", f"k{number}")
        assert ledger.lines <= 7  # 2 * keep for the one channel, + the interrupted attempt
    assert len(path.read_text().splitlines()) == ledger.lines
    for reloaded in (ledger, Ledger(path, keep=3)):
        remembered = [reloaded.is_sent("a", f"k{n}") for n in range(10)]
        assert remembered[-3:] == [True] * 3  # the newest `keep` always
        assert not any(remembered[:4])  # the oldest forgotten
        assert sum(remembered) <= 6
        assert reloaded.attempted_unsent("a", "interrupted")


def test_a_torn_last_line_is_cut_off_before_appending(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "ledger.jsonl"
    Ledger(path).record_sent("a", "k1")
    with open(path, "a") as handle:
        handle.write('{"channel":"a","key":"k2","ev')  # the crash came mid-line
    with caplog.at_level(logging.WARNING):
        ledger = Ledger(path)
    assert "torn last line" in caplog.text
    ledger.record_sent("a", "k3")
    reloaded = Ledger(path)
    assert [reloaded.is_sent("a", k) for k in ("k1", "k2", "k3")] == [True, False, True]
    assert reloaded.lines == 2
