"""The producer state file: round trip, unusable files, kept symbols, landing files after a save."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from crypto_assets.producer.landing_writer import LandingWriteError
from crypto_assets.producer.producer_files import ProducerFiles
from crypto_assets.producer.producer_state import (
    ProducerStateFile,
    StateFolderError,
    landed_highs,
    landing_folder_name,
    with_landed,
)
from crypto_assets.producer.trade_sequencer import SymbolProgress

FOLDER = "/data/landing/trades"  # the landing folder the states of these tests describe


def land(
    landing: Path, name: str, rows: list[tuple[str, int]], mtime_ns: int | None = None
) -> None:
    landing.mkdir(parents=True, exist_ok=True)
    path = landing / name
    path.write_text("".join(json.dumps({"symbol": s, "trade_id": t}) + "\n" for s, t in rows))
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))


def test_round_trip_keeps_highs_and_missing_ranges(tmp_path: Path) -> None:
    path = tmp_path / "_state" / "producer_state.json"
    saved = {"BTCUSDT": SymbolProgress(900, ((10, 20), (850, 851))), "ETHUSDT": SymbolProgress(7)}
    ProducerStateFile(path, FOLDER).save(saved)
    document = json.loads(path.read_text())
    assert document["symbols"]["BTCUSDT"] == {"landed_high": 900, "missing": [[10, 20], [850, 851]]}
    # No temp file left; the lock file beside it is the landing folder's (see test_producer_lock).
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "producer_state.json",
        "producer_state.lock",
    ]
    assert (
        ProducerStateFile(path, FOLDER).load(tmp_path / "trades", ["BTCUSDT", "ETHUSDT"]) == saved
    )


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "",
        '{"version": 1, "symbols": {"BTCUSDT": {"landed_high": "12"}}}',
        '{"version": 1, "symbols": {"BTCUSDT": {"landed_high": 12, "missing": [[5, 20]]}}}',
        '{"version": 99, "symbols": {}}',
        "[1, 2]",
    ],
)
def test_an_unusable_file_is_one_warning_and_a_fresh_start(
    tmp_path: Path, content: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "producer_state.json"
    path.write_text(content)
    land(tmp_path / "trades", "trades_x.json", [("BTCUSDT", 5)])  # not applied to garbage
    with caplog.at_level(logging.WARNING):
        assert ProducerStateFile(path, FOLDER).load(tmp_path / "trades", ["BTCUSDT"]) == {}
    (record,) = caplog.records
    assert "\n" not in record.getMessage()
    assert str(path) in record.getMessage()
    assert "starting afresh" in record.getMessage()


def test_no_file_is_a_fresh_start_without_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        assert ProducerStateFile(tmp_path / "none.json", FOLDER).load(tmp_path, ["BTCUSDT"]) == {}
    assert caplog.records == []


def test_symbols_not_in_use_are_kept_untouched(tmp_path: Path) -> None:
    path = tmp_path / "producer_state.json"
    ProducerStateFile(path, FOLDER).save(
        {"BTCUSDT": SymbolProgress(100), "ETHUSDT": SymbolProgress(50, ((40, 41),))}
    )
    state = ProducerStateFile(path, FOLDER)
    assert state.load(tmp_path / "trades", ["ETHUSDT"]) == {
        "ETHUSDT": SymbolProgress(50, ((40, 41),))
    }
    state.save({"ETHUSDT": SymbolProgress(60)})
    symbols = json.loads(path.read_text())["symbols"]
    assert symbols == {
        "BTCUSDT": {"landed_high": 100, "missing": []},
        "ETHUSDT": {"landed_high": 60, "missing": []},
    }


def test_landing_files_written_after_the_save_count_as_landed(tmp_path: Path) -> None:
    # A crash between a landing file and the state save must not make the restart fetch again.
    path = tmp_path / "producer_state.json"
    landing = tmp_path / "trades"
    ProducerStateFile(path, FOLDER).save({"BTCUSDT": SymbolProgress(100, ((95, 96),))})
    saved_ns = path.stat().st_mtime_ns
    land(landing, "trades_old.json", [("BTCUSDT", 97)], mtime_ns=saved_ns - 60_000_000_000)
    land(landing, "trades_new.json", [("BTCUSDT", 96), ("BTCUSDT", 101), ("BTCUSDT", 104)])
    land(landing, "trades_new2.json", [("ETHUSDT", 8), ("ETHUSDT", 10)])
    land(landing, ".trades_tmp.json.tmp", [("BTCUSDT", 500)])  # never visible: not landed
    progress = ProducerStateFile(path, FOLDER).load(landing, ["BTCUSDT", "ETHUSDT"])
    assert progress == {
        "BTCUSDT": SymbolProgress(104, ((95, 95), (102, 103))),
        "ETHUSDT": SymbolProgress(10, ((9, 9),)),
    }


def test_with_landed_closes_holes_and_opens_skipped_ids() -> None:
    progress = SymbolProgress(20, ((3, 8), (15, 15)))
    assert with_landed(progress, [4, 6, 15, 22, 25]) == SymbolProgress(
        25, ((3, 3), (5, 5), (7, 8), (21, 21), (23, 24))
    )
    assert with_landed(progress, [1, 2, 20]) == progress  # already landed: nothing changes
    assert with_landed(None, [9, 7, 12]) == SymbolProgress(12, ((8, 8), (10, 11)))


def test_an_unwritable_location_is_a_one_line_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(LandingWriteError, match=r"cannot write the producer state file .*--state"):
        ProducerStateFile(blocker / "producer_state.json", FOLDER).save(
            {"BTCUSDT": SymbolProgress(1)}
        )


def test_landed_highs_include_landing_files_newer_than_the_state(tmp_path: Path) -> None:
    landing = tmp_path / "landing" / "trades"
    path = ProducerFiles.of(landing).state_path
    ProducerStateFile(path, landing_folder_name(landing)).save(
        {"BTCUSDT": SymbolProgress(100), "ETHUSDT": SymbolProgress(50)}
    )
    land(landing, "trades_later.json", [("BTCUSDT", 101), ("BTCUSDT", 102)])

    assert path == tmp_path / "landing" / "_state" / "producer_state.json"
    assert landed_highs(path, landing, ["BTCUSDT", "ETHUSDT"]) == {"BTCUSDT": 102, "ETHUSDT": 50}
    assert landed_highs(path, landing, ["ETHUSDT"]) == {"ETHUSDT": 50}


def test_landed_highs_of_an_unreachable_state_are_empty_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("")
    with caplog.at_level(logging.WARNING):
        assert landed_highs(blocker / "producer_state.json", tmp_path, ["BTCUSDT"]) == {}
    (record,) = caplog.records
    assert str(blocker) in record.getMessage()


def test_the_state_names_the_folder_it_describes(tmp_path: Path) -> None:
    path = tmp_path / "producer_state.json"
    ProducerStateFile(path, FOLDER).save({"BTCUSDT": SymbolProgress(100)})
    assert json.loads(path.read_text())["landing_dir"] == FOLDER


def test_a_state_naming_another_folder_is_refused_kept_and_the_folder_freed(
    tmp_path: Path,
) -> None:
    # Two folders given one --state-file: the second must not take the first one's state.
    path = tmp_path / "shared" / "producer_state.json"
    first, second = tmp_path / "a", tmp_path / "b"
    ProducerStateFile(path, landing_folder_name(first)).save({"BTCUSDT": SymbolProgress(100)})
    saved = path.read_text()
    with pytest.raises(StateFolderError) as refused:
        ProducerStateFile(path, landing_folder_name(second)).load(second, ["BTCUSDT"])
    assert str(refused.value) == (
        f"the producer state {path} describes the landing folder {first}, not {second}: "
        f'if {second} is that folder moved here, set "landing_dir" in {path} to "{second}" '
        "to resume; to start afresh, delete that state file or pass another --state-file"
    )
    assert path.read_text() == saved
    # The refused producer let go of the lock: the first folder's producer can start.
    state = ProducerStateFile(path, landing_folder_name(first))
    assert state.load(first, ["BTCUSDT"]) == {"BTCUSDT": SymbolProgress(100)}
    state.close()


def test_a_state_that_names_no_folder_is_taken_as_the_folders_own(tmp_path: Path) -> None:
    # Written before states named their folder (the default layout's state after an upgrade).
    path = tmp_path / "producer_state.json"
    path.write_text('{"version": 1, "symbols": {"BTCUSDT": {"landed_high": 7, "missing": []}}}')
    state = ProducerStateFile(path, FOLDER)
    assert state.load(tmp_path / "trades", ["BTCUSDT"]) == {"BTCUSDT": SymbolProgress(7)}
    state.save({"BTCUSDT": SymbolProgress(8)})
    state.close()
    assert json.loads(path.read_text())["landing_dir"] == FOLDER


def test_landed_highs_of_another_folders_state_are_empty_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "producer_state.json"
    ProducerStateFile(path, FOLDER).save({"BTCUSDT": SymbolProgress(100)})
    with caplog.at_level(logging.WARNING):
        assert landed_highs(path, tmp_path / "elsewhere", ["BTCUSDT"]) == {}
    (record,) = caplog.records
    assert f"describes the landing folder {FOLDER}" in record.getMessage()
