"""The Spark JVM's class archive: made from a real run, mapped by sessions, never put in place
damaged. Real JVMs in child processes (a JVM maps an archive only when it starts)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from crypto_assets.analytics.spark_session import class_archive_path
from crypto_assets.local.class_archive import ClassArchiveError, build, verify

pytestmark = pytest.mark.slow

# A session that must map the archive given: with -Xshare:on the JVM exits when it cannot.
MAPPED = """
import sys
from pathlib import Path
from crypto_assets.analytics.spark_session import class_archive_options, get_spark_session
options = [*class_archive_options(Path(sys.argv[1])), "-Xshare:on"]
get_spark_session(java_options=options).range(1).count()
"""


def mapped_by_a_session(archive: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", MAPPED, str(archive)],
        cwd=archive.parent,  # where a JVM that crashes on it leaves its log
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_an_archive_built_from_a_run_is_mapped_by_a_new_session(tmp_path: Path) -> None:
    archive = build(tmp_path / "spark.jsa")
    assert archive.stat().st_size > 10 * 2**20
    assert list(tmp_path.iterdir()) == [archive]  # nothing half-written left beside it
    result = mapped_by_a_session(archive)
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_installs_archive_is_the_one_sessions_map() -> None:
    archive = class_archive_path()
    if not archive.is_file():
        pytest.skip(f"no class archive at {archive} (make install builds it)")
    assert archive.is_relative_to(Path(sys.prefix))
    assert mapped_by_a_session(archive).returncode == 0


def test_a_damaged_archive_fails_its_check(tmp_path: Path) -> None:
    # What a dump cut short leaves: the head of a real archive (mapping it crashes the JVM).
    source = class_archive_path()
    if not source.is_file():
        pytest.skip(f"no class archive at {source} to cut (make install builds it)")
    damaged = tmp_path / "cut.jsa"
    with source.open("rb") as whole:
        damaged.write_bytes(whole.read(1 << 20))
    assert mapped_by_a_session(damaged).returncode != 0
    with pytest.raises(ClassArchiveError, match="check step failed"):
        verify(damaged)
