"""The emulator's tasks run in the emulated Databricks Runtime, with only the libraries declared.

Each test submits a real ``spark_python_task`` with databricks-sdk and reads what the task printed:
its Python, its ``sys.path`` and what it can import. The library layers these tests build (orjson,
the pyspark replacements) are cached under the virtualenv, so only a fresh one pays for them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import textwrap
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.service import compute, jobs

from crypto_assets_tests.databricks import emulated_runtime
from crypto_assets_tests.databricks.emulator import (
    CHECKOUT,
    USER_NAME,
    Emulator,
    needs_mount_namespace,
    running_emulator,
)

pytestmark = [needs_mount_namespace, pytest.mark.usefixtures("no_ambient_databricks_config")]

TOKEN = "dapi-emulated-runtime-test"
CATALOG = "takamol_demo"
VOLUME = f"/Volumes/{CATALOG}/crypto/landing"
ORJSON = "orjson==3.10.18"
# What a task reports about itself, as one JSON line after "REPORT ".
REPORT_SCRIPT = """
import importlib, importlib.metadata, json, os, sys

def attempt(action):
    try:
        return repr(action())
    except Exception as error:
        return f"{type(error).__name__}: {error}"

report = {
    "version": list(sys.version_info[:2]),
    "executable": sys.executable,
    "pyspark_python": os.environ.get("PYSPARK_PYTHON"),
    "sys_path": sys.path,
    "crypto_assets": attempt(lambda: importlib.import_module("crypto_assets").__file__),
    "crypto_assets_version": attempt(lambda: importlib.metadata.version("crypto_assets")),
    "dagster": attempt(lambda: importlib.import_module("dagster").__file__),
    "orjson": attempt(lambda: importlib.import_module("orjson").__file__),
    "shipped_pkg": attempt(lambda: importlib.import_module("shipped_pkg").ANSWER),
    "shipped_pkg_file": attempt(lambda: importlib.import_module("shipped_pkg").__file__),
    "shipped_pkg_version": attempt(lambda: importlib.metadata.version("shipped-pkg")),
}
print("REPORT " + json.dumps(report))
"""


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Emulator]:
    """An emulator with one Volume, no Spark on its clusters."""
    with running_emulator(
        tmp_path / "workspace",
        TOKEN,
        volumes=(f"{CATALOG}.crypto.landing",),
        start_spark=False,
        pending_seconds=0.1,
    ) as running:
        yield running


def new_cluster(spark_version: str = "17.3.x-scala2.13") -> compute.ClusterSpec:
    """A new job cluster with dedicated access for the token's user."""
    return compute.ClusterSpec(
        spark_version=spark_version,
        num_workers=0,
        data_security_mode=compute.DataSecurityMode.SINGLE_USER,
        single_user_name=USER_NAME,
    )


def submit(
    emulator: Emulator,
    source: str,
    *,
    libraries: list[compute.Library] | None = None,
    spark_version: str = "17.3.x-scala2.13",
) -> tuple[jobs.Run, jobs.RunOutput]:
    """Put ``source`` on DBFS, run it on a new cluster and wait: the run and its task's output."""
    script = emulator.dbfs_root / "scripts" / f"task_{time.monotonic_ns()}.py"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(textwrap.dedent(source))
    w = WorkspaceClient(host=emulator.host, token=TOKEN)
    task = jobs.SubmitTask(
        task_key="task",
        spark_python_task=jobs.SparkPythonTask(python_file=f"dbfs:/scripts/{script.name}"),
        new_cluster=new_cluster(spark_version),
        libraries=libraries,
    )
    run_id = w.jobs.submit(run_name="runtime", tasks=[task]).response.run_id
    return finished(w, run_id)  # type: ignore[arg-type]


def finished(
    w: WorkspaceClient, run_id: int, timeout: float = 300
) -> tuple[jobs.Run, jobs.RunOutput]:
    """Poll runs/get until the run ends: the run and its (single) task's output."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = w.jobs.get_run(run_id)
        if run.state.life_cycle_state.value in ("TERMINATED", "INTERNAL_ERROR"):  # type: ignore[union-attr]
            return run, w.jobs.get_run_output(run.tasks[0].run_id)  # type: ignore[index,arg-type]
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} did not end in {timeout}s")


def submit_serverless(
    emulator: Emulator, python_file: str, dependencies: list[str] | None = None
) -> tuple[jobs.Run, jobs.RunOutput]:
    """Run `python_file` as a serverless task (environment version 4) and wait for it."""
    w = WorkspaceClient(host=emulator.host, token=TOKEN)
    submitted = w.jobs.submit(
        tasks=[
            jobs.SubmitTask(
                task_key="serverless",
                spark_python_task=jobs.SparkPythonTask(python_file=python_file),
                environment_key="default",
            )
        ],
        environments=[
            jobs.JobEnvironment(
                environment_key="default",
                spec=compute.Environment(environment_version="4", dependencies=dependencies),
            )
        ],
    )
    return finished(w, submitted.response.run_id)  # type: ignore[arg-type]


def report(output: jobs.RunOutput) -> dict:
    """The task's REPORT line."""
    for line in (output.logs or "").splitlines():
        if line.startswith("REPORT "):
            return json.loads(line.removeprefix("REPORT "))
    raise AssertionError(f"no REPORT in the task's output: {output.logs!r} {output.error!r}")


def pypi(spec: str) -> compute.Library:
    """A cluster library from PyPI."""
    return compute.Library(pypi=compute.PythonPyPiLibrary(package=spec))


def write_wheel(folder: Path, requires: list[str]) -> Path:
    """A minimal pure-Python wheel, ``shipped_pkg`` 1.0, with these ``Requires-Dist`` lines."""
    dist_info = "shipped_pkg-1.0.dist-info"
    metadata = "Metadata-Version: 2.1\nName: shipped-pkg\nVersion: 1.0\n" + "".join(
        f"Requires-Dist: {line}\n" for line in requires
    )
    files = {
        "shipped_pkg/__init__.py": "ANSWER = 42\n",
        f"{dist_info}/METADATA": metadata,
        f"{dist_info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: handwritten\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{name},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = "\n".join(record) + "\n"
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / "shipped_pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return wheel


def under(path: str, folder: Path) -> bool:
    """Whether ``path`` is ``folder`` or inside it (symbolic links not followed)."""
    normal = Path(os.path.normpath(path))
    return normal == folder or folder in normal.parents


def test_a_task_without_libraries_runs_on_the_clean_runtime(emulator: Emulator) -> None:
    print("emulated runtime:", emulated_runtime.runtime_python())
    print("python mismatch:", emulated_runtime.python_mismatch())
    run, output = submit(emulator, REPORT_SCRIPT)
    assert run.state.result_state == jobs.RunResultState.SUCCESS, output.error  # type: ignore[union-attr]
    seen = report(output)
    print("task sys.path:", seen["sys_path"])
    assert tuple(seen["version"]) == emulated_runtime.runtime_python().version
    if emulated_runtime.python_mismatch() is None:
        assert tuple(seen["version"]) == (3, 12)
        assert emulator.runs[run.run_id].warnings == []  # type: ignore[index]
    assert seen["executable"] == seen["pyspark_python"]
    runtime = emulated_runtime.runtime_root().resolve()
    assert under(seen["executable"], runtime)
    checkout = CHECKOUT.resolve()
    inside = [p for p in seen["sys_path"] if p and under(p, checkout)]
    assert inside, "the runtime's own site-packages are under the virtualenv"
    assert all(under(p, runtime) for p in inside), inside
    assert seen["crypto_assets"].startswith("ModuleNotFoundError"), seen
    assert seen["crypto_assets_version"].startswith("PackageNotFoundError"), seen
    assert seen["dagster"].startswith("ModuleNotFoundError"), seen
    assert seen["orjson"].startswith("ModuleNotFoundError"), seen


def test_a_pypi_library_is_installed_in_a_layer_over_the_runtime(emulator: Emulator) -> None:
    run, output = submit(emulator, REPORT_SCRIPT, libraries=[pypi(ORJSON)])
    assert run.state.result_state == jobs.RunResultState.SUCCESS, output.error  # type: ignore[union-attr]
    seen = report(output)
    layers = (emulated_runtime.runtime_root() / "layers").resolve()
    assert under(seen["orjson"].strip("'"), layers), seen
    assert under(seen["executable"], layers), seen
    assert seen["dagster"].startswith("ModuleNotFoundError"), seen


def test_a_library_that_does_not_resolve_fails_the_install(emulator: Emulator) -> None:
    run, output = submit(
        emulator, "print('never runs')\n", libraries=[pypi("no-such-package-xyz==1.0")]
    )
    assert run.state.result_state == jobs.RunResultState.FAILED  # type: ignore[union-attr]
    message = run.state.state_message  # type: ignore[union-attr]
    assert message.startswith("Library installation failed for library due to user error"), message  # type: ignore[union-attr]
    assert 'package: "no-such-package-xyz==1.0"' in message  # type: ignore[operator]
    assert "No matching distribution found for no-such-package-xyz==1.0" in message  # type: ignore[operator]
    assert "never runs" not in (output.logs or "")


@pytest.mark.parametrize(
    ("library", "installs"),
    [("pyspark==4.0.0", "pyspark 4.0.0"), ("pyspark-client==4.0.1", "pyspark-client 4.0.1")],
)
def test_a_library_that_replaces_the_runtimes_pyspark_fails(
    emulator: Emulator, library: str, installs: str
) -> None:
    run, _ = submit(emulator, "print('never runs')\n", libraries=[pypi(library)])
    assert run.state.result_state == jobs.RunResultState.FAILED  # type: ignore[union-attr]
    message = run.state.state_message  # type: ignore[union-attr]
    assert f"library {library} replaces the runtime's preinstalled pyspark 4.0.1" in message  # type: ignore[operator]
    assert f"(it installs {installs})" in message  # type: ignore[operator]


def test_a_library_that_upgrades_another_preinstalled_package_runs_with_a_warning(
    emulator: Emulator,
) -> None:
    # As a cluster library may upgrade databricks-sdk or grpcio: not the runtime's Spark binding.
    script = "import packaging; print('packaging', packaging.__version__)\n"
    run, output = submit(emulator, script, libraries=[pypi("packaging==25.0")])
    assert run.state.result_state == jobs.RunResultState.SUCCESS, output.error  # type: ignore[union-attr]
    assert "packaging 25.0" in (output.logs or "")
    warnings = emulator.runs[run.run_id].warnings  # type: ignore[index]
    assert any(
        "library packaging==25.0 replaces the runtime's preinstalled packaging 24.2" in warning
        for warning in warnings
    ), warnings


def test_a_shipped_wheel_is_installed_per_run_with_its_requirements_from_a_layer(
    emulator: Emulator,
) -> None:
    volume_folder = emulator.volumes_root / CATALOG / "crypto" / "landing" / "wheels"
    # The extra's requirement does not exist: only the wheel's own requirements are installed.
    write_wheel(volume_folder, [ORJSON, 'no-such-package-xyz==1.0; extra == "dev"'])
    wheel = f"{VOLUME}/wheels/shipped_pkg-1.0-py3-none-any.whl"
    run, output = submit(emulator, REPORT_SCRIPT, libraries=[compute.Library(whl=wheel)])
    assert run.state.result_state == jobs.RunResultState.SUCCESS, output.error  # type: ignore[union-attr]
    seen = report(output)
    assert seen["shipped_pkg"] == "42"
    assert seen["shipped_pkg_version"] == "'1.0'"
    run_wheels = (emulator.runs_root / str(run.tasks[0].run_id) / "wheels").resolve()  # type: ignore[index]
    # After the task file's folder, as for `python <file>`.
    assert seen["sys_path"][:2] == ["/dbfs/scripts", str(run_wheels)]
    assert under(seen["shipped_pkg_file"].strip("'"), run_wheels)
    assert under(seen["orjson"].strip("'"), emulated_runtime.runtime_root().resolve())
    assert seen["crypto_assets"].startswith("ModuleNotFoundError"), seen


def test_a_serverless_wheel_dependency_is_installed(emulator: Emulator) -> None:
    write_wheel(emulator.volumes_root / CATALOG / "crypto" / "landing" / "wheels", [ORJSON])
    (emulator.volumes_root / CATALOG / "crypto" / "landing" / "main.py").write_text(REPORT_SCRIPT)
    wheel = f"{VOLUME}/wheels/shipped_pkg-1.0-py3-none-any.whl"
    run, output = submit_serverless(emulator, f"{VOLUME}/main.py", [wheel])
    assert run.state.result_state == jobs.RunResultState.SUCCESS, output.error  # type: ignore[union-attr]
    seen = report(output)
    assert seen["shipped_pkg"] == "42"
    assert tuple(seen["version"]) == emulated_runtime.runtime_python().version


def test_a_missing_serverless_wheel_fails_the_environment(emulator: Emulator) -> None:
    missing = f"{VOLUME}/wheels/nothing-1.0-py3-none-any.whl"
    run, _ = submit_serverless(emulator, f"{VOLUME}/main.py", [missing])
    assert run.state.result_state == jobs.RunResultState.FAILED  # type: ignore[union-attr]
    assert run.state.state_message.startswith(  # type: ignore[union-attr]
        f"Failed to install the environment dependency {missing}:"
    )


def test_strict_python_version_refuses_a_runtime_of_another_python(tmp_path: Path) -> None:
    with running_emulator(
        tmp_path / "ws", TOKEN, strict_python_version=True, start_spark=False, pending_seconds=0.1
    ) as emulator:
        run, _ = submit(emulator, "print(1)\n", spark_version="15.4.x-scala2.12")
    assert run.state.result_state == jobs.RunResultState.FAILED  # type: ignore[union-attr]
    have = ".".join(str(part) for part in emulated_runtime.runtime_python().version)
    assert run.state.state_message == (  # type: ignore[union-attr]
        "Emulator refused the cluster: spark_version 15.4.x-scala2.12 runs Python 3.11; the "
        f"emulated cluster runs Python {have}."
    )


@pytest.mark.spark
def test_spark_python_workers_run_on_the_tasks_runtime(tmp_path: Path) -> None:
    with running_emulator(
        tmp_path / "ws", TOKEN, volumes=(f"{CATALOG}.crypto.landing",), pending_seconds=0.1
    ) as emulator:
        write_wheel(emulator.volumes_root / CATALOG / "crypto" / "landing" / "wheels", [ORJSON])
        wheel = f"{VOLUME}/wheels/shipped_pkg-1.0-py3-none-any.whl"
        run, output = submit(
            emulator,
            """
            import sys

            def worker(_):
                import importlib.util
                import orjson, shipped_pkg
                return (
                    sys.executable,
                    shipped_pkg.ANSWER,
                    importlib.util.find_spec("crypto_assets") is None,
                )

            print("driver", sys.executable)
            print("worker", sc.parallelize([1]).map(worker).collect())
            """,
            libraries=[compute.Library(whl=wheel)],
        )
    assert run.state.result_state == jobs.RunResultState.SUCCESS, output.error  # type: ignore[union-attr]
    driver = output.logs.split("driver ")[1].splitlines()[0]  # type: ignore[union-attr]
    assert f"worker [({driver!r}, 42, True)]" in output.logs  # type: ignore[operator]


@pytest.mark.spark
def test_a_serverless_task_runs_on_spark_connect_with_its_triggers_only(tmp_path: Path) -> None:
    with running_emulator(
        tmp_path / "ws", TOKEN, volumes=(f"{CATALOG}.crypto.landing",), pending_seconds=0.1
    ) as emulator:
        folder = emulator.volumes_root / CATALOG / "crypto" / "landing"
        (folder / "stream.py").write_text(
            textwrap.dedent(
                """
                import os, tempfile

                print("session", type(spark).__module__, "sc", sc)
                seen = []
                stream = spark.readStream.format("rate").load()
                try:
                    stream.writeStream.format("noop").trigger(processingTime="1 second").start()
                except RuntimeError as error:
                    print("refused", error)
                query = (
                    stream.limit(3).writeStream.format("memory").queryName("numbers")
                    .option("checkpointLocation", tempfile.mkdtemp())
                    .trigger(availableNow=True).start()
                )
                query.awaitTermination()
                print("availableNow ran", query.lastProgress is not None)
                """
            )
        )
        run, output = submit_serverless(emulator, f"{VOLUME}/stream.py")
    assert run.state.result_state == jobs.RunResultState.SUCCESS, output.error  # type: ignore[union-attr]
    logs = output.logs or ""
    assert "session pyspark.sql.connect.session sc None" in logs
    assert (
        "refused [INFINITE_STREAMING_TRIGGER_NOT_SUPPORTED] Trigger type processingTime is not "
        "supported for this cluster type." in logs
    )
    assert "availableNow ran True" in logs
