"""The Databricks lakehouse's reads of what a run wrote, on real Delta-Spark tables.

Tables of several commits, then one more commit "by the run", after which every data file of the
earlier commits is overwritten with garbage (same name, the Delta log intact): row counts, the
rows written since the run's start and the trades of a span must come from the log and the new
files alone (Delta-Spark's metadata-only count and data skipping).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession

from crypto_assets.analytics.schema import TRADES_ANALYTICS, TRADES_RAW
from crypto_assets.analytics.window_runs import TradeSpan
from crypto_assets.databricks.lakehouse import DatabricksLakehouse
from crypto_assets.databricks.layout import VolumeLayout
from crypto_assets.databricks.spark_delta_sink import SparkDeltaSink, layout_identifier
from crypto_assets.settings import Settings

pytestmark = pytest.mark.spark

COMMITS = 4
SYMBOLS = {"BTCUSDT": 3_000_000, "ETHUSDT": 1_000_000}  # first trade id of each
TRADES = 20  # per symbol and commit
MINUTE_MS = 60_000
T0 = 1_723_161_600_000 - 10 * MINUTE_MS  # 2024-08-08 23:50 UTC


def _commit(spark: SparkSession, sink: SparkDeltaSink, index: int) -> None:
    """One commit to trades_raw and trades_analytics: a minute of trades and its two windows."""
    now = dt.datetime.now(dt.UTC)
    rows = [
        (symbol, first + index * TRADES + k, T0 + index * MINUTE_MS + k * 1_000, now)
        for symbol, first in SYMBOLS.items()
        for k in range(TRADES)
    ]
    spark.createDataFrame(
        rows, "symbol string, trade_id long, trade_time long, processed_time timestamp"
    ).createOrReplaceTempView("run_trades")
    spark.sql(
        f"INSERT INTO {sink.identifier(TRADES_RAW)} SELECT 'trade', trade_time, symbol, "
        "trade_id, 1.0, 1.0, 1.0, trade_time, false, trade_time, 'f.json', processed_time, 0L, "
        "'2024-08-08' FROM run_trades"
    )
    start = T0 + index * MINUTE_MS
    spark.sql(
        f"INSERT INTO {sink.identifier(TRADES_ANALYTICS)} SELECT symbol, "
        f"timestamp_millis({start}), timestamp_millis({start + MINUTE_MS}), {TRADES}L, 1.0, "
        "1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0, null, current_timestamp() "
        "FROM (SELECT DISTINCT symbol FROM run_trades)"
    )


def _data_files(table: Path) -> list[Path]:
    paths = pa.table(DeltaTable(str(table)).get_add_actions(flatten=True))["path"].to_pylist()
    return [table / path for path in paths]


@pytest.mark.slow  # Delta-Spark commits: tens of seconds on 2 cores
def test_a_runs_reads_open_no_file_written_before_it(spark, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    layout = dataclasses.replace(VolumeLayout.from_settings(settings), stand_in=str(tmp_path))
    sink = SparkDeltaSink(spark, layout_identifier(layout, on_databricks=False))
    sink.ensure_tables()
    lakehouse = DatabricksLakehouse(layout, settings)
    for index in range(COMMITS):
        _commit(spark, sink, index)
    tables = Path(layout.folder("_tables"))
    old = [path for name in (TRADES_RAW, TRADES_ANALYTICS) for path in _data_files(tables / name)]
    started = dt.datetime.now(dt.UTC)
    _commit(spark, sink, COMMITS)
    for path in old:
        path.write_bytes(b"not a parquet file " * 64)

    assert lakehouse.count_rows(TRADES_RAW) == (COMMITS + 1) * TRADES * len(SYMBOLS)
    assert lakehouse.count_rows(TRADES_ANALYTICS) == (COMMITS + 1) * len(SYMBOLS)
    trades = lakehouse.read_written(TRADES_RAW, started, ["symbol", "trade_id", "trade_time"])
    assert trades.num_rows == TRADES * len(SYMBOLS)
    assert trades.schema == pa.schema(
        [("symbol", pa.string()), ("trade_id", pa.int64()), ("trade_time", pa.int64())]
    )
    windows = lakehouse.read_written(TRADES_ANALYTICS, started)
    assert sorted(windows["symbol"].to_pylist()) == sorted(SYMBOLS)
    assert windows.schema.field("updated_time").type == pa.timestamp("us", tz="UTC")
    first = SYMBOLS["ETHUSDT"] + COMMITS * TRADES
    last_time = T0 + COMMITS * MINUTE_MS + (TRADES - 1) * 1_000
    span = TradeSpan("ETHUSDT", first, first + TRADES - 1, T0 + COMMITS * MINUTE_MS, last_time)
    assert lakehouse.trades_in([span]).num_rows == TRADES
    # A read that has to open the old files meets the garbage.
    with pytest.raises(Exception, match="FAILED_READ_FILE"):
        spark.sql(
            f"SELECT count(*) FROM {sink.identifier(TRADES_RAW)} WHERE trade_id > 0"
        ).collect()
