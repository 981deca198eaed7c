"""No landing input can stop or wedge the analytics: hostile files among good ones, on real data.

Good trades must land in trades_raw exactly once and the tables equal the plain-Python reference;
every bad line must be in trades_quarantine with its file, its raw text and a reason a person
understands; and a later run must still process new files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from crypto_assets.analytics.schema import TRADES_QUARANTINE, TRADES_RAW
from crypto_assets_tests.analytics.expectations import (
    assert_matches_reference,
    assert_raw_holds_each_trade_once,
)
from crypto_assets_tests.analytics.landing_files import (
    chunks,
    write_bytes,
    write_landing_files,
)
from crypto_assets_tests.analytics.settings_for_tests import analytics_settings, rules_env
from crypto_assets_tests.analytics.tables import rows

pytestmark = pytest.mark.spark


def line(record: dict, **changes: object) -> bytes:
    """`record` as one JSON line, with fields changed (or dropped, for a value of DROP)."""
    mutated = {k: v for k, v in {**record, **changes}.items() if v is not DROP}
    return json.dumps(mutated).encode()


DROP = object()


def hostile_lines(sample: list[dict]) -> list[tuple[bytes, str]]:
    """(line, words its quarantine reason must contain) for every kind of bad row."""
    r = iter(sample)

    def bad(**changes: object) -> bytes:
        return line(next(r), **changes)

    micro = sample[0]["trade_time"] * 1000
    latin = sample[-1]  # a symbol with a Latin-1 byte in it
    return [
        (bad(trade_time=micro), "microseconds?"),
        (bad(event_time=1_723_161_255_343_000), "event_time 1723161255343000"),
        (bad(trade_time=0), "trade_time 0 is not epoch milliseconds"),
        (bad(trade_time=-5), "trade_time -5"),
        (bad(trade_time=32_503_680_000_000), "from 2017-01-01 to a day from now"),
        (bad(trade_time=1_723_161_255), "seconds?"),
        (bad(price=0.0), "price 0.0 is not a finite number above zero"),
        (bad(quantity=-1.5), "quantity -1.5"),
        (bad(price=1e200, quantity=1e200), "price x quantity"),
        (bad(price="NaN"), "must be JSON numbers"),
        (bad().replace(b'"price": ', b'"price": NaN, "x": '), "not valid JSON"),
        (bad().replace(b'"quantity": ', b'"quantity": Infinity, "x": '), "not valid JSON"),
        (bad(symbol=DROP), "missing symbol"),
        (bad(trade_id=DROP, is_buyer_maker=DROP), "missing trade_id, is_buyer_maker"),
        (bad(symbol="btc usdt"), "is not 2-20 upper-case letters or digits"),
        (bad(trade_id=-1), "trade_id -1"),
        (bad(trade_id="12"), "trade_id '12'"),
        (bad(is_buyer_maker="yes"), "is_buyer_maker 'yes'"),
        (b"[" + bad() + b"]", "an array, not a JSON object"),
        (b'"just a string"', "a string, not a JSON object"),
        (b"null", "null, not a JSON object"),
        (b"\xff\xfe\x00garbage \xc3\x28", "not UTF-8"),
        (line(latin).replace(latin["symbol"].encode(), b"BTC\xe9USDT"), "not UTF-8"),
        (b"x" * 200_000, "not valid JSON"),
    ]


@pytest.fixture
def hostile_dir(tmp_path: Path, landing_records: list[dict]) -> tuple[Path, list, list, list]:
    """Half the recording in good files, plus every hostile kind; (dir, good, bad, later)."""
    landing = tmp_path / "landing" / "trades"
    first, later = chunks(landing_records, 2)
    plain, crlf, bom, padded, duplicated = chunks(first, 5)
    write_landing_files(landing, plain, 4)
    lines = [line(r) for r in crlf]
    write_bytes(landing, "trades_20240808_235900_00c41f.json", b"\r\n".join(lines) + b"\r\n")
    write_bytes(
        landing,
        "trades_20240808_235901_00b0b0.json",
        b"\xef\xbb\xbf" + b"\n".join(line(r) for r in bom),
    )  # a byte-order mark, and no newline after the last line
    big = [line(r, note="n" * 200_000) for r in padded[:3]] + [line(r) for r in padded[3:]]
    write_bytes(landing, "trades_20240808_235902_00bbbb.json", b"\n".join(big) + b"\n")
    content = b"\n".join(line(r) for r in duplicated) + b"\n"
    write_bytes(landing, "trades_20240808_235903_00d0d0.json", content)
    write_bytes(landing, "trades_20240808_235904_00d0d1.json", content)  # the same file again
    write_bytes(landing, "trades_20240808_235905_00e0e0.json", b"")
    write_bytes(landing, "trades_20240808_235906_00e0e1.json", b"\n\n  \r\n")
    bad = hostile_lines(later[:40])  # uses at most the first 39, and the 40th
    mixed = [line(r) for r in plain[:50]] + [text for text, _ in bad]  # known good, then bad
    truncated = line(later[41])[:37]
    write_bytes(
        landing, "trades_20240808_235907_00f0f0.json", b"\n".join([*mixed, truncated])
    )  # the file ends inside its last line
    bad = [*bad, (truncated, "not valid JSON")]
    return tmp_path, first, bad, later


def run_cli(data_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, **rules_env()}
    command = [sys.executable, "-m", "crypto_assets.cli", "analytics", "--once"]
    return subprocess.run(
        [*command, "--data-dir", str(data_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_hostile_files_among_good_ones(spark, hostile_dir) -> None:
    data_dir, good, bad, later = hostile_dir
    done = run_cli(data_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"bad rows {len(bad)}" in done.stdout

    assert_raw_holds_each_trade_once(data_dir, good)
    assert_matches_reference(data_dir, good)
    quarantined = rows(data_dir, TRADES_QUARANTINE)
    assert len(quarantined) == len(bad)
    assert {r["source_file"] for r in quarantined} == {"trades_20240808_235907_00f0f0.json"}
    by_line = {r["raw_line"]: r["reason"] for r in quarantined}
    for text, words in bad:
        raw = text.decode("utf-8", errors="backslashreplace")
        assert raw in by_line, raw[:200]
        assert words in by_line[raw], (raw[:200], by_line[raw])
        assert "\n" not in by_line[raw]
    bad_ids = {r["trade_id"] for r in later[:42]}
    assert not bad_ids & {r["trade_id"] for r in rows(data_dir, TRADES_RAW)}

    # Nothing is wedged: the next run takes new good files, and the quarantine is not repeated.
    write_landing_files(data_dir / "landing" / "trades", later, 6, first_sequence=0x100)
    summary = run_analytics_once(spark, data_dir)
    assert summary.files_processed == 6
    assert summary.bad_rows == 0
    assert_raw_holds_each_trade_once(data_dir, good + later)
    assert_matches_reference(data_dir, good + later)
    assert len(rows(data_dir, TRADES_QUARANTINE)) == len(bad)


def run_analytics_once(spark, data_dir: Path):
    from crypto_assets_tests.analytics.runs import run_local  # noqa: PLC0415

    return run_local(spark, analytics_settings(data_dir))
