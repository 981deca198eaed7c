"""The local Spark JVM's class archive, dumped once at install time from a real analytics run.

Before its first batch a local Spark JVM loads and verifies some 20,000 classes from PySpark's
jars: most of its start-up. Java's class-data sharing (AppCDS, JDK 13+) can dump the classes a
run loaded into an archive that later JVMs map instead. Measured on 2 cores: a session and its
first job 7.4 s without it, 4.6 s with it.

`python -m crypto_assets.local.class_archive` (run by `make install`) runs one small batch of
the bundled recording through the real pipeline in a child process whose JVM dumps its classes
when it exits, starts one more JVM on the result with sharing required, and only then moves it
to `spark_session.class_archive_path()`: a half-written archive crashes the JVM that maps it,
so none is ever put in place. Sessions use it from then on (`spark_session.get_spark_session`);
without it, or when the JVM refuses it (another Java build, another Spark), they start as before.
"""

from __future__ import annotations

import datetime as dt
import gzip
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from pyspark import SparkContext

from crypto_assets.analytics.pipeline import run_analytics
from crypto_assets.analytics.spark_session import (
    class_archive_options,
    class_archive_path,
    get_spark_session,
)
from crypto_assets.binance.parsing import TradeRecord, parse_frame
from crypto_assets.errors import CryptoAssetsError
from crypto_assets.local.deployment import LocalDeployment
from crypto_assets.recording import bundled_recording
from crypto_assets.settings import Settings

logger = logging.getLogger(__name__)

# Trades of the recording per landing file, and files: three batches, each with its windows.
_TRADES_PER_FILE = 1000
_FILES = 3
_CHILD_TIMEOUT_S = 600


class ClassArchiveError(CryptoAssetsError):
    """The class archive could not be made; sessions start without one."""


def write_landing_sample(landing: Path) -> None:
    """A few landing files of the bundled recording's trades, as the producer writes them."""
    landing.mkdir(parents=True, exist_ok=True)
    symbols = frozenset({"BTCUSDT", "ETHUSDT"})
    lines: list[str] = []
    with gzip.open(bundled_recording(), "rt") as frames:
        for frame in frames:
            received_ns, text = frame.split(" ", 1)
            parsed = parse_frame(text, int(received_ns) // 1_000_000, symbols)
            if isinstance(parsed, TradeRecord):
                lines.append(parsed.to_json())
            if len(lines) == _TRADES_PER_FILE * _FILES:
                break
    for index in range(_FILES):
        chunk = lines[index * _TRADES_PER_FILE : (index + 1) * _TRADES_PER_FILE]
        (landing / f"trades_{index:04d}.json").write_text("\n".join(chunk) + "\n")


def train(archive: Path) -> None:
    """Run the sample through the pipeline in a JVM that dumps its classes to `archive` at exit.

    Returns once that JVM has exited, so the archive is whole (or missing) when this returns.
    """
    with tempfile.TemporaryDirectory(prefix="class_archive_") as folder:
        settings = Settings(data_dir=Path(folder), landing_retention_hours="none")
        write_landing_sample(settings.data_dir / "landing" / "trades")
        spark = get_spark_session(java_options=[f'-XX:ArchiveClassesAtExit="{archive}"'])
        target = LocalDeployment(settings).analytics_target(spark, max_files_per_trigger=1)
        run_analytics(spark, settings, target, mode="once")
        gateway = SparkContext._gateway
        spark.stop()
        # The JVM dumps as it exits, which it does when its standard input closes.
        process = gateway.proc
        process.stdin.close()
        process.wait(timeout=_CHILD_TIMEOUT_S)


def map_once(archive: Path) -> None:
    """Start a session that must map `archive` (the JVM exits at once if it cannot)."""
    options = [*class_archive_options(archive), "-Xshare:on"]
    get_spark_session(java_options=options).range(1).count()


def verify(archive: Path) -> None:
    """Raise `ClassArchiveError` unless a new JVM maps `archive` (tried in a child process)."""
    _child("check", archive)


def _child(step: str, archive: Path) -> None:
    command = [sys.executable, "-m", "crypto_assets.local.class_archive", step, str(archive)]
    with tempfile.TemporaryDirectory(prefix="class_archive_") as folder:
        # In a folder of its own: a JVM that cannot map the archive may crash, leaving a log.
        result = subprocess.run(
            command,
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=_CHILD_TIMEOUT_S,
            check=False,
        )
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise ClassArchiveError(f"the class archive's {step} step failed: {last}")


def build(archive: Path | None = None) -> Path:
    """Dump, check and put in place the class archive (`class_archive_path()` by default)."""
    archive = class_archive_path() if archive is None else archive
    archive.parent.mkdir(parents=True, exist_ok=True)
    fresh = archive.with_name(f".{archive.name}.{os.getpid()}.tmp")
    try:
        started = dt.datetime.now(dt.UTC)
        _child("train", fresh)
        if not fresh.is_file():
            raise ClassArchiveError(f"the JVM wrote no class archive to {fresh}")
        verify(fresh)
        fresh.replace(archive)
    finally:
        fresh.unlink(missing_ok=True)
    seconds = (dt.datetime.now(dt.UTC) - started).total_seconds()
    logger.info(
        "class archive %s (%.0f MiB) in %.0f s", archive, archive.stat().st_size / 2**20, seconds
    )
    return archive


def main() -> None:
    """`build`, or one of its child steps (``train`` or ``check`` and an archive path)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if len(sys.argv) == 3 and sys.argv[1] in {"train", "check"}:
        step = train if sys.argv[1] == "train" else map_once
        step(Path(sys.argv[2]))
        return
    try:
        print(build())
    except ClassArchiveError as exc:
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main()
