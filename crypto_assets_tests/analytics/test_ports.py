"""What the ports define besides protocols: reading a batch's watermark input back from commits."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from crypto_assets.analytics.ports import (
    META_APP_ID,
    META_BATCH_ID,
    META_MAX_TRADE_TIME,
    BatchTag,
    recorded_watermark,
)

TAG = BatchTag("q", 7)


def commit(batch_id: int, app_id: str = "q", watermark: str = "") -> dict[str, str]:
    """A trades_raw commit's metadata as the sinks write it."""
    return {META_APP_ID: app_id, META_BATCH_ID: str(batch_id), META_MAX_TRADE_TIME: watermark}


def newest_first(*commits: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """`commits`, then a failure: reading past them is reading further than the answer needs."""
    yield from commits
    pytest.fail("read past the commits that decide it")


def test_the_batchs_own_commit_gives_its_watermark_past_others() -> None:
    others = [{}, {"operation": "OPTIMIZE"}, commit(9, app_id="other query")]
    assert recorded_watermark(newest_first(*others, commit(7, watermark="1723161600000")), TAG) == (
        True,
        1723161600000,
    )
    assert recorded_watermark(newest_first(commit(7)), TAG) == (True, None)  # the table was empty


def test_an_earlier_batch_of_the_query_decides_this_one_committed_nothing() -> None:
    assert recorded_watermark(newest_first({}, commit(6, watermark="5")), TAG) == (False, None)


def test_commits_that_run_out_leave_it_undecided() -> None:
    assert recorded_watermark(iter([commit(8), commit(3, app_id="other query")]), TAG) is None
