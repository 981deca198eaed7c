"""The Databricks emulator through the real databricks-sdk WorkspaceClient over real HTTP."""

from __future__ import annotations

import io
import os
import re
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.credentials_provider import credentials_strategy
from databricks.sdk.errors import (
    AlreadyExists,
    BadRequest,
    InternalError,
    NotFound,
    PermissionDenied,
    ResourceAlreadyExists,
    ResourceConflict,
    ResourceDoesNotExist,
    Unauthenticated,
)
from databricks.sdk.service import compute, iam, jobs
from databricks.sdk.service.catalog import VolumeType
from databricks.sdk.service.files import DbfsAPI

from crypto_assets_tests.databricks.emulator import (
    USER_NAME,
    Emulator,
    needs_mount_namespace,
    running_emulator,
)

pytestmark = pytest.mark.usefixtures("no_ambient_databricks_config")

TOKEN = "dapi-emulator-test-token"
CATALOG = "takamol_demo"
VOLUME = f"/Volumes/{CATALOG}/crypto/landing"


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Emulator]:
    """An emulator with one catalog and one Volume, no Spark on its clusters."""
    with running_emulator(
        tmp_path / "workspace",
        TOKEN,
        catalogs=(CATALOG,),
        volumes=(f"{CATALOG}.crypto.landing",),
        start_spark=False,
        pending_seconds=0.3,
    ) as running:
        yield running


def client(emulator: Emulator, token: str = TOKEN) -> WorkspaceClient:
    """A real WorkspaceClient on the emulator with a personal access token."""
    return WorkspaceClient(host=emulator.host, token=token)


def python_task(python_file: str, **task: object) -> jobs.SubmitTask:
    """A dagster-launcher-shaped task on a new cluster (dedicated access, the token's user)."""
    return jobs.SubmitTask(
        task_key="dagster-task",
        spark_python_task=jobs.SparkPythonTask(python_file=python_file, parameters=["one", "2"]),
        new_cluster=compute.ClusterSpec(
            spark_version="15.4.x-scala2.12",
            num_workers=0,
            data_security_mode=compute.DataSecurityMode.SINGLE_USER,
            single_user_name=USER_NAME,
        ),
        **task,  # type: ignore[arg-type]
    )


def submit_script(emulator: Emulator, source: str, **task: object) -> int:
    """Put ``source`` on DBFS and submit it as a spark_python_task; the run id."""
    script = emulator.dbfs_root / "scripts" / f"task_{time.monotonic_ns()}.py"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(textwrap.dedent(source))
    python_file = f"dbfs:/scripts/{script.name}"
    submitted = client(emulator).jobs.submit(
        run_name="test", tasks=[python_task(python_file, **task)]
    )
    return submitted.response.run_id  # type: ignore[union-attr,return-value]


def wait_terminal(w: WorkspaceClient, run_id: int, timeout: float = 120) -> jobs.Run:
    """Poll runs/get until TERMINATED or INTERNAL_ERROR."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = w.jobs.get_run(run_id)
        assert run.state is not None
        assert run.state.life_cycle_state is not None
        if run.state.life_cycle_state.value in ("TERMINATED", "INTERNAL_ERROR"):
            return run
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} did not end in {timeout}s")


# ----- authentication


def test_a_wrong_token_is_403_invalid_access_token(emulator: Emulator) -> None:
    with pytest.raises(PermissionDenied, match=r"^Invalid access token\."):
        client(emulator, token="dapi-wrong").catalogs.get(CATALOG)


def test_a_missing_credential_is_401_unauthenticated(emulator: Emulator) -> None:
    @credentials_strategy("no-credentials", [])
    def send_nothing(_config: object) -> object:
        return dict

    w = WorkspaceClient(host=emulator.host, credentials_strategy=send_nothing)
    with pytest.raises(Unauthenticated, match="Credential was not sent") as raised:
        w.dbfs.get_status("/")
    assert "[ReqId: " in str(raised.value)
    assert emulator.requests[-1] == ("GET", "/api/2.0/dbfs/get-status")


# ----- DBFS


def test_dbfs_round_trip_of_more_than_a_mebibyte_in_blocks(emulator: Emulator) -> None:
    w = client(emulator)
    payload = os.urandom(2 * 1024 * 1024 + 123)
    handle = w.dbfs.create("/dagster_staging/run/step/code.zip", overwrite=True).handle
    for start in range(0, len(payload), 1024 * 1024):
        block = payload[start : start + 1024 * 1024]
        w.dbfs.add_block(handle, __import__("base64").b64encode(block).decode())  # type: ignore[arg-type]
    w.dbfs.close(handle)  # type: ignore[arg-type]
    assert (emulator.dbfs_root / "dagster_staging/run/step/code.zip").read_bytes() == payload

    read, offset = b"", 0
    while True:
        chunk = w.dbfs.read("/dagster_staging/run/step/code.zip", offset=offset, length=1024 * 1024)
        read += __import__("base64").b64decode(chunk.data)  # type: ignore[arg-type]
        offset += chunk.bytes_read  # type: ignore[operator]
        if chunk.bytes_read == 0:
            break
    assert read == payload
    default = w.dbfs.read("/dagster_staging/run/step/code.zip")
    assert default.bytes_read == 524_288
    with pytest.raises(BadRequest):
        w.dbfs.read("/dagster_staging/run/step/code.zip", length=1024 * 1024 + 1)


def test_dbfs_read_past_the_end_still_sends_data(emulator: Emulator) -> None:
    w = client(emulator)
    w.dbfs.put("/small.txt", contents=__import__("base64").b64encode(b"abc").decode())
    end = w.dbfs.read("/small.txt", offset=3)
    assert (end.bytes_read, end.data) == (0, "")


def test_dbfs_missing_file_and_existing_file_errors(emulator: Emulator) -> None:
    w = client(emulator)
    with pytest.raises(ResourceDoesNotExist, match="No file or directory exists on path /nope"):
        w.dbfs.read("/nope/events.pkl", length=1024)
    w.dbfs.put("/a/b.txt", contents="eA==", overwrite=True)
    with pytest.raises(ResourceAlreadyExists):
        w.dbfs.create("/a/b.txt", overwrite=False)


def test_dbfs_mkdirs_list_status_and_delete(emulator: Emulator) -> None:
    w = client(emulator)
    w.dbfs.mkdirs("/pipes/tmp")
    w.dbfs.put("/pipes/tmp/0.json", contents="e30=")
    status = w.dbfs.get_status("/pipes/tmp/0.json")
    assert (status.is_dir, status.file_size, status.path) == (False, 2, "/pipes/tmp/0.json")
    assert [f.path for f in w.dbfs.list("/pipes")] == ["/pipes/tmp"]
    with pytest.raises(BadRequest, match="not empty"):
        # The raw service (DbfsExt refuses a non-recursive directory delete before sending it).
        DbfsAPI(w.api_client).delete("/pipes")
    w.dbfs.delete("/pipes", recursive=True)
    assert not (emulator.dbfs_root / "pipes").exists()


# ----- Files API


def test_files_put_get_head_list_delete(emulator: Emulator) -> None:
    w = client(emulator)
    path = f"{VOLUME}/trades/2026/batch-1.ndjson"
    w.files.upload(path, io.BytesIO(b'{"t": 1}\n'), overwrite=True)
    assert (emulator.volumes_root / CATALOG / "crypto/landing/trades/2026/batch-1.ndjson").exists()

    downloaded = w.files.download(path)
    assert downloaded.contents.read() == b'{"t": 1}\n'  # type: ignore[union-attr]
    assert downloaded.content_length == 9
    assert downloaded.content_type == "application/octet-stream"
    assert downloaded.last_modified
    assert downloaded.last_modified.endswith("GMT")
    assert w.files.get_metadata(path).content_length == 9

    listing = list(w.files.list_directory_contents(f"{VOLUME}/trades"))
    assert [(e.name, e.is_directory) for e in listing] == [("2026", True)]
    files = list(w.files.list_directory_contents(f"{VOLUME}/trades/2026"))
    assert [(e.name, e.file_size, e.path) for e in files] == [("batch-1.ndjson", 9, path)]

    w.files.delete(path)
    with pytest.raises(NotFound):
        w.files.download(path)


def test_files_overwrite_false_conflicts(emulator: Emulator) -> None:
    w = client(emulator)
    path = f"{VOLUME}/state.json"
    w.files.upload(path, io.BytesIO(b"1"), overwrite=False)
    with pytest.raises(AlreadyExists):
        w.files.upload(path, io.BytesIO(b"2"), overwrite=False)
    w.files.upload(path, io.BytesIO(b"3"), overwrite=True)
    assert w.files.download(path).contents.read() == b"3"  # type: ignore[union-attr]


def test_directories_are_idempotent_and_refuse_a_non_empty_delete(emulator: Emulator) -> None:
    w = client(emulator)
    w.files.create_directory(f"{VOLUME}/_checkpoints/trades")
    w.files.create_directory(f"{VOLUME}/_checkpoints/trades")
    w.files.get_directory_metadata(f"{VOLUME}/_checkpoints")
    with pytest.raises(BadRequest, match="not empty"):
        w.files.delete_directory(f"{VOLUME}/_checkpoints")
    w.files.delete_directory(f"{VOLUME}/_checkpoints/trades")
    w.files.delete_directory(f"{VOLUME}/_checkpoints")
    with pytest.raises(NotFound):
        list(w.files.list_directory_contents(f"{VOLUME}/_checkpoints"))


def test_files_on_a_volume_that_does_not_exist_are_404(emulator: Emulator) -> None:
    with pytest.raises(
        NotFound, match=re.escape("Volume 'takamol_demo.crypto.nope' does not exist")
    ):
        client(emulator).files.upload(f"/Volumes/{CATALOG}/crypto/nope/x", io.BytesIO(b""))


# ----- Unity Catalog


def test_unity_catalog_get_create_and_conflicts(emulator: Emulator) -> None:
    w = client(emulator)
    assert w.catalogs.get(CATALOG).name == CATALOG
    with pytest.raises(NotFound, match=re.escape("Catalog 'missing' does not exist.")):
        w.catalogs.get("missing")
    with pytest.raises(
        NotFound, match=re.escape("Schema 'takamol_demo.analytics' does not exist.")
    ):
        w.schemas.get(f"{CATALOG}.analytics")

    schema = w.schemas.create(name="analytics", catalog_name=CATALOG)
    assert (schema.full_name, schema.catalog_name) == (f"{CATALOG}.analytics", CATALOG)
    assert w.schemas.get(f"{CATALOG}.analytics").schema_id == schema.schema_id
    with pytest.raises(ResourceConflict, match="Schema 'analytics' already exists"):
        w.schemas.create(name="analytics", catalog_name=CATALOG)

    volume = w.volumes.create(CATALOG, "analytics", "crypto_landing", VolumeType.MANAGED)
    assert volume.full_name == f"{CATALOG}.analytics.crypto_landing"
    assert volume.volume_type == VolumeType.MANAGED
    assert (emulator.volumes_root / CATALOG / "analytics" / "crypto_landing").is_dir()
    assert w.volumes.read(f"{CATALOG}.analytics.crypto_landing").volume_id == volume.volume_id
    with pytest.raises(ResourceConflict):
        w.volumes.create(CATALOG, "analytics", "crypto_landing", VolumeType.MANAGED)
    with pytest.raises(NotFound, match=re.escape("Schema 'takamol_demo.nope' does not exist.")):
        w.volumes.create(CATALOG, "nope", "v", VolumeType.MANAGED)


def test_a_schema_is_dropped_empty_or_forced_with_its_volumes(emulator: Emulator) -> None:
    w = client(emulator)
    w.schemas.create(name="scratch", catalog_name=CATALOG)
    w.volumes.create(CATALOG, "scratch", "crypto_landing", VolumeType.MANAGED)
    folder = emulator.volumes_root / CATALOG / "scratch" / "crypto_landing"
    (folder / "kept.json").write_text("{}")
    with pytest.raises(BadRequest, match="is not empty"):
        w.schemas.delete(f"{CATALOG}.scratch")
    assert folder.is_dir()

    w.schemas.delete(f"{CATALOG}.scratch", force=True)
    assert not folder.exists()
    assert f"{CATALOG}.scratch" not in emulator.schema_names()
    with pytest.raises(NotFound, match="does not exist"):
        w.schemas.delete(f"{CATALOG}.scratch", force=True)


def test_deny_and_fail_next(emulator: Emulator) -> None:
    w = client(emulator)
    emulator.deny("POST", "/api/2.1/unity-catalog/schemas")
    with pytest.raises(PermissionDenied, match="does not have CREATE SCHEMA"):
        w.schemas.create(name="s", catalog_name=CATALOG)
    emulator.allow("POST", "/api/2.1/unity-catalog/schemas")
    assert w.schemas.create(name="s", catalog_name=CATALOG).name == "s"

    emulator.fail_next("PUT", "/api/2.0/fs/files", status=500, error_code="INTERNAL_ERROR")
    with pytest.raises(InternalError):
        w.files.upload(f"{VOLUME}/x", io.BytesIO(b"x"))
    w.files.upload(f"{VOLUME}/x", io.BytesIO(b"x"))
    emulator.fail_next("GET", "/api/2.1/unity-catalog/catalogs", count=2)
    # The SDK retries 503 TEMPORARILY_UNAVAILABLE by itself: the third call answers.
    assert w.catalogs.get(CATALOG).name == CATALOG
    assert emulator.requests.count(("GET", f"/api/2.1/unity-catalog/catalogs/{CATALOG}")) == 3


# ----- runs on the emulated cluster (no Spark)


@needs_mount_namespace
def test_a_task_prints_writes_on_volumes_and_dbfs_from_a_scratch_directory(
    emulator: Emulator, tmp_path: Path
) -> None:
    run_id = submit_script(
        emulator,
        f"""
        import os, sys
        print("hello from", os.getcwd(), sys.argv[1:])
        open("{VOLUME}/written-by-task.txt", "w").write("volume")
        os.makedirs("/dbfs/out", exist_ok=True)
        open("/dbfs/out/written-by-task.txt", "w").write("dbfs")
        print("dbutils", type(dbutils).__name__, os.environ["DATABRICKS_HOST"])
        """,
    )
    w = client(emulator)
    run = wait_terminal(w, run_id)
    assert run.state.result_state == jobs.RunResultState.SUCCESS  # type: ignore[union-attr]
    assert run.run_page_url == f"{emulator.host}/#job/0/run/{run_id}"
    assert (emulator.volumes_root / CATALOG / "crypto/landing/written-by-task.txt").read_text() == (
        "volume"
    )
    assert (emulator.dbfs_root / "out/written-by-task.txt").read_text() == "dbfs"
    task = run.tasks[0]  # type: ignore[index]
    assert task.task_key == "dagster-task"
    assert task.cluster_instance.cluster_id  # type: ignore[union-attr]
    logs = w.jobs.get_run_output(task.run_id).logs  # type: ignore[arg-type]
    cwd = logs.split("hello from ")[1].split(" ")[0]  # type: ignore[union-attr]
    assert not cwd.startswith(str(Path.cwd()))
    assert "/scratch" in cwd
    assert "['one', '2']" in logs  # type: ignore[operator]
    assert f"dbutils RemoteDbUtils {emulator.host}" in logs  # type: ignore[operator]


@needs_mount_namespace
def test_a_failing_task_is_failed_with_the_exception_in_get_output(emulator: Emulator) -> None:
    run_id = submit_script(
        emulator,
        """
        def explode():
            raise ValueError("trades_raw could not be read: 3 bad files")
        explode()
        """,
    )
    w = client(emulator)
    run = wait_terminal(w, run_id)
    assert run.state.result_state == jobs.RunResultState.FAILED  # type: ignore[union-attr]
    assert run.state.state_message.startswith(  # type: ignore[union-attr]
        "Task dagster-task failed with message: Workload failed, see run output for details"
    )
    output = w.jobs.get_run_output(run.tasks[0].run_id)  # type: ignore[index,arg-type]
    assert output.error == "ValueError: trades_raw could not be read: 3 bad files"
    assert "in explode" in output.error_trace  # type: ignore[operator]
    with pytest.raises(BadRequest, match="multiple tasks"):
        w.jobs.get_run_output(run_id)


@needs_mount_namespace
def test_runs_get_walks_pending_running_terminated(emulator: Emulator) -> None:
    run_id = submit_script(emulator, "import time\ntime.sleep(1.5)\n")
    w = client(emulator)
    seen: list[str] = []
    while not seen or seen[-1] != "TERMINATED":
        state = w.jobs.get_run(run_id).state.life_cycle_state.value  # type: ignore[union-attr]
        if not seen or seen[-1] != state:
            seen.append(state)
        time.sleep(0.05)
    assert seen == ["PENDING", "RUNNING", "TERMINATED"]
    assert w.jobs.get_run(run_id).state.result_state == jobs.RunResultState.SUCCESS  # type: ignore[union-attr]


@needs_mount_namespace
def test_cancel_a_finished_run_is_200_and_changes_nothing(emulator: Emulator) -> None:
    run_id = submit_script(emulator, "print('done')\n")
    w = client(emulator)
    wait_terminal(w, run_id)
    w.jobs.cancel_run(run_id)
    assert w.jobs.get_run(run_id).state.result_state == jobs.RunResultState.SUCCESS  # type: ignore[union-attr]


@needs_mount_namespace
def test_cancel_a_running_run_kills_it(emulator: Emulator) -> None:
    marker = emulator.dbfs_root / "still-running"
    run_id = submit_script(
        emulator,
        """
        import time
        time.sleep(2)
        open("/dbfs/still-running", "w").write("should have been killed")
        time.sleep(60)
        """,
    )
    w = client(emulator)
    while w.jobs.get_run(run_id).state.life_cycle_state != jobs.RunLifeCycleState.RUNNING:  # type: ignore[union-attr]
        time.sleep(0.05)
    w.jobs.cancel_run(run_id)
    run = wait_terminal(w, run_id, timeout=20)
    assert run.state.result_state == jobs.RunResultState.CANCELED  # type: ignore[union-attr]
    assert emulator.runs[run_id].tasks[0].process.returncode != 0  # type: ignore[union-attr]
    time.sleep(2.5)
    assert not marker.exists()


@needs_mount_namespace
def test_timeout_seconds_ends_the_run_timedout(emulator: Emulator) -> None:
    run_id = submit_script(emulator, "import time\ntime.sleep(60)\n", timeout_seconds=1)
    run = wait_terminal(client(emulator), run_id, timeout=30)
    assert run.state.result_state == jobs.RunResultState.TIMEDOUT  # type: ignore[union-attr]


@needs_mount_namespace
def test_the_checkout_is_not_importable_on_the_cluster(emulator: Emulator) -> None:
    checkout = Path(__file__).resolve().parents[2]
    assert (checkout / "crypto_assets" / "__init__.py").is_file()
    run_id = submit_script(
        emulator,
        f"""
        import os, sys
        print("checkout entries", os.listdir({str(checkout)!r}))
        # What dagster's pickled code pointer does with the launching process's cwd.
        sys.path.insert(0, {str(checkout)!r})
        import crypto_assets
        """,
    )
    w = client(emulator)
    run = wait_terminal(w, run_id)
    output = w.jobs.get_run_output(run.tasks[0].run_id)  # type: ignore[index,arg-type]
    assert output.error == "ModuleNotFoundError: No module named 'crypto_assets'"
    # Only the interpreter's own prefix (the venv) is mounted back inside the hidden checkout.
    visible = output.logs.split("checkout entries ")[1].splitlines()[0]  # type: ignore[union-attr]
    assert "crypto_assets" not in visible
    assert "pyproject.toml" not in visible


@needs_mount_namespace
def test_keep_paths_are_visible_inside_the_hidden_checkout(tmp_path: Path) -> None:
    kept = Path(__file__).resolve().parent
    checkout = kept.parents[1]
    with running_emulator(
        tmp_path / "ws", TOKEN, keep_paths=(kept,), start_spark=False, pending_seconds=0.1
    ) as emulator:
        run_id = submit_script(
            emulator,
            f"""
            import os
            print("kept", os.path.isfile({str(kept / "test_emulator.py")!r}))
            print("package", os.path.isdir({str(checkout / "crypto_assets")!r}))
            """,
        )
        w = client(emulator)
        run = wait_terminal(w, run_id)
        logs = w.jobs.get_run_output(run.tasks[0].run_id).logs  # type: ignore[index,arg-type]
    assert logs == "kept True\npackage False\n"


@needs_mount_namespace
def test_a_missing_library_pin_fails_the_run_as_an_install_failure(emulator: Emulator) -> None:
    run_id = submit_script(
        emulator,
        "print('never runs')\n",
        libraries=[
            compute.Library(pypi=compute.PythonPyPiLibrary(package="databricks-sdk==0.60.0")),
            compute.Library(pypi=compute.PythonPyPiLibrary(package="dagster==0.0.1")),
        ],
    )
    run = wait_terminal(client(emulator), run_id)
    assert run.state.result_state == jobs.RunResultState.FAILED  # type: ignore[union-attr]
    assert "Library installation failed" in run.state.state_message  # type: ignore[union-attr,operator]
    assert 'package: "dagster==0.0.1"' in run.state.state_message  # type: ignore[union-attr,operator]


@needs_mount_namespace
def test_a_new_cluster_without_an_access_mode_has_no_unity_catalog(emulator: Emulator) -> None:
    w = client(emulator)
    task = python_task("dbfs:/scripts/never.py")
    assert task.new_cluster is not None
    task.new_cluster.data_security_mode = None
    run_id = w.jobs.submit(run_name="test", tasks=[task]).response.run_id
    run = wait_terminal(w, run_id)  # type: ignore[arg-type]
    assert run.state.result_state == jobs.RunResultState.FAILED  # type: ignore[union-attr]
    message = run.state.state_message  # type: ignore[union-attr]
    assert message.startswith("[REQUIRES_SINGLE_PART_NAMESPACE]"), message  # type: ignore[union-attr]
    assert "data_security_mode not set" in message  # type: ignore[operator]


def test_scim_me_names_the_tokens_user(emulator: Emulator) -> None:
    assert client(emulator).current_user.me().user_name == USER_NAME


@needs_mount_namespace
def test_idempotency_token_returns_the_same_run(emulator: Emulator) -> None:
    w = client(emulator)
    (emulator.dbfs_root / "once.py").write_text("print(1)\n")
    task = python_task("dbfs:/once.py")
    first = w.jobs.submit(tasks=[task], idempotency_token="step-abc").response.run_id  # type: ignore[union-attr]
    second = w.jobs.submit(tasks=[task], idempotency_token="step-abc").response.run_id  # type: ignore[union-attr]
    assert first == second
    assert len(emulator.runs) == 1


@needs_mount_namespace
def test_a_serverless_task_gets_its_volume_dependencies_on_sys_path(
    emulator: Emulator, tmp_path: Path
) -> None:
    shipped = emulator.volumes_root / CATALOG / "crypto/landing/code"
    (shipped / "shipped_pkg").mkdir(parents=True)
    (shipped / "shipped_pkg/__init__.py").write_text("ANSWER = 42\n")
    (emulator.volumes_root / CATALOG / "crypto/landing/main.py").write_text(
        "import os, shipped_pkg\n"
        "print('answer', shipped_pkg.ANSWER, os.environ['DATABRICKS_RUNTIME_VERSION'])\n"
    )
    w = client(emulator)
    submitted = w.jobs.submit(
        tasks=[
            jobs.SubmitTask(
                task_key="pipes",
                spark_python_task=jobs.SparkPythonTask(python_file=f"{VOLUME}/main.py"),
                environment_key="default",
            )
        ],
        environments=[
            jobs.JobEnvironment(
                environment_key="default",
                spec=compute.Environment(client="2", dependencies=[f"{VOLUME}/code"]),
            )
        ],
    )
    run = wait_terminal(w, submitted.response.run_id)  # type: ignore[union-attr,arg-type]
    output = w.jobs.get_run_output(run.tasks[0].run_id)  # type: ignore[index,arg-type]
    assert run.state.result_state == jobs.RunResultState.SUCCESS, output.error  # type: ignore[union-attr]
    assert "answer 42 client.2" in output.logs  # type: ignore[operator]


@needs_mount_namespace
def test_cluster_log_delivery_clusters_get_permissions_and_secrets(tmp_path: Path) -> None:
    with running_emulator(
        tmp_path / "ws",
        TOKEN,
        secrets={("crypto", "api-key"): "s3cr3t-value"},
        start_spark=False,
        pending_seconds=0.1,
    ) as emulator:
        w = client(emulator)
        (emulator.dbfs_root / "logged.py").write_text(
            "print('secret length', len(dbutils.secrets.get(scope='crypto', key='api-key')))\n"
        )
        task = python_task("dbfs:/logged.py")
        assert task.new_cluster is not None
        task.new_cluster.cluster_log_conf = compute.ClusterLogConf(
            dbfs=compute.DbfsStorageInfo(destination="dbfs:/cluster-logs")
        )
        run_id = w.jobs.submit(tasks=[task]).response.run_id  # type: ignore[union-attr]
        run = wait_terminal(w, run_id)  # type: ignore[arg-type]
        cluster_id = run.tasks[0].cluster_instance.cluster_id  # type: ignore[index,union-attr]

        cluster = w.clusters.get(cluster_id)  # type: ignore[arg-type]
        assert cluster.cluster_log_conf.dbfs.destination == "dbfs:/cluster-logs"  # type: ignore[union-attr]
        delivered = emulator.dbfs_root / "cluster-logs" / cluster_id / "driver" / "stdout"  # type: ignore[operator]
        assert delivered.read_text() == "secret length 12\n"
        with pytest.raises(ResourceDoesNotExist):
            w.clusters.get("0000-000000-nothere")

        acl = [
            iam.AccessControlRequest(
                group_name="data-engineers", permission_level=iam.PermissionLevel.CAN_VIEW
            )
        ]
        updated = w.permissions.update("jobs", str(run_id), access_control_list=acl)
        assert updated.object_id == f"/jobs/{run_id}"
        assert emulator.permissions[("jobs", str(run_id))] == [
            {"group_name": "data-engineers", "permission_level": "CAN_VIEW"}
        ]


@needs_mount_namespace
def test_strict_python_version_refuses_a_mismatched_runtime(tmp_path: Path) -> None:
    with running_emulator(
        tmp_path / "ws", TOKEN, strict_python_version=True, start_spark=False, pending_seconds=0.1
    ) as emulator:
        (emulator.dbfs_root / "t.py").write_text("print(1)\n")
        task = python_task("dbfs:/t.py")
        assert task.new_cluster is not None
        # DBR 15.4 LTS runs Python 3.11; the emulated runtime is DBR 17.3's, on 3.12.
        task.new_cluster.spark_version = "15.4.x-scala2.12"
        w = client(emulator)
        run = wait_terminal(w, w.jobs.submit(tasks=[task]).response.run_id)  # type: ignore[union-attr,arg-type]
        assert run.state.result_state == jobs.RunResultState.FAILED  # type: ignore[union-attr]
        assert "runs Python 3.11" in run.state.state_message  # type: ignore[union-attr,operator]


def test_an_unknown_existing_cluster_is_refused_at_submit(emulator: Emulator) -> None:
    task = jobs.SubmitTask(
        task_key="dagster-task",
        spark_python_task=jobs.SparkPythonTask(python_file="dbfs:/x.py"),
        existing_cluster_id="0101-nope",
    )
    with pytest.raises(BadRequest, match="Cluster 0101-nope does not exist"):
        client(emulator).jobs.submit(tasks=[task])
    assert emulator.runs == {}


# ----- with Spark


@pytest.mark.spark
@needs_mount_namespace
def test_a_task_gets_a_spark_session_dressed_as_a_cluster(tmp_path: Path) -> None:
    with running_emulator(tmp_path / "ws", TOKEN, pending_seconds=0.1) as emulator:
        run_id = submit_script(
            emulator,
            """
            print("count", spark.range(3).count())
            print("cluster", spark.conf.get("spark.databricks.clusterUsageTags.clusterId"))
            print("sc", sc is spark.sparkContext)

            def importable(_):
                try:
                    import crypto_assets
                except ImportError:
                    return False
                return True

            print("worker imports crypto_assets", sc.parallelize([1]).map(importable).collect())
            """,
        )
        w = client(emulator)
        run = wait_terminal(w, run_id, timeout=180)
        output = w.jobs.get_run_output(run.tasks[0].run_id)  # type: ignore[index,arg-type]
        assert run.state.result_state == jobs.RunResultState.SUCCESS, output.error  # type: ignore[union-attr]
        assert "count 3" in output.logs  # type: ignore[operator]
        assert f"cluster {run.tasks[0].cluster_instance.cluster_id}" in output.logs  # type: ignore[index,union-attr,operator]
        assert "sc True" in output.logs  # type: ignore[operator]
        # Spark's Python workers do not see the checkout's editable install either.
        assert "worker imports crypto_assets [False]" in output.logs  # type: ignore[operator]
