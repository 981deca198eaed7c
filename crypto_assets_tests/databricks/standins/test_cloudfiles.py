"""The Auto Loader stand-in drives the project's real Databricks reader like Auto Loader would.

The reader (`AutoLoaderReader(on_databricks=True)`, its ``cloudFiles`` options and `decode_rows`)
runs as streaming queries over landing files of the real recording and hostile lines; its results
are compared with the reader's off-Databricks path (Spark's JSON file source) on the same files.
The stand-in's offsets are also driven directly, in the order Spark calls them.
"""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import os
import shutil
import socket
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F  # noqa: N812 - the PySpark convention
from pyspark.sql.types import StringType, StructField, StructType

from crypto_assets import landing_record
from crypto_assets.analytics.landing_decoder import DecodedBatch
from crypto_assets.analytics.spark_session import LOOPBACK, SESSION_CONF
from crypto_assets.databricks.autoloader_reader import (
    CORRUPT_RECORD,
    FIELDS,
    LANDING_LINE_SCHEMA,
    RESCUED_DATA,
    SOURCE_FILE,
    AutoLoaderReader,
    auto_loader_options,
    decode_rows,
    file_source_options,
)
from crypto_assets_tests.analytics.landing_files import (
    chunks,
    write_bytes,
    write_landing_files,
)
from crypto_assets_tests.analytics.test_hostile_landing import hostile_lines, line
from crypto_assets_tests.databricks.standins.cloudfiles import (
    STATE_DIR,
    CloudFilesOptionError,
    CloudFilesOptions,
    CloudFilesStreamReader,
    install_cloudfiles,
    stream_schema,
    uninstall_cloudfiles,
)

pytestmark = pytest.mark.spark

# After the recording's trades (2024-08-08, UTC), so every good trade's times are plausible.
PROCESSED = dt.datetime(2024, 8, 9, 1, tzinfo=dt.UTC)
# The reason a line gets when Auto Loader hands it over with every column null (malformed JSON).
ALL_MISSING = f"missing {', '.join(landing_record.REQUIRED)}"
HOSTILE_FILE = "trades_20240808_235907_00f0f0.json"
NON_UTF8_FILE = "trades_20240808_235908_00f0f1.json"
# The local reasons of lines that are no JSON object, which Auto Loader hands over all null.


@pytest.fixture
def cloudfiles(spark: SparkSession, monkeypatch: pytest.MonkeyPatch) -> Iterator[SparkSession]:
    """`spark` with the stand-in installed (its Python workers: this interpreter, with pyarrow)."""
    # A Python data source runs in Spark's Python workers, started with the interpreter the
    # session had when the source was registered (default: python3 on PATH, without pyarrow).
    monkeypatch.setattr(spark.sparkContext, "pythonExec", sys.executable)
    install_cloudfiles(spark)
    yield spark
    uninstall_cloudfiles()


@dataclass
class Batch:
    """What one micro-batch handed to foreachBatch held, decoded by the reader."""

    batch_id: int
    files: set[str]
    decoded: DecodedBatch


@dataclass
class Run:
    """The batches of one streaming query, and its error (None: it ended by itself)."""

    batches: list[Batch] = field(default_factory=list)
    error: str | None = None

    @property
    def files(self) -> list[str]:
        """Every file of every batch, in batch order."""
        return [name for batch in self.batches for name in sorted(batch.files)]

    def trades(self) -> pa.Table:
        """The good trades of all batches."""
        return pa.concat_tables([batch.decoded.trades for batch in self.batches])

    def rejected(self) -> pa.Table:
        """The rejected lines of all batches."""
        return pa.concat_tables([batch.decoded.rejected for batch in self.batches])


def run_reader(
    reader: AutoLoaderReader,
    spark: SparkSession,
    checkpoint: Path,
    *,
    fail_batches: bool = False,
) -> Run:
    """One ``availableNow`` query of `reader`, each batch decoded by the reader (or failed)."""
    run = Run()

    def process(batch_df: DataFrame, batch_id: int) -> None:
        files = {row[SOURCE_FILE] for row in batch_df.select(SOURCE_FILE).distinct().collect()}
        if fail_batches:
            run.batches.append(Batch(batch_id, files, DecodedBatch(pa.table({}), pa.table({}))))
            raise RuntimeError("injected failure")
        decoded, _ = reader.decode(batch_df, PROCESSED)
        run.batches.append(Batch(batch_id, files, decoded))

    query = (
        reader.stream(spark)
        .writeStream.option("checkpointLocation", str(checkpoint))
        .foreachBatch(process)
        .trigger(availableNow=True)
        .start()
    )
    try:
        query.awaitTermination()
    except Exception as exc:  # the query's failure is what the test looks at
        run.error = str(exc)
    return run


def sorted_trades(table: pa.Table) -> pa.Table:
    """`table` without its processing time, in a fixed order (file, symbol, trade id)."""
    return table.drop_columns(["processed_time"]).sort_by(
        [(SOURCE_FILE, "ascending"), ("symbol", "ascending"), ("trade_id", "ascending")]
    )


def reasons(rejected: pa.Table) -> Counter:
    """(file, reason) of each rejected line, counted."""
    return Counter((row[SOURCE_FILE], row["reason"]) for row in rejected.to_pylist())


def write_hostile(landing: Path, sample: list[dict], good: list[dict]) -> list[tuple[bytes, str]]:
    """Two files of every hostile kind among good lines; the hostile (line, reason words)."""
    bad = hostile_lines(sample)
    utf8 = [(text, words) for text, words in bad if "not UTF-8" not in words]
    non_utf8 = [(text, words) for text, words in bad if "not UTF-8" in words]
    truncated = line(good[-1])[:37]
    lines = [line(record) for record in good[:20]] + [text for text, _ in utf8]
    write_bytes(landing, HOSTILE_FILE, b"\n".join([*lines, truncated]))  # ends inside a line
    # Non-UTF-8 lines in a file of their own.
    write_bytes(landing, NON_UTF8_FILE, b"\n".join([line(good[20]), *(t for t, _ in non_utf8)]))
    return [*bad, (truncated, "not valid JSON")]


def test_the_databricks_reader_on_the_stand_in_decodes_like_the_file_source(
    cloudfiles: SparkSession, landing_records: list[dict], tmp_path: Path
) -> None:
    spark = cloudfiles
    records = landing_records[:6000]
    first, second = chunks(records[:5900], 2)
    sample, spare = records[5900:5940], records[5940:]
    landing, volume = tmp_path / "landing", tmp_path / "volume"
    reader = AutoLoaderReader(str(landing), str(volume / "_schemas" / "q"), on_databricks=True)

    # Run 1: good files, both hostile files, and files Auto Loader leaves alone.
    write_landing_files(landing, first, 3)
    write_hostile(landing, sample, spare)
    unread = spare[30:34]  # written where Auto Loader does not look, or after it read the file
    write_bytes(landing / "_processed", "trades_20240801_000000_00dead.json", line(unread[0]))
    write_bytes(landing, ".trades_20240801_000000_00beef.json.tmp", line(unread[1]))
    write_bytes(landing, "notes.txt", line(unread[2]))  # not matched by pathGlobFilter
    run1 = run_reader(reader, spark, tmp_path / "checkpoint")
    assert run1.error is None
    assert len(run1.batches) == 1  # availableNow on a Python source: one batch (see cloudfiles)
    assert set(run1.files) == {p.name for p in landing.glob("trades_*.json")}
    compared = tmp_path / "compared"  # the files as run 1 read them, for the file source
    shutil.copytree(landing, compared)

    # Between the runs: new files, an old file rewritten (never re-read), odd encodings.
    run1_file = sorted(landing.glob("trades_*.json"))[0]
    write_bytes(landing, run1_file.name, line(unread[3]))
    new_files = write_landing_files(landing, second, 2, first_sequence=0x100)
    crlf = b"\r\n".join(line(r) for r in second[:5]) + b"\r\n"
    write_bytes(landing, "trades_20240808_235950_00c41f.json", crlf)
    bom = b"\xef\xbb\xbf" + b"\n".join(line(r) for r in second[5:10])  # no newline at the end
    write_bytes(landing, "trades_20240808_235951_00b0b0.json", bom)
    write_bytes(landing, "trades_20240808_235952_00e0e0.json", b"")
    write_bytes(landing, "trades_20240808_235953_00e0e1.json", b"\n\n  \r\n")
    later = {p.name for p in new_files} | {
        "trades_20240808_235950_00c41f.json",
        "trades_20240808_235951_00b0b0.json",
        "trades_20240808_235952_00e0e0.json",
        "trades_20240808_235953_00e0e1.json",
    }

    # Run 2 fails in its batch; the restarted query re-runs that batch with the same files.
    failed = run_reader(reader, spark, tmp_path / "checkpoint", fail_batches=True)
    assert failed.error is not None
    assert "injected failure" in failed.error
    run2 = run_reader(reader, spark, tmp_path / "checkpoint")
    assert run2.error is None
    assert (
        set(failed.files)
        == set(run2.files)
        == later - {"trades_20240808_235952_00e0e0.json", "trades_20240808_235953_00e0e1.json"}
    )
    assert run_reader(reader, spark, tmp_path / "checkpoint").batches == []  # nothing new
    for name in later:
        shutil.copy(landing / name, compared / name)

    # Every good trade of every file exactly once, across the runs.
    trades = pa.concat_tables([run1.trades(), run2.trades()])
    written = Counter(
        (r["symbol"], r["trade_id"]) for r in [*first, *second, *second[:10], *spare[:21]]
    )
    decoded = Counter(
        zip(trades["symbol"].to_pylist(), trades["trade_id"].to_pylist(), strict=True)
    )
    assert {key: decoded[key] for key in written} == written
    assert not {r["trade_id"] for r in unread} & set(trades["trade_id"].to_pylist())

    # The file source on the same files decodes the same trades and gives the same reasons,
    # non-UTF-8 lines included (both keep a line that is not JSON as its corrupt record).
    local = AutoLoaderReader(str(compared), str(tmp_path / "unused"), on_databricks=False)
    file_source = run_reader(local, spark, tmp_path / "file_source_checkpoint")
    assert file_source.error is None
    assert sorted_trades(trades).equals(sorted_trades(file_source.trades()))
    rejected = pa.concat_tables([run1.rejected(), run2.rejected()])
    assert reasons(rejected) == reasons(file_source.rejected())
    by_reason = Counter(reason for _, reason in reasons(rejected).elements())
    for words in ("microseconds?", "trade_id '12'", "is_buyer_maker 'yes'", "missing symbol"):
        assert any(words in reason for reason in by_reason), words
    assert sum("not UTF-8" in reason for reason in by_reason.elements()) == 2
    assert spare[20]["trade_id"] in trades["trade_id"].to_pylist()


def test_later_batches_are_capped_by_max_files_per_trigger(
    cloudfiles: SparkSession, landing_records: list[dict], tmp_path: Path
) -> None:
    spark = cloudfiles
    landing = tmp_path / "landing"
    first, later = chunks(landing_records[:800], 2)
    write_landing_files(landing, first, 3)
    reader = AutoLoaderReader(
        str(landing), str(tmp_path / "schemas"), on_databricks=True, max_files_per_trigger=2
    )
    batches: list[list[str]] = []

    def process(batch_df: DataFrame, batch_id: int) -> None:
        files = batch_df.select(SOURCE_FILE).distinct().collect()
        batches.append(sorted(row[SOURCE_FILE] for row in files))

    query = (
        reader.stream(spark)
        .writeStream.option("checkpointLocation", str(tmp_path / "checkpoint"))
        .foreachBatch(process)
        .trigger(processingTime="0 seconds")
        .start()
    )
    try:
        query.processAllAvailable()
        # A query's first batch takes every file there (Trigger.Once semantics, see cloudfiles).
        assert [len(files) for files in batches] == [3]
        write_landing_files(landing, later, 5, first_sequence=0x100)
        query.processAllAvailable()
    finally:
        query.stop()
    later_batches = batches[1:]
    assert all(1 <= len(files) <= 2 for files in later_batches), batches
    assert sum(len(files) for files in later_batches) == 5
    assert len(later_batches) >= 3  # five files, two at most a batch


def test_options_auto_loader_refuses_fail_in_one_line(
    cloudfiles: SparkSession, tmp_path: Path
) -> None:
    options = auto_loader_options(str(tmp_path / "schemas"), 1024)

    def load(**changes: str) -> DataFrame:
        given = {key: value for key, value in {**options, **changes}.items() if value}
        reader = cloudfiles.readStream.format("cloudFiles").options(**given)
        return reader.schema(LANDING_LINE_SCHEMA).load(str(tmp_path))

    cases = {
        "unknown Auto Loader option cloudFiles.maxFilesPerTriger": {
            "cloudFiles.maxFilesPerTriger": "5"
        },
        "cloudFiles.format 'csv': only json is implemented by the stand-in": {
            "cloudFiles.format": "csv"
        },
        "cloudFiles.format 'jsonl': not an Auto Loader format": {"cloudFiles.format": "jsonl"},
        "cloudFiles.schemaEvolutionMode addNewColumns: only rescue and none": {
            "cloudFiles.schemaEvolutionMode": "addNewColumns"
        },
        "cloudFiles.schemaEvolutionMode 'evolve' is not one of": {
            "cloudFiles.schemaEvolutionMode": "evolve"
        },
        "cloudFiles.schemaLocation is required": {"cloudFiles.schemaLocation": ""},
        "Auto Loader option cloudFiles.cleanSource is not implemented": {
            "cloudFiles.cleanSource": "MOVE"
        },
        "cloudFiles.maxBytesPerTrigger must be a byte string": {
            "cloudFiles.maxBytesPerTrigger": "lots"
        },
        "option multiLine is not implemented by the stand-in": {"multiLine": "true"},
    }
    for words, changes in cases.items():
        with pytest.raises(CloudFilesOptionError) as caught:
            load(**changes)
        message = str(caught.value)
        assert words in message, message
        assert "\n" not in message
    # cloudFiles.validateOptions=false lets an unknown option through, as in Auto Loader.
    relaxed = load(**{"cloudFiles.maxFilesPerTriger": "5", "cloudFiles.validateOptions": "false"})
    assert relaxed.isStreaming
    # The stream has the schema's columns, the rescued-data column and the file metadata.
    assert relaxed.columns == [*FIELDS, RESCUED_DATA, "_metadata"]
    # Other formats are untouched.
    assert (
        "_metadata"
        not in cloudfiles.readStream.schema(LANDING_LINE_SCHEMA).json(str(tmp_path)).columns
    )


def test_rows_carry_rescued_data_and_a_corrupt_column_would_keep_every_reason(
    cloudfiles: SparkSession, landing_records: list[dict], tmp_path: Path
) -> None:
    """The stand-in's rows, and what a corrupt-record column would give the reader.

    With ``_corrupt_record`` in the schema (and read as bytes), malformed lines keep their text,
    and decode_rows gives every line the reason the file source's rows get (non-UTF-8 included).
    """
    spark = cloudfiles
    landing = tmp_path / "landing"
    good, sample = landing_records[:30], landing_records[30:70]
    bad = write_hostile(landing, sample, good)
    mistyped = line(good[25], price="64000.5", venue="binance")
    write_bytes(landing, "trades_20240808_235909_00f0f2.json", mistyped + b"\nnot json\n")
    schema = StructType([*LANDING_LINE_SCHEMA.fields, StructField(CORRUPT_RECORD, StringType())])

    def rows_of(df: DataFrame) -> list[dict]:
        collected: list[dict] = []
        columns = [
            *FIELDS,
            *([RESCUED_DATA] if RESCUED_DATA in df.columns else []),
            F.col(CORRUPT_RECORD).cast("binary").alias(CORRUPT_RECORD),
            F.col("_metadata.file_name").alias(SOURCE_FILE),
            F.col("_metadata.file_path").alias("file_path"),
        ]

        def process(batch_df: DataFrame, _: int) -> None:
            collected.extend(batch_df.toArrow().to_pylist())

        checkpoint = tmp_path / f"checkpoint{len(list(tmp_path.glob('checkpoint*')))}"
        query = (
            df.select(*columns)
            .writeStream.option("checkpointLocation", str(checkpoint))
            .foreachBatch(process)
            .trigger(availableNow=True)
            .start()
        )
        query.awaitTermination()
        return collected

    options = auto_loader_options(str(tmp_path / "schemas"), 1 << 20)
    stand_in = rows_of(
        spark.readStream.format("cloudFiles").options(**options).schema(schema).load(str(landing))
    )
    file_source = rows_of(
        spark.readStream.format("json")
        .options(**file_source_options(1 << 20))
        .schema(schema)
        .load(str(landing))
    )

    # Rescued data: the value that does not fit, the fields outside the schema, the file's path.
    row = next(r for r in stand_in if r["trade_id"] == good[25]["trade_id"])
    assert row["price"] is None
    assert row[CORRUPT_RECORD] is None
    assert json.loads(row[RESCUED_DATA]) == {
        "price": "64000.5",
        "venue": "binance",
        "trade_value_usdt": good[25]["trade_value_usdt"],
        "_file_path": row["file_path"],
    }
    assert row["file_path"] == f"file:{landing / 'trades_20240808_235909_00f0f2.json'}"
    # A good line rescues only the recomputed field the schema leaves out.
    row = next(r for r in stand_in if r["trade_id"] == good[0]["trade_id"])
    assert set(json.loads(row[RESCUED_DATA])) == {"trade_value_usdt", "_file_path"}
    # A malformed line: every column null, nothing rescued, its text in the corrupt column.
    row = next(r for r in stand_in if r[CORRUPT_RECORD] == b"not json")
    assert all(row[name] is None for name in (*FIELDS, RESCUED_DATA))

    stand_in_decoded = decode_rows(stand_in, PROCESSED)
    file_source_decoded = decode_rows(file_source, PROCESSED)
    assert reasons(stand_in_decoded.rejected) == reasons(file_source_decoded.rejected)
    assert sorted_trades(stand_in_decoded.trades).equals(sorted_trades(file_source_decoded.trades))
    by_reason = Counter(reason for _, reason in reasons(stand_in_decoded.rejected).elements())
    assert all(any(words in r for r in by_reason) for _, words in bad if "not UTF-8" in words)
    assert ALL_MISSING not in by_reason  # nothing lost its text


def test_offsets_are_a_durable_file_log_read_by_slices(tmp_path: Path) -> None:
    """The reader's offsets, driven in the order Spark 4.0 calls them (no Spark needed)."""
    landing, schemas = tmp_path / "landing", tmp_path / "schemas"
    for name in ("trades_1.json", "trades_2.json", "sub/trades_3.json", "_state/trades_x.json"):
        write_bytes((landing / name).parent, Path(name).name, b'{"trade_id": 1}\n' * 10)
    write_bytes(landing, ".trades_4.json.tmp", b"{}")
    write_bytes(landing, "trades_5.txt", b"{}")
    options = {**auto_loader_options(str(schemas), 100), "path": str(landing)}

    def new_reader(**changes: str) -> CloudFilesStreamReader:
        given = {**options, **changes}
        return CloudFilesStreamReader(
            CloudFilesOptions.parse(given), stream_schema(LANDING_LINE_SCHEMA, given)
        )

    def files(reader: CloudFilesStreamReader, start: dict, end: dict) -> list[str]:
        parts = reader.partitions(start, end)
        return [str(Path(f.path).relative_to(landing)) for p in parts for f in p.files]

    # A new query: latestOffset, then initialOffset; the first batch takes every file.
    reader = new_reader()
    end = reader.latestOffset()
    start = reader.initialOffset()
    assert files(reader, start, end) == ["sub/trades_3.json", "trades_1.json", "trades_2.json"]
    # New files: a later batch stops at the file that reaches maxBytesPerTrigger (100 bytes).
    for name in ("trades_6.json", "trades_7.json"):
        write_bytes(landing, name, b'{"trade_id": 2}\n' * 10)
    following = reader.latestOffset()
    assert files(reader, end, following) == ["trades_6.json"]
    # A restarted query: Spark shows the reader its latest offset, then asks for more.
    log = schemas / STATE_DIR / "files.jsonl"
    with log.open("a") as out:
        out.write('{"path": "/cut short')  # an append cut short by a crash
    restarted = new_reader()
    assert restarted.partitions(following, following) == []
    last = restarted.latestOffset()
    assert files(restarted, following, last) == ["trades_7.json"]
    assert restarted.latestOffset() == last  # nothing new
    assert len(log.read_text().splitlines()) == 1 + 5  # the header, five files, no cut line
    # An offset of another log (the schema location replaced) fails, naming the log.
    with pytest.raises(CloudFilesOptionError, match="not in the file log"):
        restarted.partitions({"log": "other", "files": 0}, last)
    # includeExistingFiles=false: a new query starts after the files already there.
    fresh = new_reader(
        **{"cloudFiles.schemaLocation": str(tmp_path / "fresh")},
        **{"cloudFiles.includeExistingFiles": "false"},
    )
    end = fresh.latestOffset()
    assert files(fresh, fresh.initialOffset(), end) == []
    # Another load path on the same schema location is refused.
    with pytest.raises(CloudFilesOptionError, match="give each stream its own"):
        new_reader(path=str(tmp_path)).latestOffset()


def _connect_child(conn: Any, landing: str, schemas: str, checkpoint: str) -> None:
    """In a fresh interpreter: a local Spark Connect server, the reader's stream on a session."""
    from pyspark import SparkConf, SparkContext  # noqa: PLC0415 - in the child only
    from pyspark.sql.connect.session import SparkSession as ConnectSession  # noqa: PLC0415

    os.environ["PYSPARK_PYTHON"] = sys.executable  # the server's Python workers
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port = probe.getsockname()[1]
    server = {
        **SESSION_CONF,
        "spark.plugins": "org.apache.spark.sql.connect.SparkConnectPlugin",
        "spark.connect.grpc.binding.address": LOOPBACK,
        "spark.connect.grpc.binding.port": str(port),
    }
    context = SparkContext.getOrCreate(SparkConf().setMaster("local[2]").setAll(server.items()))
    SparkSession(context)  # the server's session
    os.environ["SPARK_CONNECT_MODE_ENABLED"] = "1"  # pyspark.sql.functions builds Connect columns
    spark = ConnectSession.builder.remote(f"sc://{LOOPBACK}:{port}").getOrCreate()
    try:
        install_cloudfiles(spark)
        answer: dict[str, Any] = {"connect": type(spark).__module__}
        try:
            spark.readStream.format("cloudFiles").options(
                **{"cloudFiles.format": "json", "cloudFiles.schemaLocation": schemas, "x.y": "1"}
            ).schema(LANDING_LINE_SCHEMA).load(landing)
        except CloudFilesOptionError as exc:
            answer["option_error"] = str(exc)
        reader = AutoLoaderReader(landing, schemas, on_databricks=True)
        query = (
            reader.stream(spark)
            .writeStream.format("memory")
            .queryName("landing_rows")
            .option("checkpointLocation", checkpoint)
            .trigger(availableNow=True)
            .start()
        )
        query.awaitTermination()
        answer["rows"] = spark.sql("SELECT * FROM landing_rows").toArrow().to_pylist()
        conn.send(answer)
    finally:
        spark.stop()
        context.stop()


@pytest.mark.slow  # a Spark Connect server of its own, in a child process: a minute
def test_the_stand_in_serves_a_spark_connect_session(
    landing_records: list[dict], tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    good = landing_records[:3]
    lines = [line(good[0]), line(good[1], price="64000.5"), b"not json", line(good[2])]
    write_bytes(landing, "trades_20240808_235900_000001.json", b"\n".join(lines))
    spawn = multiprocessing.get_context("spawn")  # no classic Spark of the test session
    parent_end, child_end = spawn.Pipe()
    args = (child_end, str(landing), str(tmp_path / "schemas"), str(tmp_path / "checkpoint"))
    child = spawn.Process(target=_connect_child, args=args, name="cloudfiles-connect")
    child.start()
    try:
        deadline = time.monotonic() + 540
        while not parent_end.poll(1.0):
            assert child.is_alive(), "the Spark Connect child died: its traceback is on stderr"
            assert time.monotonic() < deadline, "no answer from the Spark Connect child"
        answer = parent_end.recv()
    finally:
        child.join(timeout=120)
        if child.is_alive():
            child.kill()
    assert answer["connect"] == "pyspark.sql.connect.session"
    assert "unknown" not in answer["option_error"]
    assert answer["option_error"].endswith("option x.y is not implemented by the stand-in")
    decoded = decode_rows(answer["rows"], PROCESSED)
    assert decoded.trades["trade_id"].to_pylist() == [good[0]["trade_id"], good[2]["trade_id"]]
    first, second = decoded.rejected["reason"].to_pylist()
    assert first == f"price '64000.5' and quantity {good[1]['quantity']!r} must be JSON numbers"
    assert second.startswith("not valid JSON"), second
