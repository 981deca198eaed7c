"""A stand-in for Databricks Auto Loader (``cloudFiles``, JSON only) on open-source Spark 4.0.

`install_cloudfiles` registers `CloudFilesDataSource`, a Python streaming data source, and makes
``spark.readStream.format("cloudFiles")....schema(s).load(path)`` resolve to it, on a classic
session and on a Spark Connect one. The streaming DataFrame has the given schema's columns, then
the rescued-data column, then ``_metadata`` (``file_path``, ``file_name``, ``file_size``,
``file_block_start``, ``file_block_length``, ``file_modification_time``), as Auto Loader's has.

What it implements, from the Auto Loader docs (options page: `AUTO_LOADER_OPTIONS_DOCS`; the
rescued data column: "JSON file" page of the Databricks docs):

- **Options.** Every ``cloudFiles.*`` option is checked: an unknown one fails at ``load()`` with a
  one-line error naming it (unless ``cloudFiles.validateOptions`` is false, as in Auto Loader); a
  documented one the stand-in does not implement fails naming it too, rather than being ignored.
  ``cloudFiles.format`` must be ``json``. ``cloudFiles.schemaLocation`` is required: the stand-in
  keeps its file log there (Auto Loader keeps its file state in the checkpoint, which a source
  cannot see). A schema must be given (the stand-in infers none).
- **Files.** The load path is listed recursively; a file or folder whose name starts with ``_``
  or ``.`` is skipped (``_processed``, ``_state``, ``.x.tmp``), as Spark's file listing does;
  ``pathGlobFilter`` is a Hadoop glob matched against the file name. Each discovered file is
  appended to the file log, ``<schemaLocation>/_cloudfiles_standin/files.jsonl`` (fsynced before
  an offset that covers it is returned); an offset, ``{"log": <the log's id>, "files": n}``, is
  the log's length, a batch reads the log's slice, so a file is read once, and a restarted query
  with the same checkpoint goes on where it was. ``cloudFiles.includeExistingFiles=false`` skips
  the files present when a query starts for the first time.
- **Batch size.** ``cloudFiles.maxFilesPerTrigger`` (default 1000) and
  ``cloudFiles.maxBytesPerTrigger`` (a soft maximum: a batch has at least one file) cap every batch
  a query plans after its first. Spark 4.0 gives a Python source no read limits and runs an
  ``availableNow`` query over one as a single batch (``Trigger.Once``; Spark logs "Falling back to
  single batch execution"); Auto Loader ignores its rate limits under ``Trigger.Once``, and an
  ``availableNow`` run must take every file there at its start, so the first batch a query (or a
  restarted query) plans takes every file listed. Under a processing-time trigger, the batches
  after the first are capped, as in Auto Loader.
- **Rows**, as Spark's JSON reader (Jackson, ``PERMISSIVE``) parses them, which Auto Loader uses:
  lines end at LF, CR or CRLF; blank lines are no rows; a byte-order mark is skipped; text after
  the first JSON value of a line is ignored; ``NaN``/``Infinity``/``-Infinity`` are
  numbers; a top-level array of objects is one row per object (``[]``: none). A value fits a
  column when it is: a JSON string for a string column, or any other value, kept as its JSON text;
  a JSON integer in range for an integral column; a number, or the string ``"NaN"``,
  ``"Infinity"``, ``"+Infinity"``, ``"+INF"``, ``"-Infinity"`` or ``"-INF"``, for a double or
  float column; ``true``/``false`` for a boolean one; ``null`` for any.
- **Rescued data** (``cloudFiles.schemaEvolutionMode`` ``rescue``, or ``none`` with
  ``rescuedDataColumn`` set): a value that does not fit its column is null there and goes, with
  every field the schema does not have (names match case-sensitively), into the rescued-data
  column as one JSON object, with ``"_file_path"`` (the file's path, as ``_metadata.file_path``);
  a line with nothing to rescue has null there. Without a rescued-data column, a value that does
  not fit makes the line a corrupt record: its other fields are kept, that one is null.
- **Malformed lines** (not JSON, not UTF-8, truncated, or a JSON value that is no object, such as
  ``null``, ``"text"``, ``[1]``): one row whose columns are all null, rescued data null too. The
  line goes into the corrupt-record column (``columnNameOfCorruptRecord``, default
  ``_corrupt_record``) only when the schema has a string column of that name, as Spark's
  PERMISSIVE mode does (with a rescued-data column, the Databricks JSON docs say, only incomplete
  or malformed JSON is a corrupt record); its bytes are kept as they are, invalid UTF-8 included,
  as Spark keeps them (``toArrow().to_pylist()`` of such a row raises UnicodeDecodeError there).

Where it differs from Auto Loader, or could (see the README list too):

- the rescued JSON's exact text: values are re-serialized (Python's float text, such as
  ``10000000000.0`` where Java writes ``1.0E10``), non-finite numbers as the strings ``"NaN"``,
  ``"Infinity"``, ``"-Infinity"`` (Jackson's default); the order of the keys is the line's, then
  ``_file_path``; whether Auto Loader puts ``_file_path`` alone into a malformed line's rescued
  column is not documented (the stand-in puts nothing);
- a non-string value in a string column is its exact JSON text for a line's top-level object,
  compact JSON inside a top-level array; ``+Infinity``, ``+INF`` and ``-INF`` as bare tokens
  are malformed (Jackson takes them); a line is decoded as UTF-8 before it is parsed, so invalid
  UTF-8 after the first JSON value makes it malformed (Jackson stops reading before it);
- ``_metadata`` is an ordinary column (Spark's is hidden from ``select *``);
- only string, integral, double/float and boolean columns; no schema inference or evolution
  (``addNewColumns``, ``failOnNewColumns`` are refused), no ``cleanSource``, no file events, no
  ``allowOverwrites``: a path once logged is never read again, whatever it holds later;
- state: the file log is under the schema location, not in the checkpoint: a checkpoint kept
  with its schema location replaced fails (its offsets name another log), where Auto Loader
  with a given schema would go on;
- rate limits: see "Batch size" above.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import os
import re
import sys
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql.datasource import DataSource, DataSourceStreamReader, InputPartition
from pyspark.sql.types import (
    BooleanType,
    ByteType,
    DataType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    ShortType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

# The name the stand-in is registered under; ``format("cloudFiles")`` is rewritten to it.
STANDIN_FORMAT = "cloudFiles_standin"
CLOUD_FILES = "cloudfiles"
METADATA_COLUMN = "_metadata"
# The stand-in's own state, under cloudFiles.schemaLocation (Auto Loader's is `_schemas/`).
STATE_DIR = "_cloudfiles_standin"
LOG_NAME = "files.jsonl"
FILE_PATH_KEY = "_file_path"  # what Auto Loader adds to the rescued data
DEFAULT_RESCUED_COLUMN = "_rescued_data"
DEFAULT_CORRUPT_COLUMN = "_corrupt_record"  # Spark's spark.sql.columnNameOfCorruptRecord
DEFAULT_MAX_FILES_PER_TRIGGER = 1000  # Auto Loader's documented default

AUTO_LOADER_OPTIONS_DOCS = (
    "https://docs.databricks.com/aws/en/ingestion/cloud-object-storage/auto-loader/options"
)
# Every cloudFiles option documented on the Auto Loader options page (AUTO_LOADER_OPTIONS_DOCS:
# common, directory listing, file notification and cloud-specific options). Any other
# cloudFiles.* option is refused as Auto Loader refuses it (unless cloudFiles.validateOptions is
# false). Add one here, with `IMPLEMENTED` if the stand-in does what it says, only from the docs.
AUTO_LOADER_OPTIONS = frozenset(
    name.lower()
    for name in (
        # Common Auto Loader options
        "cloudFiles.allowOverwrites",
        "cloudFiles.backfillInterval",
        "cloudFiles.cleanSource",
        "cloudFiles.cleanSource.moveDestination",
        "cloudFiles.cleanSource.retentionDuration",
        "cloudFiles.format",
        "cloudFiles.includeExistingFiles",
        "cloudFiles.inferColumnTypes",
        "cloudFiles.maxBytesPerTrigger",
        "cloudFiles.maxFileAge",
        "cloudFiles.maxFilesPerTrigger",
        "cloudFiles.partitionColumns",
        "cloudFiles.schemaEvolutionMode",
        "cloudFiles.schemaHints",
        "cloudFiles.schemaLocation",
        "cloudFiles.useStrictGlobber",
        "cloudFiles.validateOptions",
        # Directory listing options
        "cloudFiles.useIncrementalListing",
        # File notification options
        "cloudFiles.fetchParallelism",
        "cloudFiles.pathRewrites",
        "cloudFiles.resourceTag",
        "cloudFiles.useManagedFileEvents",
        "cloudFiles.useNotifications",
        # Cloud-specific options: AWS
        "cloudFiles.region",
        "cloudFiles.queueUrl",
        "cloudFiles.roleArn",
        "cloudFiles.roleExternalId",
        "cloudFiles.roleSessionName",
        "cloudFiles.stsEndpoint",
        "cloudFiles.restrictNotificationSetupToSameAWSAccountId",
        # Azure
        "cloudFiles.clientId",
        "cloudFiles.clientSecret",
        "cloudFiles.connectionString",
        "cloudFiles.resourceGroup",
        "cloudFiles.subscriptionId",
        "cloudFiles.tenantId",
        "cloudFiles.queueName",
        # Google Cloud
        "cloudFiles.client",
        "cloudFiles.clientEmail",
        "cloudFiles.privateKey",
        "cloudFiles.privateKeyId",
        "cloudFiles.projectId",
        "cloudFiles.subscription",
    )
)
# The cloudFiles options the stand-in implements (the values it takes: `CloudFilesOptions.parse`).
IMPLEMENTED = frozenset(
    name.lower()
    for name in (
        "cloudFiles.allowOverwrites",  # false only
        "cloudFiles.format",  # json only
        "cloudFiles.includeExistingFiles",
        "cloudFiles.maxBytesPerTrigger",
        "cloudFiles.maxFilesPerTrigger",
        "cloudFiles.schemaEvolutionMode",  # rescue, none
        "cloudFiles.schemaLocation",
        "cloudFiles.useNotifications",  # false only
        "cloudFiles.validateOptions",
    )
)
# The other options (JSON and generic file-source options) the stand-in implements; it refuses
# any other rather than ignore what Auto Loader would do with it. `path` is load()'s argument.
FORMAT_OPTIONS = frozenset(
    name.lower()
    for name in (
        "path",
        "rescuedDataColumn",
        "columnNameOfCorruptRecord",
        "pathGlobFilter",
        "mode",  # PERMISSIVE only
        "ignoreMissingFiles",
    )
)
FORMATS = ("avro", "binaryFile", "csv", "json", "orc", "parquet", "text", "xml")
SCHEMA_EVOLUTION_MODES = (
    "addNewColumns",
    "addNewColumnsWithTypeWidening",
    "failOnNewColumns",
    "none",
    "rescue",
)
# Jackson's non-numeric numbers in a JSON string, read into a double or float column.
_SPECIAL_DOUBLES = {
    "NaN": math.nan,
    "Infinity": math.inf,
    "+Infinity": math.inf,
    "+INF": math.inf,
    "-Infinity": -math.inf,
    "-INF": -math.inf,
}
_INTEGRAL_RANGES = {
    LongType: (-(2**63), 2**63 - 1),
    IntegerType: (-(2**31), 2**31 - 1),
    ShortType: (-(2**15), 2**15 - 1),
    ByteType: (-(2**7), 2**7 - 1),
}
_BYTE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_BYTE_STRING = re.compile(r"(\d+)\s*([kmgtp]?)b?", re.IGNORECASE)
_BOM = b"\xef\xbb\xbf"
_JSON_SPACE = " \t\r\n"
_TARGET_PARTITION_BYTES = 128 << 20  # Spark's spark.sql.files.maxPartitionBytes default
_MIN_PARTITIONS = 2


class CloudFilesOptionError(ValueError):
    """An option Auto Loader refuses, or one the stand-in does not implement."""


def _fail(message: str) -> CloudFilesOptionError:
    return CloudFilesOptionError(f"cloudFiles stand-in: {message}")


def _boolean(options: Mapping[str, str], key: str, default: bool) -> bool:
    value = options.get(key.lower())
    if value is None:
        return default
    if value.strip().lower() not in ("true", "false"):
        raise _fail(f"{key} must be true or false, not {value!r}")
    return value.strip().lower() == "true"


def _positive(key: str, value: str, number: int) -> int:
    if number < 1:
        raise _fail(f"{key} must be positive, not {value!r}")
    return number


def byte_string(key: str, value: str) -> int:
    """A Spark byte string (``1048576``, ``64m``, ``10gb``: binary units) as a number of bytes."""
    match = _BYTE_STRING.fullmatch(value.strip())
    if match is None:
        raise _fail(f"{key} must be a byte string such as 10g or 1048576, not {value!r}")
    number = int(match.group(1)) * _BYTE_UNITS[match.group(2).lower()]
    return _positive(key, value, number)


def hadoop_glob(pattern: str) -> re.Pattern[str]:
    """Hadoop's glob (``*``, ``?``, ``[a-z]``, ``[^a]`` or ``[!a]``, ``{a,b}``, ``\\x``) as a regex.

    Spark's ``pathGlobFilter`` matches it against a file's name (Hadoop's GlobFilter).
    """
    out: list[str] = []
    in_set = False
    braces = 0
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            index += 1
            out.append(re.escape(pattern[index]))
        elif in_set:
            if char == "]":
                in_set = False
                out.append("]")
            elif char in "^!" and pattern[index - 1] == "[":
                out.append("^")
            elif char == "\\" or char == "[":
                out.append("\\" + char)
            else:
                out.append(char)
        elif char == "[":
            in_set = True
            out.append("[")
        elif char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "{":
            braces += 1
            out.append("(?:")
        elif char == "}" and braces:
            braces -= 1
            out.append(")")
        elif char == "," and braces:
            out.append("|")
        else:
            out.append(re.escape(char))
        index += 1
    if in_set or braces:
        raise _fail(f"pathGlobFilter {pattern!r} is not a valid glob (an unclosed [ or {{)")
    return re.compile("".join(out), re.DOTALL)


@dataclass(frozen=True)
class CloudFilesOptions:
    """The stand-in's options, checked: what a stream of it does."""

    path: str
    schema_location: str
    include_existing: bool
    rescued_column: str | None  # None: nothing is rescued
    corrupt_column: str
    glob: re.Pattern[str] | None
    max_files: int
    max_bytes: int | None
    ignore_missing: bool

    @classmethod
    def parse(cls, given: Mapping[str, str]) -> CloudFilesOptions:
        """Check `given` (the reader's options) as Auto Loader would; CloudFilesOptionError."""
        options = {key.lower(): str(value) for key, value in given.items()}
        spelled = {key.lower(): key for key in given}
        validate = _boolean(options, "cloudFiles.validateOptions", default=True)
        for key in sorted(options):
            name = spelled[key]
            if key.startswith("cloudfiles."):
                if key not in AUTO_LOADER_OPTIONS:
                    if validate:
                        raise _fail(
                            f"unknown Auto Loader option {name} (Auto Loader refuses unknown"
                            " cloudFiles options; cloudFiles.validateOptions=false skips the check)"
                        )
                elif key not in IMPLEMENTED:
                    raise _fail(f"Auto Loader option {name} is not implemented by the stand-in")
            elif key not in FORMAT_OPTIONS:
                raise _fail(f"option {name} is not implemented by the stand-in")
        for key in ("cloudFiles.allowOverwrites", "cloudFiles.useNotifications"):
            if _boolean(options, key, default=False):
                raise _fail(f"{key}=true is not implemented by the stand-in")
        fmt = options.get("cloudfiles.format")
        if fmt is None:
            raise _fail("cloudFiles.format is required (the stand-in reads json)")
        if fmt.lower() != "json":
            known = fmt.lower() in {name.lower() for name in FORMATS}
            why = (
                "only json is implemented by the stand-in" if known else "not an Auto Loader format"
            )
            raise _fail(f"cloudFiles.format {fmt!r}: {why}")
        if options.get("mode", "PERMISSIVE").upper() != "PERMISSIVE":
            raise _fail(f"mode {options['mode']!r}: only PERMISSIVE is implemented by the stand-in")
        location = options.get("cloudfiles.schemalocation", "").strip()
        if not location:
            raise _fail(
                "cloudFiles.schemaLocation is required (the stand-in keeps its file log there)"
            )
        path = options.get("path", "").strip()
        if not path:
            raise _fail("load() needs the path of the files to read")
        return cls(
            path=_local_path(path),
            schema_location=_local_path(location),
            include_existing=_boolean(options, "cloudFiles.includeExistingFiles", default=True),
            rescued_column=_rescued_column(options),
            corrupt_column=options.get("columnnameofcorruptrecord", DEFAULT_CORRUPT_COLUMN),
            glob=hadoop_glob(options["pathglobfilter"]) if "pathglobfilter" in options else None,
            max_files=_max_files(options),
            max_bytes=_max_bytes(options),
            ignore_missing=_boolean(options, "ignoreMissingFiles", default=False),
        )


def _local_path(path: str) -> str:
    """A local folder from a path or a ``file:`` URI (the stand-in reads the local file system)."""
    if path.startswith("file:"):
        path = re.sub(r"^file:(//)?", "", path)
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", path):
        raise _fail(f"{path!r}: the stand-in reads local paths only")
    return os.path.abspath(path)


def _rescued_column(options: Mapping[str, str]) -> str | None:
    mode = options.get("cloudfiles.schemaevolutionmode", "none")
    by_name = {name.lower(): name for name in SCHEMA_EVOLUTION_MODES}
    if mode.lower() not in by_name:
        raise _fail(
            f"cloudFiles.schemaEvolutionMode {mode!r} is not one of {', '.join(by_name.values())}"
        )
    if mode.lower() not in ("rescue", "none"):
        raise _fail(
            f"cloudFiles.schemaEvolutionMode {by_name[mode.lower()]}: only rescue and none are"
            " implemented by the stand-in (it never evolves the schema)"
        )
    given = options.get("rescueddatacolumn")
    if mode.lower() == "rescue":
        return given or DEFAULT_RESCUED_COLUMN
    return given  # none: data is rescued only into a column asked for


def _max_files(options: Mapping[str, str]) -> int:
    value = options.get("cloudfiles.maxfilespertrigger")
    if value is None:
        return DEFAULT_MAX_FILES_PER_TRIGGER
    if not value.strip().isdigit():
        raise _fail(f"cloudFiles.maxFilesPerTrigger must be a whole number, not {value!r}")
    return _positive("cloudFiles.maxFilesPerTrigger", value, int(value))


def _max_bytes(options: Mapping[str, str]) -> int | None:
    value = options.get("cloudfiles.maxbytespertrigger")
    return None if value is None else byte_string("cloudFiles.maxBytesPerTrigger", value)


# ---- The stream's columns ---------------------------------------------------------------------

METADATA_TYPE = StructType(
    [
        StructField("file_path", StringType(), nullable=False),
        StructField("file_name", StringType(), nullable=False),
        StructField("file_size", LongType(), nullable=False),
        StructField("file_block_start", LongType(), nullable=False),
        StructField("file_block_length", LongType(), nullable=False),
        StructField("file_modification_time", TimestampType(), nullable=False),
    ]
)
_SUPPORTED_TYPES = (StringType, LongType, IntegerType, ShortType, ByteType, DoubleType, FloatType)


def stream_schema(user_schema: StructType, options: Mapping[str, str]) -> StructType:
    """The stream's schema: `user_schema`, the rescued-data column (if any), ``_metadata``."""
    settings = CloudFilesOptions.parse(options)
    fields = list(user_schema.fields)
    names = {field.name for field in fields}
    if METADATA_COLUMN in names:
        raise _fail(f"the schema has a {METADATA_COLUMN} column: that name is the file metadata's")
    if settings.rescued_column is not None and settings.rescued_column not in names:
        fields.append(StructField(settings.rescued_column, StringType()))
    fields.append(StructField(METADATA_COLUMN, METADATA_TYPE, nullable=False))
    return StructType(fields)


@dataclass(frozen=True)
class _Layout:
    """Where each part of a row goes: the data columns' positions and types, the extra columns'."""

    width: int
    data: dict[str, tuple[int, DataType]]
    rescued: int | None
    corrupt: int | None
    metadata: int | None

    @classmethod
    def of(cls, schema: StructType, settings: CloudFilesOptions) -> _Layout:
        """The layout of rows of `schema` (the stream's schema) under `settings`."""
        data: dict[str, tuple[int, DataType]] = {}
        rescued = corrupt = metadata = None
        for index, field in enumerate(schema.fields):
            if field.name == METADATA_COLUMN and isinstance(field.dataType, StructType):
                metadata = index
            elif field.name == settings.rescued_column:
                rescued = _string_column(field, index, "the rescued-data column")
            elif field.name == settings.corrupt_column:
                corrupt = _string_column(field, index, "the corrupt-record column")
            elif isinstance(field.dataType, (*_SUPPORTED_TYPES, BooleanType)):
                data[field.name] = (index, field.dataType)
            else:
                raise _fail(
                    f"column {field.name} is {field.dataType.simpleString()}: the stand-in reads"
                    " only string, integral, double, float and boolean columns"
                )
        return cls(len(schema.fields), data, rescued, corrupt, metadata)


def _string_column(field: StructField, index: int, what: str) -> int:
    if not isinstance(field.dataType, StringType):
        raise _fail(f"{what} {field.name} must be a string column")
    return index


# ---- JSON lines to rows -------------------------------------------------------------------------

_MISMATCH = object()  # a value that does not fit its column


def _fit(value: Any, data_type: DataType) -> Any:
    """`value` (decoded JSON) as a value of `data_type`'s column, or _MISMATCH (Jackson's rules)."""
    kind = type(value)
    if value is None:
        return None
    if isinstance(data_type, StringType):
        return _java_string(value) if kind is str else _MISMATCH  # caller keeps the JSON text
    if isinstance(data_type, BooleanType):
        return value if kind is bool else _MISMATCH
    if isinstance(data_type, (DoubleType, FloatType)):
        if kind is float:
            return value
        if kind is int:
            return _as_float(value)
        if kind is str and value in _SPECIAL_DOUBLES:
            return _SPECIAL_DOUBLES[value]
        return _MISMATCH
    low, high = _INTEGRAL_RANGES[type(data_type)]
    return value if kind is int and low <= value <= high else _MISMATCH


def _as_float(value: int) -> float:
    try:
        return float(value)
    except OverflowError:  # Jackson reads a huge integer as an infinite double
        return math.inf if value > 0 else -math.inf


def _java_string(text: str) -> str:
    """`text` as Java turns it into UTF-8: a lone surrogate (JSON ``"\\ud800"``) becomes ``?``."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", errors="replace").decode("utf-8")
    return text


def _jackson_value(value: Any) -> Any:
    """A decoded JSON value as Jackson writes it back: non-finite numbers become strings."""
    kind = type(value)
    if kind is float and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if kind is str:
        return _java_string(value)
    if kind is list:
        return [_jackson_value(item) for item in value]
    if kind is dict:
        return {_java_string(key): _jackson_value(item) for key, item in value.items()}
    return value


def _json_text(value: Any) -> str:
    return json.dumps(_jackson_value(value), ensure_ascii=False, separators=(",", ":"))


def _skip_space(text: str, index: int) -> int:
    while index < len(text) and text[index] in _JSON_SPACE:
        index += 1
    return index


class _LineParser:
    """Rows of one file's lines, for one layout (created where the rows are read, never pickled)."""

    def __init__(self, layout: _Layout) -> None:
        self.layout = layout
        self.decoder = json.JSONDecoder()  # takes NaN, Infinity, -Infinity, as Jackson does
        self.scan_once = self.decoder.scan_once
        self.string_columns = {
            name
            for name, (_, data_type) in layout.data.items()
            if isinstance(data_type, StringType)
        }

    def rows(self, content: bytes, file_path: str, metadata: tuple | None) -> Iterator[list]:
        """The rows of a file's `content` (one per line, none for a blank one).

        A row is a list in the schema's order; its corrupt-record value (if any) is the line's
        bytes, which `record_batches` keeps as they are, invalid UTF-8 included, as Spark does.
        """
        for raw in content.splitlines():  # \n, \r and \r\n, as Hadoop's line reader
            yield from self._line_rows(raw, file_path, metadata)

    def _line_rows(self, raw: bytes, file_path: str, metadata: tuple | None) -> Iterator[list]:
        line = raw[len(_BOM) :] if raw.startswith(_BOM) else raw
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            if line.strip():
                yield self._malformed(raw, metadata)
            return
        start = _skip_space(text, 0)
        if start == len(text):
            return  # a blank line is no row
        try:
            value, _ = self.scan_once(text, start)  # what follows the first value is ignored
        except (ValueError, StopIteration, RecursionError):
            yield self._malformed(raw, metadata)
            return
        if type(value) is dict:
            yield self._object_row(value, text, start, file_path, metadata)
        elif type(value) is list and all(type(item) is dict for item in value):
            for item in value:  # a top-level array of objects: a row each
                yield self._object_row(item, None, 0, file_path, metadata)
        else:
            yield self._malformed(raw, metadata)

    def _malformed(self, raw: bytes, metadata: tuple | None) -> list:
        row: list[Any] = [None] * self.layout.width
        if self.layout.corrupt is not None:
            row[self.layout.corrupt] = raw[len(_BOM) :] if raw.startswith(_BOM) else raw
        if self.layout.metadata is not None:
            row[self.layout.metadata] = metadata
        return row

    def _object_row(
        self, obj: dict, text: str | None, start: int, file_path: str, metadata: tuple | None
    ) -> list:
        layout = self.layout
        row: list[Any] = [None] * layout.width
        rescued: dict[str, Any] = {}
        mismatched = False
        raw_texts: dict[str, str] | None = None
        for name, value in obj.items():
            slot = layout.data.get(name)
            if slot is None:
                rescued[name] = value
                continue
            fitted = _fit(value, slot[1])
            if fitted is _MISMATCH and name in self.string_columns:
                if raw_texts is None:  # a string column takes any value as its JSON text
                    raw_texts = self._member_texts(text, start) if text is not None else {}
                fitted = _java_string(raw_texts.get(name) or _json_text(value))
            if fitted is _MISMATCH:
                mismatched = True
                rescued[name] = value
            else:
                row[slot[0]] = fitted
        if layout.rescued is not None:
            if rescued:
                rescued[FILE_PATH_KEY] = file_path
                row[layout.rescued] = _json_text(rescued)
        elif mismatched and layout.corrupt is not None and text is not None:
            row[layout.corrupt] = text.encode()  # no rescue: a value that does not fit corrupts
        if layout.metadata is not None:
            row[layout.metadata] = metadata
        return row

    def _member_texts(self, text: str, start: int) -> dict[str, str]:
        """The exact JSON text of each member of the (valid) object at `start` of `text`."""
        texts: dict[str, str] = {}
        index = _skip_space(text, start + 1)  # past "{"
        while index < len(text) and text[index] == '"':
            key, index = json.decoder.scanstring(text, index + 1)
            index = _skip_space(text, _skip_space(text, index) + 1)  # past ":"
            _, end = self.scan_once(text, index)
            texts[key] = text[index:end]
            index = _skip_space(text, end)
            if index < len(text) and text[index] == ",":
                index = _skip_space(text, index + 1)
        return texts


_ROWS_PER_BATCH = 8192


def record_batches(rows: Iterator[list], schema: StructType, layout: _Layout) -> Iterator[Any]:
    """`rows` as pyarrow record batches of `schema` (the corrupt-record bytes unchecked)."""
    import pyarrow as pa  # noqa: PLC0415 - where rows are read
    from pyspark.sql.pandas.types import to_arrow_schema  # noqa: PLC0415

    arrow_schema = to_arrow_schema(schema)
    while chunk := list(itertools.islice(rows, _ROWS_PER_BATCH)):
        columns = list(zip(*chunk, strict=True))
        arrays = [
            _unchecked_strings(pa, values, field.type)
            if index == layout.corrupt
            else pa.array(values, type=field.type)
            for index, (values, field) in enumerate(zip(columns, arrow_schema, strict=True))
        ]
        yield pa.RecordBatch.from_arrays(arrays, schema=arrow_schema)


def _unchecked_strings(pa: Any, values: tuple, string_type: Any) -> Any:
    """Bytes as an Arrow string array without UTF-8 validation, as Spark's UTF8String holds them."""
    binary_type = pa.large_binary() if string_type == pa.large_string() else pa.binary()
    binary = pa.array(values, type=binary_type)
    return pa.Array.from_buffers(
        string_type,
        len(binary),
        binary.buffers(),
        null_count=binary.null_count,
        offset=binary.offset,
    )


# ---- The file log -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _File:
    path: str
    size: int
    mtime_ms: int

    def metadata(self) -> tuple:
        """The file's ``_metadata`` struct, as Spark's file sources fill it."""
        moment = dt.datetime.fromtimestamp(self.mtime_ms / 1000, tz=dt.UTC)
        return (
            f"file:{self.path}",
            os.path.basename(self.path),
            self.size,
            0,
            self.size,
            moment,
        )


class _FileLog:
    """The files a stream has discovered, in order, appended to a JSON-lines file.

    Its first line names the log (a random id, which offsets carry) and the path it lists.
    """

    def __init__(self, settings: CloudFilesOptions) -> None:
        self.settings = settings
        self.file = Path(settings.schema_location) / STATE_DIR / LOG_NAME
        self.files: list[_File] = []
        self.known: set[str] = set()
        self.id = self._open()

    def _open(self) -> str:
        if not self.file.exists():
            return self._create()
        content = self.file.read_bytes()
        if not content.endswith(b"\n"):  # an append cut short: no offset covers it yet
            content = content[: content.rfind(b"\n") + 1]
            with self.file.open("r+b") as out:
                out.truncate(len(content))
                os.fsync(out.fileno())
        lines = content.splitlines()
        header = json.loads(lines[0])
        if header["path"] != self.settings.path:
            raise _fail(
                f"cloudFiles.schemaLocation {self.settings.schema_location} belongs to a stream"
                f" over {header['path']}, not {self.settings.path}: give each stream its own"
            )
        for line in lines[1:]:
            entry = json.loads(line)
            self.files.append(_File(entry["path"], entry["size"], entry["mtime_ms"]))
        self.known = {file.path for file in self.files}
        return header["id"]

    def _create(self) -> str:
        self.file.parent.mkdir(parents=True, exist_ok=True)
        log_id = uuid.uuid4().hex
        temp = self.file.with_name(f".{LOG_NAME}.tmp")
        with temp.open("w") as out:
            out.write(json.dumps({"id": log_id, "path": self.settings.path}) + "\n")
            out.flush()
            os.fsync(out.fileno())
        temp.rename(self.file)
        _fsync_dir(self.file.parent)
        return log_id

    def append(self, new: list[_File]) -> None:
        """Log `new` files, durably, before any offset counts them."""
        if not new:
            return
        with self.file.open("a") as out:
            for file in new:
                entry = {"path": file.path, "size": file.size, "mtime_ms": file.mtime_ms}
                out.write(json.dumps(entry) + "\n")
            out.flush()
            os.fsync(out.fileno())
        self.files.extend(new)
        self.known.update(file.path for file in new)

    def offset(self, count: int) -> dict:
        """The offset after the first `count` logged files."""
        return {"log": self.id, "files": count}

    def position(self, offset: dict) -> int:
        """How many logged files `offset` counts; CloudFilesOptionError if not this log's."""
        if offset.get("log") != self.id or not 0 <= offset.get("files", -1) <= len(self.files):
            raise _fail(
                f"the checkpoint's offset {offset} is not in the file log {self.file} (id"
                f" {self.id}, {len(self.files)} files): was the schema location replaced?"
            )
        return offset["files"]


def _fsync_dir(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _hidden(name: str) -> bool:
    """Whether Spark's file listing skips a file or folder of this name (``_x``, ``.x``)."""
    return name.startswith((".", "_"))


def list_files(root: str, glob: re.Pattern[str] | None) -> list[_File]:
    """The files under `root`, recursively, that a stream reads, sorted by path."""
    found: list[_File] = []
    for folder, folders, names in os.walk(root):
        folders[:] = sorted(name for name in folders if not _hidden(name))
        for name in sorted(names):
            if _hidden(name) or (glob is not None and not glob.fullmatch(name)):
                continue
            path = os.path.join(folder, name)
            try:
                status = os.stat(path)
            except FileNotFoundError:  # gone since it was listed
                continue
            found.append(_File(path, status.st_size, status.st_mtime_ns // 1_000_000))
    return sorted(found, key=lambda file: file.path)


# ---- The data source ----------------------------------------------------------------------------


class _FilesPartition(InputPartition):
    """Files one task reads."""

    def __init__(self, files: list[_File]) -> None:
        super().__init__([file.path for file in files])
        self.files = files


def _partitions(files: list[_File]) -> list[_FilesPartition]:
    """`files` in consecutive groups of near-equal bytes, at least two groups (Spark's tasks)."""
    if not files:
        return []
    total = sum(file.size for file in files)
    count = min(len(files), max(_MIN_PARTITIONS, -(-total // _TARGET_PARTITION_BYTES)))
    share = total / count
    groups: list[list[_File]] = [[]]
    filled = 0
    for index, file in enumerate(files):
        left = len(files) - index
        if groups[-1] and (filled >= share * len(groups) or left < count - len(groups) + 1):
            groups.append([])
        groups[-1].append(file)
        filled += file.size
    return [_FilesPartition(group) for group in groups]


class CloudFilesStreamReader(DataSourceStreamReader):
    """Offsets over the file log under the schema location; rows of the logged files."""

    def __init__(self, settings: CloudFilesOptions, schema: StructType) -> None:
        self.settings = settings
        self.schema = schema
        self.layout = _Layout.of(schema, settings)
        self._log: _FileLog | None = None  # opened on the driver only, on first use
        self._position = 0  # the end of the last batch planned or seen
        self._planned = False  # whether this reader has ended a batch yet (see latestOffset)
        self._listed = False

    def _file_log(self) -> _FileLog:
        if self._log is None:
            self._log = _FileLog(self.settings)
        return self._log

    def _discover(self) -> _FileLog:
        log = self._file_log()
        found = list_files(self.settings.path, self.settings.glob)
        log.append([file for file in found if file.path not in log.known])
        self._listed = True
        return log

    def initialOffset(self) -> dict:
        """Where a new query starts: the log's start, or past the files already there."""
        log = self._file_log()
        if self.settings.include_existing:
            return log.offset(0)
        if not self._listed:
            self._discover()
        return log.offset(len(log.files))

    def latestOffset(self) -> dict:
        """The end of the next batch: every new file for a query's first, else up to the limits."""
        log = self._discover()
        end = len(log.files)
        if self._planned:  # not this query's (or restarted query's) first batch: the limits
            end = self._position + self._admitted(log.files[self._position :])
        self._planned = True
        self._position = max(self._position, end)
        return log.offset(end)

    def _admitted(self, pending: list[_File]) -> int:
        """How many of `pending` files the rate limits let into one batch (at least one)."""
        count = min(len(pending), self.settings.max_files)
        if self.settings.max_bytes is not None:
            size = 0
            for index, file in enumerate(pending[:count]):
                size += file.size
                if size >= self.settings.max_bytes:
                    return index + 1  # soft: the file that reaches the limit is in
        return count

    def partitions(self, start: dict, end: dict) -> list[_FilesPartition]:
        """The logged files after `start` up to `end`, in groups for Spark's tasks."""
        log = self._file_log()
        first, last = log.position(start), log.position(end)
        # A restarted query shows Spark's latest offset here (start == end) before asking for more.
        self._position = max(self._position, last)
        return _partitions(log.files[first:last])

    def read(self, partition: InputPartition) -> Iterator[Any]:
        """The rows of the partition's files, file after file, as Arrow record batches."""
        return record_batches(self._rows(partition), self.schema, self.layout)

    def _rows(self, partition: InputPartition) -> Iterator[list]:
        parser = _LineParser(self.layout)
        for file in partition.files:  # type: ignore[attr-defined]
            try:
                content = Path(file.path).read_bytes()
            except FileNotFoundError:
                if self.settings.ignore_missing:
                    continue
                raise FileNotFoundError(
                    f"cloudFiles stand-in: {file.path} was listed but is gone"
                    " (ignoreMissingFiles=true skips such files)"
                ) from None
            metadata = file.metadata() if self.layout.metadata is not None else None
            yield from parser.rows(content, f"file:{file.path}", metadata)


class CloudFilesDataSource(DataSource):
    """Auto Loader's ``cloudFiles`` source for JSON files: see the module's docstring."""

    @classmethod
    def name(cls) -> str:
        """The name the stand-in is registered under (``cloudFiles`` is rewritten to it)."""
        return STANDIN_FORMAT

    def schema(self) -> StructType:
        """No schema without one given: the stand-in infers none."""
        raise _fail("give the stream a schema with .schema(...): the stand-in infers none")

    def streamReader(self, schema: StructType) -> CloudFilesStreamReader:
        """The reader of a query over `schema` (the user's, rescued column and _metadata added)."""
        return CloudFilesStreamReader(CloudFilesOptions.parse(dict(self.options)), schema)


# ---- format("cloudFiles") on the session's stream readers ---------------------------------------

# The stream readers' own methods, by class, while the stand-in's wrap them.
_ORIGINALS: dict[type, dict[str, Any]] = {}


def install_cloudfiles(spark: SparkSession) -> None:
    """Register the stand-in on `spark` and make ``readStream.format("cloudFiles")`` use it.

    The data source's module is pickled by value, so the Python workers (and a Spark Connect
    server's) need not import this test package. The stream readers' methods are wrapped once per
    process (classic, and Spark Connect's when its client dependencies are installed): ``format``
    rewrites ``cloudFiles`` to the stand-in's name, ``load`` checks the options and adds the
    rescued-data and ``_metadata`` columns to the schema; other formats pass through untouched.
    `uninstall_cloudfiles` puts the methods back (a session keeps the registered source).
    """
    from pyspark import cloudpickle  # noqa: PLC0415 - only where the stand-in is installed

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    spark.dataSource.register(CloudFilesDataSource)
    from pyspark.sql.streaming.readwriter import DataStreamReader  # noqa: PLC0415

    _patch_classic_reader(DataStreamReader)
    try:
        from pyspark.sql.connect.streaming import readwriter  # noqa: PLC0415
    except ImportError:  # no Spark Connect client dependencies: classic sessions only
        return
    _patch_connect_reader(readwriter.DataStreamReader)


def uninstall_cloudfiles() -> None:
    """Give the stream readers their own methods back."""
    for reader_class, methods in _ORIGINALS.items():
        for name, method in methods.items():
            setattr(reader_class, name, method)
    _ORIGINALS.clear()


def _load_schema(schema: object, options: Mapping[str, str]) -> StructType:
    """The stream's schema for load(): the options checked first, then the user's schema."""
    CloudFilesOptions.parse(options)
    return stream_schema(_user_schema(schema), options)


def _user_schema(schema: object) -> StructType:
    if isinstance(schema, StructType):
        return schema
    if isinstance(schema, str) and schema.strip().startswith("{"):  # Spark Connect keeps JSON
        parsed = StructType.fromJson(json.loads(schema))
        if isinstance(parsed, StructType):
            return parsed
    if not schema:
        raise _fail("give the stream a schema with .schema(...): the stand-in infers none")
    raise _fail("give the schema as a StructType (the stand-in does not parse DDL strings)")


def _wrap(reader_class: type, **methods: Any) -> None:
    originals = _ORIGINALS.setdefault(reader_class, {})
    for name, method in methods.items():
        originals.setdefault(name, getattr(reader_class, name))
        method.__doc__ = f"{originals[name].__doc__ or ''}\n(Wrapped by the cloudFiles stand-in.)"
        setattr(reader_class, name, method)


def _patch_classic_reader(reader_class: type) -> None:
    """Wrap the classic reader, which passes its format, schema and options on to the JVM."""
    from pyspark.sql.readwriter import to_str  # noqa: PLC0415

    if reader_class in _ORIGINALS:
        return
    original = {
        name: getattr(reader_class, name) for name in ("format", "schema", "option", "options")
    }
    original_load = reader_class.load

    def state(reader: Any) -> dict:
        # What the JVM reader was given, kept where load() can see it.
        if "_cloudfiles" not in reader.__dict__:
            reader._cloudfiles = {"on": False, "schema": None, "options": {}}
        return reader._cloudfiles

    def format(self: Any, source: str) -> Any:
        on = source.lower() == CLOUD_FILES
        state(self)["on"] = on
        return original["format"](self, STANDIN_FORMAT if on else source)

    def schema(self: Any, schema: Any) -> Any:
        state(self)["schema"] = schema
        return original["schema"](self, schema)

    def option(self: Any, key: str, value: Any) -> Any:
        state(self)["options"][key] = to_str(value)
        return original["option"](self, key, value)

    def options(self: Any, **options: Any) -> Any:
        state(self)["options"].update({key: to_str(value) for key, value in options.items()})
        return original["options"](self, **options)

    def load(
        self: Any,
        path: str | None = None,
        format: str | None = None,
        schema: Any = None,
        **options: Any,
    ) -> Any:
        if format is not None:
            self.format(format)
        if schema is not None:
            self.schema(schema)
        self.options(**options)
        stream = state(self)
        if stream["on"]:
            given = {**stream["options"], **({"path": path} if path is not None else {})}
            original["schema"](self, _load_schema(stream["schema"], given))
        return original_load(self, path)

    _wrap(reader_class, format=format, schema=schema, option=option, options=options, load=load)


def _patch_connect_reader(reader_class: type) -> None:
    """Wrap Spark Connect's reader, which keeps format, schema (JSON) and options in Python."""
    if reader_class in _ORIGINALS:
        return
    original_load = reader_class.load

    def load(
        self: Any,
        path: str | None = None,
        format: str | None = None,
        schema: Any = None,
        **options: Any,
    ) -> Any:
        if format is not None:
            self.format(format)
        if schema is not None:
            self.schema(schema)
        self.options(**options)
        if (self._format or "").lower() == CLOUD_FILES:
            given = {**self._options, **({"path": path} if path is not None else {})}
            self._schema = _load_schema(self._schema, given).json()
            self._format = STANDIN_FORMAT
        return original_load(self, path)

    _wrap(reader_class, load=load)
