"""The producer op on the Databricks deployment: it lands on the Volume, through the Files API."""

from __future__ import annotations

from pathlib import Path

from crypto_assets.databricks.layout import VolumeLayout
from crypto_assets.orchestration.definitions import build_definitions
from crypto_assets.orchestration.ingestion import PRODUCER_JOB, PRODUCER_OP
from crypto_assets.settings import Settings
from crypto_assets_tests.databricks.emulator import running_emulator
from crypto_assets_tests.orchestration.landing_for_tests import landed_trades

LAYOUT = VolumeLayout("takamol_demo", "crypto_streaming")


def test_the_producer_op_uploads_every_trade_to_the_volume_once(
    tmp_path: Path, monkeypatch, replay_server_factory, recorded_trades
):
    server = replay_server_factory(speed=None)
    volume = f"{LAYOUT.catalog}.{LAYOUT.schema}.{LAYOUT.volume}"
    with running_emulator(
        tmp_path / "workspace", "dapi-producer-test", volumes=(volume,), start_spark=False
    ) as emulator:
        monkeypatch.setenv("DATABRICKS_TOKEN", emulator.token)
        settings = Settings(
            deployment="databricks",
            databricks_host=emulator.host,
            databricks_cluster_id="0101-000000-emulated",
            data_dir=tmp_path / "data",
            trading_pairs=("btcusdt", "ethusdt"),
        )
        # The first two uploads fail: the files wait in the spool and go up on a retry.
        emulator.fail_next("PUT", f"/api/2.0/fs/files{LAYOUT.landing_dir}/", count=2, status=500)
        op_config = {
            "ws_url": server.url,
            "source": "replay",
            "pairs": ["btcusdt", "ethusdt"],
            "duration_seconds": 6.0,
            "batch_interval_seconds": 0.5,
            "report_interval_seconds": 2.0,
        }
        job = build_definitions(settings).resolve_job_def(PRODUCER_JOB)
        result = job.execute_in_process(run_config={"ops": {PRODUCER_OP: {"config": op_config}}})
        volume_landing = emulator.volumes_root / LAYOUT.landing_dir.removeprefix("/Volumes/")
        state = emulator.volumes_root / LAYOUT.producer_state_path.removeprefix("/Volumes/")

        assert result.success
        assert landed_trades(volume_landing) == recorded_trades
        assert list((tmp_path / "data" / "spool" / "trades").glob("trades_*.json")) == []
        assert state.is_file()
        # Each file was PUT once, the two refused ones once more.
        files = len(list(volume_landing.glob("trades_*.json")))
        puts = [
            path
            for method, path in emulator.requests
            if method == "PUT" and path.startswith(f"/api/2.0/fs/files{LAYOUT.landing_dir}/")
        ]
        assert len(puts) == files + 2
        reports = [
            {key: value.value for key, value in m.metadata.items()}
            for m in result.asset_materializations_for_node(PRODUCER_OP)
        ]
        assert reports
        assert all("uploaded_files" in report for report in reports)
        assert reports[-1]["uploaded_files"] <= len(list(volume_landing.glob("trades_*.json")))
