"""A loopback emulation of the Databricks REST calls this project makes, with runs really executed.

It serves what databricks-sdk 0.60.0 sends for dagster-databricks' step launcher, its Pipes
clients and ``crypto-assets databricks-setup``: DBFS (``/api/2.0/dbfs/*``), the Files API on Unity
Catalog Volumes (``/api/2.0/fs/files``, ``/api/2.0/fs/directories``), Jobs 2.2 one-time runs
(``runs/submit``, ``runs/get``, ``runs/get-output``, ``runs/cancel``), the Unity Catalog catalogs,
schemas and volumes, ``clusters/get`` and ``secrets/get``. Every endpoint needs the bearer token;
error bodies are the real service's (``{"error_code", "message"}``, with the codes the SDK maps to
its exception classes).

``runs/submit`` runs each ``spark_python_task`` the way a cluster does, in a subprocess started by
``emulated_cluster.py``: a private mount namespace (``unshare -m``, root only) bind-mounts
``root/dbfs`` on ``/dbfs``, ``root/Volumes`` on ``/Volumes``, ``root/Workspace`` on ``/Workspace``;
the working directory is a fresh scratch folder. The interpreter is the emulated Databricks
Runtime's (``emulated_runtime.py``): a clean Python 3.12 virtualenv with what DBR 17.3 LTS
preinstalls, plus a layer with exactly the libraries the task declares (cluster ``libraries``,
serverless ``dependencies``), installed with pip before the task starts, as a cluster does; a
shipped wheel is installed per run into ``<run dir>/wheels``, first on ``sys.path``. Started with
``-I``: nothing of this virtualenv, ``PYTHONPATH`` or the checkout is importable. The checkout
(``hide_paths``) is covered with an empty tmpfs, with only the emulated runtime and the Delta jars
mounted back, so a path that dagster pickles from the launching process (its cwd) finds nothing,
as on a real cluster. ``spark``, ``sc`` and ``dbutils`` are injected as on Databricks.

With ``set_runtime_version`` (the default) the task sees ``DATABRICKS_RUNTIME_VERSION``, so code
takes its Databricks branch, and its Spark has the runtime's stand-ins (``standins/``): Auto
Loader's ``cloudFiles`` (a Python streaming data source), and three-part names ``catalog.schema.
table`` for every catalog here (a named Delta catalog whose managed tables are folders under
``unity_tables_root``, one per schema). A serverless task (an ``environment_key``) gets a Spark
Connect session of a local server instead of a classic one: its ``foreachBatch`` functions run in
the server's Python workers, ``sc`` is None, and only the availableNow and once triggers run.

Deliberate limits, each said where it matters:
- A library that does not resolve fails the run as a library install failure does (pip's message);
  so does one that replaces the runtime's Spark binding (pyspark, delta-spark, py4j); one that
  upgrades another preinstalled package (databricks-sdk, grpcio...) runs, with a warning in
  ``runs[id].warnings`` (``emulated_runtime.RUNTIME_BOUND`` says why).
  ``maven``, ``jar``, ``egg``, ``requirements`` and ``cran`` libraries are not installed (a warning
  in ``runs[id].warnings``); a shipped path that is not a wheel (a zip or a folder) is put on the
  task's ``sys.path`` as it is, where a workspace would ``pip install`` it.
- ``spark_version`` implies a Python (15.x: 3.11, 16.x and 17.x: 3.12); every task runs on the
  emulated runtime's (3.12, unless the machine has none: ``emulated_runtime.python_mismatch``), so
  a mismatch is recorded as a warning in ``runs[id].warnings`` unless ``strict_python_version=True``
  fails the run. Serverless tasks run on the same runtime (and its Spark Connect client).
- The stand-ins: PyPI's pyspark 4.0.1 and delta-spark 4.4.0 for the runtime's own Spark and Delta;
  the ``cloudFiles`` source and the named catalog for Auto Loader and Unity Catalog (what each
  does not prove: docs/databricks.md).
- Only ``spark_python_task`` runs.

Why the standard library's ``ThreadingHTTPServer``: no published package emulates these endpoints
(databricks/cli's Go test server is bound to its Go harness; the SDK's fixture server is a bare
``HTTPServer``), and the ~40 routes need nothing a framework would add.
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from shlex import quote
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from crypto_assets_tests.databricks import emulated_runtime
from crypto_assets_tests.databricks.standins import cloudfiles, unity_names

logger = logging.getLogger(__name__)

# Runs execute in a private mount namespace (`unshare -m`), which needs root (CI runs as root).
needs_mount_namespace = pytest.mark.skipif(
    os.geteuid() != 0,
    reason="the emulated cluster needs a mount namespace (unshare -m): run the tests as root",
)

CLUSTER_SCRIPT = Path(__file__).with_name("emulated_cluster.py")
CHECKOUT = Path(__file__).resolve().parents[2]
DBFS_READ_DEFAULT = 524_288
DBFS_MAX_BLOCK = 1_048_576
USER_NAME = "emulated-user@example.com"
METASTORE_ID = "11111111-2222-3333-4444-555555555555"
# The access modes under which a cluster reaches Unity Catalog (clusters API `data_security_mode`).
UNITY_CATALOG_ACCESS_MODES = frozenset(
    {
        "SINGLE_USER",
        "USER_ISOLATION",
        "DATA_SECURITY_MODE_DEDICATED",
        "DATA_SECURITY_MODE_STANDARD",
        "DATA_SECURITY_MODE_AUTO",
    }
)
TERMINAL_RESULTS = ("SUCCESS", "FAILED", "CANCELED", "TIMEDOUT")
# Databricks Runtime major version -> its Python (databricks/cli testserver sparkVersionToPython).
RUNTIME_PYTHON = {12: (3, 9), 13: (3, 10), 14: (3, 10), 15: (3, 11), 16: (3, 12), 17: (3, 12)}
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")


class ApiError(Exception):
    """An error answered as the real service does: HTTP status plus ``{error_code, message}``."""

    def __init__(
        self, status: int, error_code: str | int, message: str, details: list[dict] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        """The JSON body Databricks sends for this error."""
        body: dict[str, Any] = {"error_code": self.error_code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


def _dbfs_disabled(path: Any) -> ApiError:
    """What a workspace with legacy DBFS disabled answers a DBFS call.

    The message is the runtime's own (``[DBFS_DISABLED] Public DBFS root is disabled. Access is
    denied on path: ...``, as users report it from notebooks and the CLI); the REST status and
    error_code are assumed (403 PERMISSION_DENIED: the CLI reports it as a permission error). The
    SDK maps either to `PermissionDenied`, by code or by status.
    """
    where = path.removeprefix("dbfs:") if isinstance(path, str) and path else "/"
    return ApiError(
        403,
        "PERMISSION_DENIED",
        f"[DBFS_DISABLED] Public DBFS root is disabled. Access is denied on path: {where}",
    )


def _not_found(message: str, code: str = "RESOURCE_DOES_NOT_EXIST") -> ApiError:
    return ApiError(404, code, message)


def _bad_request(message: str, code: str = "INVALID_PARAMETER_VALUE") -> ApiError:
    return ApiError(400, code, message)


@dataclass
class Reply:
    """A response: JSON (``body``) or raw bytes (``raw``) with extra headers."""

    status: int = 200
    body: Any = field(default_factory=dict)
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Fault:
    method: str
    path_prefix: str
    remaining: int
    error: ApiError


@dataclass
class TaskRun:
    """One task of a submitted run, with its own run_id, state and captured output."""

    run_id: int
    task_key: str
    spec: dict[str, Any]
    cluster_id: str
    life_cycle_state: str = "PENDING"
    result_state: str | None = None
    state_message: str = ""
    start_time: int = 0
    end_time: int = 0
    error: str | None = None
    error_trace: str | None = None
    stdout_path: Path | None = None
    stderr_path: Path | None = None
    scratch_dir: Path | None = None
    process: subprocess.Popen | None = None
    # The interpreter and leading sys.path the task runs with, once its libraries are installed.
    runtime: emulated_runtime.TaskRuntime | None = None

    def logs(self) -> str:
        """What the task printed (stdout), as get-output's ``logs``."""
        if self.stdout_path and self.stdout_path.exists():
            return self.stdout_path.read_text(errors="replace")
        return ""


@dataclass
class Run:
    """A submitted one-time run: the spec as received, its tasks and its state history."""

    run_id: int
    spec: dict[str, Any]
    tasks: list[TaskRun]
    start_time: int
    life_cycle_state: str = "PENDING"
    result_state: str | None = None
    state_message: str = ""
    end_time: int = 0
    user_cancelled_or_timedout: bool = False
    cancel_requested: bool = False
    warnings: list[str] = field(default_factory=list)
    states_seen: list[str] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)

    def set_state(self, life_cycle: str, result: str | None = None, message: str = "") -> None:
        """Move the run's state, keeping the sequence of life cycle states for assertions."""
        self.life_cycle_state, self.result_state, self.state_message = life_cycle, result, message
        if not self.states_seen or self.states_seen[-1] != life_cycle:
            self.states_seen.append(life_cycle)


def _now_ms() -> int:
    return int(time.time() * 1000)


def python_for_spark_version(spark_version: str) -> tuple[int, int] | None:
    """The Python a Databricks Runtime ships (``17.3.x-scala2.13`` -> (3, 12)); None if unknown."""
    match = re.match(r"^(\d+)\.", spark_version)
    return RUNTIME_PYTHON.get(int(match.group(1))) if match else None


class Emulator:
    """The emulated workspace: state, routes and the runs it executes (see the module docstring)."""

    def __init__(
        self,
        root: Path,
        token: str,
        *,
        catalogs: tuple[str, ...] = (),
        volumes: tuple[str, ...] = (),
        clusters: Mapping[str, str] | None = None,
        cluster_access_mode: str = "SINGLE_USER",
        secrets: Mapping[tuple[str, str], str] | None = None,
        spark_conf: Mapping[str, str] | None = None,
        cluster_env: Mapping[str, str] | None = None,
        cluster_token: str | None = None,
        start_spark: bool = True,
        strict_python_version: bool = False,
        pending_seconds: float = 0.5,
        set_runtime_version: bool = True,
        hide_paths: tuple[Path, ...] = (CHECKOUT,),
        keep_paths: tuple[Path, ...] = (),
        dbfs_disabled: bool = False,
    ) -> None:
        self.root = Path(root)
        self.token = token
        # A workspace with legacy DBFS disabled: every /api/2.0/dbfs/* call is refused.
        self.dbfs_disabled = dbfs_disabled
        # What a cluster authenticates with: its own token, accepted like the user's.
        self.cluster_token = cluster_token or f"dapi-cluster-{uuid.uuid4().hex}"
        self.dbfs_root = self.root / "dbfs"
        self.volumes_root = self.root / "Volumes"
        self.workspace_root = self.root / "Workspace"
        self.runs_root = self.root / "_runs"
        # Unity Catalog's managed tables, by the stand-in catalog (`unity_tables_dir`).
        self.unity_tables_root = self.root / "unity_catalog_tables"
        for folder in (self.dbfs_root, self.volumes_root, self.workspace_root, self.runs_root):
            folder.mkdir(parents=True, exist_ok=True)
        # Existing clusters: id -> spark_version, all with this access mode (for the token's user).
        self.clusters = dict(clusters or {})
        self.cluster_access_mode = cluster_access_mode
        self.permissions: dict[tuple[str, str], list[dict]] = {}
        self._job_clusters: dict[str, dict] = {}
        self.secrets = dict(secrets or {})
        self.spark_conf = dict(spark_conf or {})
        self.cluster_env = dict(cluster_env or {})
        self.start_spark = start_spark
        self.strict_python_version = strict_python_version
        self.pending_seconds = pending_seconds
        self.set_runtime_version = set_runtime_version
        # Hidden from the cluster (an empty tmpfs over each), as a real cluster lacks the checkout;
        # mounted back inside: the emulated runtime, the Delta jars a task's spark.jars names
        # (<virtualenv>/delta-jars, crypto_assets/analytics/delta_jars.py) and keep_paths.
        self.hide_paths = tuple(Path(p).resolve() for p in hide_paths)
        self.keep_paths = (
            emulated_runtime.runtime_root().resolve(),
            (Path(sys.prefix) / "delta-jars").resolve(),
            *(Path(p).resolve() for p in keep_paths),
        )
        for hidden in self.hide_paths:
            if hidden == self.root.resolve() or hidden in self.root.resolve().parents:
                raise ValueError(f"the emulator root {self.root} is inside hidden {hidden}")
        self.runs: dict[int, Run] = {}
        self.requests: list[tuple[str, str]] = []
        self.host = ""
        self._lock = threading.RLock()
        self._ids = itertools.count(101)
        self._handles: dict[int, tuple[Path, bytearray]] = {}
        self._handle_ids = itertools.count(1)
        self._idempotency: dict[str, int] = {}
        self._denied: list[tuple[str, str, str | None]] = []
        self._faults: list[_Fault] = []
        self._catalogs: dict[str, dict] = {}
        self._schemas: dict[str, dict] = {}
        self._volumes: dict[str, dict] = {}
        self._threads: list[threading.Thread] = []
        self._server: ThreadingHTTPServer | None = None
        for name in catalogs:
            self._catalogs[name] = self._catalog_info(name)
        for full_name in volumes:
            catalog, schema, volume = full_name.split(".")
            self._catalogs.setdefault(catalog, self._catalog_info(catalog))
            if f"{catalog}.{schema}" not in self._schemas:
                self._add_schema(catalog, schema)
            self._volumes[full_name] = self._volume_info(catalog, schema, volume, "MANAGED")
            (self.volumes_root / catalog / schema / volume).mkdir(parents=True, exist_ok=True)

    # ----- failure injection, for other parts' failure tests

    def schema_names(self) -> list[str]:
        """The full names of the schemas that exist now."""
        with self._lock:
            return sorted(self._schemas)

    def deny(self, method: str, path_prefix: str, message: str | None = None) -> None:
        """From now on, answer ``method`` on paths starting with ``path_prefix`` with 403."""
        with self._lock:
            self._denied.append((method.upper(), path_prefix, message))

    def allow(self, method: str, path_prefix: str) -> None:
        """Undo :meth:`deny` for this method and prefix."""
        with self._lock:
            self._denied = [
                d for d in self._denied if (d[0], d[1]) != (method.upper(), path_prefix)
            ]

    def fail_next(
        self,
        method: str,
        path_prefix: str,
        count: int = 1,
        *,
        status: int = 503,
        error_code: str = "TEMPORARILY_UNAVAILABLE",
        message: str = "The service is temporarily unavailable. Please try again later.",
    ) -> None:
        """Make the next ``count`` matching calls fail (503 is retried by the SDK; 500 is not)."""
        with self._lock:
            error = ApiError(status, error_code, message)
            self._faults.append(_Fault(method.upper(), path_prefix, count, error))

    # ----- lifecycle

    def start(self) -> None:
        """Serve on a free loopback port; ``host`` is set once listening."""
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(self))
        self._server.daemon_threads = True
        self.host = f"http://127.0.0.1:{self._server.server_address[1]}"
        thread = threading.Thread(target=self._server.serve_forever, name="databricks-emulator")
        thread.daemon = True
        thread.start()
        logger.info("Databricks emulator on %s (root %s)", self.host, self.root)

    def stop(self) -> None:
        """Cancel unfinished runs (their processes are killed), then stop serving."""
        for run in list(self.runs.values()):
            if not run.done.is_set():
                self._cancel(run)
        for thread in list(self._threads):
            thread.join(timeout=30)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def wait_for_run(self, run_id: int, timeout: float = 300) -> Run:
        """Block until the run is terminal (for tests that submit directly)."""
        run = self.runs[run_id]
        if not run.done.wait(timeout):
            raise TimeoutError(f"run {run_id} still {run.life_cycle_state} after {timeout}s")
        return run

    # ----- request dispatch

    def handle(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> Reply:
        """Authenticate, apply injected faults and permissions, then route one request."""
        parts = urlsplit(url)
        path = unquote(parts.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        with self._lock:
            self.requests.append((method, path))
        try:
            self._authenticate(headers.get("Authorization"))
            self._check_faults(method, path)
            self._check_permission(method, path)
            return self._route(method, path, query, body)
        except ApiError as error:
            return Reply(error.status, error.body())

    def _authenticate(self, authorization: str | None) -> None:
        if not authorization or not authorization.startswith("Bearer "):
            raise ApiError(
                401,
                401,
                "Credential was not sent or was of an unsupported type for this API. "
                f"[ReqId: {uuid.uuid4()}]",
            )
        if authorization.removeprefix("Bearer ") not in (self.token, self.cluster_token):
            raise ApiError(403, 403, "Invalid access token.")

    def _check_faults(self, method: str, path: str) -> None:
        with self._lock:
            for fault in self._faults:
                if (
                    fault.remaining > 0
                    and fault.method == method
                    and path.startswith(fault.path_prefix)
                ):
                    fault.remaining -= 1
                    raise fault.error

    def _check_permission(self, method: str, path: str) -> None:
        with self._lock:
            denied = [d for d in self._denied if d[0] == method and path.startswith(d[1])]
        if denied:
            message = denied[0][2] or _permission_message(method, path)
            raise ApiError(403, "PERMISSION_DENIED", message)

    def _route(self, method: str, path: str, query: dict[str, str], body: bytes) -> Reply:
        for prefix, handler in (
            ("/api/2.0/fs/files", self._files),
            ("/api/2.0/fs/directories", self._directories),
        ):
            if path.startswith(prefix + "/"):
                return handler(method, path.removeprefix(prefix), query, body)
        permissions = re.match(r"^/api/2\.0/permissions/(jobs|clusters)/([^/]+)$", path)
        if permissions and method == "PATCH":
            return Reply(200, self._permissions_update(*permissions.groups(), _json_body(body)))
        uc = re.match(r"^/api/2\.1/unity-catalog/(catalogs|schemas|volumes)(?:/(.+))?$", path)
        if uc:
            return self._unity_catalog(method, uc.group(1), uc.group(2), query, body)
        route = self._json_routes().get((method, re.sub(r"/api/2\.[0-2]/jobs/", "/jobs/", path)))
        if route is None:
            raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{method} {path}'")
        payload = query if method == "GET" else _json_body(body)
        if self.dbfs_disabled and path.startswith("/api/2.0/dbfs/"):
            raise _dbfs_disabled(payload.get("path"))
        return Reply(200, route(payload))

    def _json_routes(self) -> dict[tuple[str, str], Callable[[dict], dict]]:
        return {
            ("POST", "/api/2.0/dbfs/create"): self._dbfs_create,
            ("POST", "/api/2.0/dbfs/add-block"): self._dbfs_add_block,
            ("POST", "/api/2.0/dbfs/close"): self._dbfs_close,
            ("GET", "/api/2.0/dbfs/read"): self._dbfs_read,
            ("POST", "/api/2.0/dbfs/put"): self._dbfs_put,
            ("POST", "/api/2.0/dbfs/mkdirs"): self._dbfs_mkdirs,
            ("POST", "/api/2.0/dbfs/delete"): self._dbfs_delete,
            ("GET", "/api/2.0/dbfs/get-status"): self._dbfs_get_status,
            ("GET", "/api/2.0/dbfs/list"): self._dbfs_list,
            ("POST", "/jobs/runs/submit"): self._runs_submit,
            ("GET", "/jobs/runs/get"): self._runs_get,
            ("GET", "/jobs/runs/get-output"): self._runs_get_output,
            ("POST", "/jobs/runs/cancel"): self._runs_cancel,
            ("GET", "/api/2.1/clusters/get"): self._clusters_get,
            ("GET", "/api/2.0/clusters/get"): self._clusters_get,
            ("GET", "/api/2.0/secrets/get"): self._secrets_get,
            ("GET", "/api/2.0/preview/scim/v2/Me"): self._me,
        }

    def _me(self, query: dict) -> dict:
        """The token's user (SCIM `Me`)."""
        return {"id": "1", "userName": USER_NAME, "active": True}

    # ----- DBFS

    def _dbfs_path(self, raw: Any) -> Path:
        if not isinstance(raw, str) or not raw:
            raise _bad_request("Path must be a non-empty string.")
        path = raw.removeprefix("dbfs:")
        if not path.startswith("/"):
            raise _bad_request(f"Path must be absolute: {raw}")
        return _inside(self.dbfs_root, path)

    def _dbfs_create(self, body: dict) -> dict:
        target = self._dbfs_path(body.get("path"))
        if target.exists() and (target.is_dir() or not body.get("overwrite")):
            raise ApiError(
                409,
                "RESOURCE_ALREADY_EXISTS",
                f"A file or directory already exists at the input path {body['path']}.",
            )
        with self._lock:
            handle = next(self._handle_ids)
            self._handles[handle] = (target, bytearray())
        return {"handle": handle}

    def _dbfs_add_block(self, body: dict) -> dict:
        with self._lock:
            entry = self._handles.get(body.get("handle"))  # type: ignore[arg-type]
        if entry is None:
            raise _not_found(f"Handle {body.get('handle')} does not exist.")
        block = _b64(body.get("data", ""))
        if len(block) > DBFS_MAX_BLOCK:
            raise _bad_request(
                f"Block size {len(block)} exceeds the maximum of {DBFS_MAX_BLOCK} bytes.",
                "MAX_BLOCK_SIZE_EXCEEDED",
            )
        entry[1].extend(block)
        return {}

    def _dbfs_close(self, body: dict) -> dict:
        with self._lock:
            entry = self._handles.pop(body.get("handle"), None)  # type: ignore[arg-type]
        if entry is None:
            raise _not_found(f"Handle {body.get('handle')} does not exist.")
        target, data = entry
        _atomic_write(target, bytes(data))
        return {}

    def _dbfs_read(self, query: dict) -> dict:
        target = self._dbfs_path(query.get("path"))
        offset, length = int(query.get("offset", 0)), int(query.get("length", DBFS_READ_DEFAULT))
        if length > DBFS_MAX_BLOCK or length < 0 or offset < 0:
            raise _bad_request(
                f"Read length {length} exceeds the maximum of {DBFS_MAX_BLOCK} bytes.",
                "MAX_READ_SIZE_EXCEEDED",
            )
        if not target.is_file():
            if target.is_dir():
                raise _bad_request(f"Path {query['path']} is a directory.", "NOT_A_FILE")
            raise _not_found(f"No file or directory exists on path {query['path']}.")
        with target.open("rb") as stream:
            stream.seek(offset)
            chunk = stream.read(length)
        # Always "data", "" at the end: dagster-databricks check.not_none()s it.
        return {"bytes_read": len(chunk), "data": base64.b64encode(chunk).decode()}

    def _dbfs_put(self, body: dict) -> dict:
        target = self._dbfs_path(body.get("path"))
        contents = _b64(body.get("contents", ""))
        if len(contents) > DBFS_MAX_BLOCK:
            raise _bad_request(
                "File uploads via the contents field are limited to 1MB. Use the streaming API.",
                "MAX_BLOCK_SIZE_EXCEEDED",
            )
        if target.exists() and (target.is_dir() or not body.get("overwrite")):
            raise ApiError(
                409,
                "RESOURCE_ALREADY_EXISTS",
                f"A file or directory already exists at the input path {body['path']}.",
            )
        _atomic_write(target, contents)
        return {}

    def _dbfs_mkdirs(self, body: dict) -> dict:
        target = self._dbfs_path(body.get("path"))
        for parent in (target, *target.parents):
            if parent.is_file():
                raise _bad_request(
                    f"Cannot create directory {body['path']}: a file exists on its path.",
                    "RESOURCE_ALREADY_EXISTS",
                )
            if parent == self.dbfs_root:
                break
        target.mkdir(parents=True, exist_ok=True)
        return {}

    def _dbfs_delete(self, body: dict) -> dict:
        target = self._dbfs_path(body.get("path"))
        if target == self.dbfs_root:
            raise _bad_request("Cannot delete the root directory.")
        if target.is_dir():
            if any(target.iterdir()) and not body.get("recursive"):
                raise _bad_request(
                    f"Could not delete {body['path']}: the directory is not empty. "
                    "Use recursive delete or remove its contents first.",
                    "BAD_REQUEST",
                )
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        # Deleting a missing path succeeds, as on DBFS.
        return {}

    def _dbfs_info(self, target: Path) -> dict:
        stat = target.stat()
        return {
            "path": "/" + target.relative_to(self.dbfs_root).as_posix(),
            "is_dir": target.is_dir(),
            "file_size": 0 if target.is_dir() else stat.st_size,
            "modification_time": int(stat.st_mtime * 1000),
        }

    def _dbfs_get_status(self, query: dict) -> dict:
        target = self._dbfs_path(query.get("path"))
        if not target.exists():
            raise _not_found(f"No file or directory exists on path {query['path']}.")
        return self._dbfs_info(target)

    def _dbfs_list(self, query: dict) -> dict:
        target = self._dbfs_path(query.get("path"))
        if not target.exists():
            raise _not_found(f"No file or directory exists on path {query['path']}.")
        if target.is_file():
            return {"files": [self._dbfs_info(target)]}
        return {"files": [self._dbfs_info(child) for child in sorted(target.iterdir())]}

    # ----- Files API on Volumes

    def _volume_path(self, api_path: str) -> Path:
        """Map ``/Volumes/c/s/v/...`` to the folder; the Volume itself must exist."""
        parts = api_path.strip("/").split("/")
        if len(parts) < 4 or parts[0] != "Volumes":
            raise _bad_request(
                f"Invalid path {api_path}: the Files API accepts /Volumes/<catalog>/<schema>/"
                "<volume>/<path> paths only in this emulation."
            )
        volume_dir = self.volumes_root.joinpath(*parts[1:4])
        if not volume_dir.is_dir():
            raise _not_found(f"Volume '{'.'.join(parts[1:4])}' does not exist.", "NOT_FOUND")
        return _inside(self.volumes_root, "/" + "/".join(parts[1:]))

    def _files(self, method: str, api_path: str, query: dict, body: bytes) -> Reply:
        target = self._volume_path(api_path)
        if method == "PUT":
            if target.is_dir():
                raise ApiError(409, "ALREADY_EXISTS", f"A directory exists at {api_path}.")
            if target.exists() and query.get("overwrite", "true").lower() == "false":
                raise ApiError(409, "ALREADY_EXISTS", f"The file {api_path} already exists.")
            _atomic_write(target, body)
            return Reply(204, raw=b"")
        if not target.is_file():
            raise _not_found("The file being accessed is not found.", "NOT_FOUND")
        if method == "DELETE":
            target.unlink()
            return Reply(204, raw=b"")
        if method not in ("GET", "HEAD"):
            raise ApiError(405, "METHOD_NOT_ALLOWED", f"Method {method} not allowed.")
        stat = target.stat()
        headers = {
            "Content-Type": "application/octet-stream",
            "Last-Modified": formatdate(stat.st_mtime, usegmt=True),
        }
        content = target.read_bytes() if method == "GET" else b""
        headers["Content-Length"] = str(stat.st_size)
        return Reply(200, raw=content, headers=headers)

    def _directories(self, method: str, api_path: str, query: dict, body: bytes) -> Reply:
        target = self._volume_path(api_path)
        if method == "PUT":
            for parent in (target, *target.parents):
                if parent.is_file():
                    raise ApiError(409, "ALREADY_EXISTS", f"A file exists on the path {api_path}.")
                if parent == self.volumes_root:
                    break
            target.mkdir(parents=True, exist_ok=True)
            return Reply(204, raw=b"")
        if not target.is_dir():
            raise _not_found("The directory being accessed is not found.", "NOT_FOUND")
        if method == "HEAD":
            return Reply(200, raw=b"")
        if method == "DELETE":
            if any(target.iterdir()):
                raise ApiError(
                    400,
                    "BAD_REQUEST",
                    "The directory being deleted is not empty.",
                    [
                        {
                            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                            "reason": "FILES_API_DIRECTORY_IS_NOT_EMPTY",
                            "domain": "filesystem.databricks.com",
                        }
                    ],
                )
            target.rmdir()
            return Reply(204, raw=b"")
        if method != "GET":
            raise ApiError(405, "METHOD_NOT_ALLOWED", f"Method {method} not allowed.")
        return Reply(200, self._list_directory(target, api_path, query))

    def _list_directory(self, target: Path, api_path: str, query: dict) -> dict:
        page_size = min(int(query.get("page_size") or 1000), 1000)
        start = int(query.get("page_token") or 0)
        children = sorted(target.iterdir())
        contents = []
        for child in children[start : start + page_size]:
            stat = child.stat()
            path = f"{api_path.rstrip('/')}/{child.name}"
            entry = {"path": path + "/" if child.is_dir() else path, "name": child.name}
            entry["is_directory"] = child.is_dir()
            if child.is_file():
                entry["file_size"] = stat.st_size
                entry["last_modified"] = int(stat.st_mtime * 1000)
            contents.append(entry)
        reply: dict[str, Any] = {"contents": contents}
        if start + page_size < len(children):
            reply["next_page_token"] = str(start + page_size)
        return reply

    # ----- Unity Catalog

    def _catalog_info(self, name: str) -> dict:
        return {
            "name": name,
            "full_name": name,
            "owner": USER_NAME,
            "catalog_type": "MANAGED_CATALOG",
            "isolation_mode": "OPEN",
            "securable_type": "CATALOG",
            "metastore_id": METASTORE_ID,
            "created_at": _now_ms(),
            "created_by": USER_NAME,
            "updated_at": _now_ms(),
            "updated_by": USER_NAME,
            "browse_only": False,
        }

    def _schema_info(self, catalog: str, name: str, comment: str | None = None) -> dict:
        info = {
            "name": name,
            "catalog_name": catalog,
            "full_name": f"{catalog}.{name}",
            "owner": USER_NAME,
            "catalog_type": "MANAGED_CATALOG",
            "metastore_id": METASTORE_ID,
            "schema_id": str(uuid.uuid4()),
            "securable_type": "SCHEMA",
            "created_at": _now_ms(),
            "created_by": USER_NAME,
            "updated_at": _now_ms(),
            "updated_by": USER_NAME,
            "browse_only": False,
        }
        if comment:
            info["comment"] = comment
        return info

    def _volume_info(self, catalog: str, schema: str, name: str, volume_type: str) -> dict:
        volume_id = str(uuid.uuid4())
        return {
            "name": name,
            "catalog_name": catalog,
            "schema_name": schema,
            "full_name": f"{catalog}.{schema}.{name}",
            "volume_type": volume_type,
            "volume_id": volume_id,
            "storage_location": f"s3://emulated-metastore/{METASTORE_ID}/volumes/{volume_id}",
            "owner": USER_NAME,
            "metastore_id": METASTORE_ID,
            "created_at": _now_ms(),
            "created_by": USER_NAME,
            "updated_at": _now_ms(),
            "updated_by": USER_NAME,
            "browse_only": False,
        }

    def _unity_catalog(
        self, method: str, kind: str, name: str | None, query: dict, body: bytes
    ) -> Reply:
        with self._lock:
            if method == "GET" and name:
                return Reply(200, self._uc_get(kind, name))
            if method == "GET":
                return Reply(200, self._uc_list(kind, query))
            if method == "POST" and not name and kind in ("schemas", "volumes"):
                payload = _json_body(body)
                if kind == "schemas":
                    return Reply(200, self._create_schema(payload))
                return Reply(200, self._create_volume(payload))
            if method == "DELETE" and name and kind == "schemas":
                return Reply(200, self._delete_schema(name, force=query.get("force") == "true"))
        raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{method} {kind}'")

    def _uc_get(self, kind: str, name: str) -> dict:
        if kind == "catalogs":
            if name not in self._catalogs:
                raise _not_found(f"Catalog '{name}' does not exist.", "CATALOG_DOES_NOT_EXIST")
            return self._catalogs[name]
        store = self._schemas if kind == "schemas" else self._volumes
        if name not in store:
            self._require_parents(name.split(".")[:-1])
            label = "Schema" if kind == "schemas" else "Volume"
            raise _not_found(f"{label} '{name}' does not exist.", f"{label.upper()}_DOES_NOT_EXIST")
        return store[name]

    def _uc_list(self, kind: str, query: dict) -> dict:
        if kind == "catalogs":
            return {"catalogs": list(self._catalogs.values())}
        catalog, schema = query.get("catalog_name", ""), query.get("schema_name")
        self._require_parents([catalog] if kind == "schemas" else [catalog, schema or ""])
        if kind == "schemas":
            return {"schemas": [s for s in self._schemas.values() if s["catalog_name"] == catalog]}
        return {
            "volumes": [
                v
                for v in self._volumes.values()
                if (v["catalog_name"], v["schema_name"]) == (catalog, schema)
            ]
        }

    def _require_parents(self, parts: list[str]) -> None:
        """404 with the real code when the catalog (or schema) of a name is missing."""
        if parts and parts[0] not in self._catalogs:
            raise _not_found(f"Catalog '{parts[0]}' does not exist.", "CATALOG_DOES_NOT_EXIST")
        if len(parts) > 1 and ".".join(parts[:2]) not in self._schemas:
            raise _not_found(
                f"Schema '{'.'.join(parts[:2])}' does not exist.", "SCHEMA_DOES_NOT_EXIST"
            )

    def _create_schema(self, body: dict) -> dict:
        name, catalog = body.get("name"), body.get("catalog_name")
        for value, what in ((name, "name"), (catalog, "catalog_name")):
            if not isinstance(value, str) or not _NAME.match(value):
                raise _bad_request(f"Invalid {what}: {value!r}.")
        self._require_parents([catalog])  # type: ignore[list-item]
        full_name = f"{catalog}.{name}"
        if full_name in self._schemas:
            # 409 maps to the SDK's ResourceConflict; the specific error_code is unverified, so
            # this is the least specific one: code that works here works against either.
            raise ApiError(409, "SCHEMA_ALREADY_EXISTS", f"Schema '{name}' already exists")
        return self._add_schema(catalog, name, body.get("comment"))  # type: ignore[arg-type]

    def _add_schema(self, catalog: str, name: str, comment: str | None = None) -> dict:
        """A new schema, and the folder of its managed tables (the stand-in catalog's database)."""
        self._schemas[f"{catalog}.{name}"] = self._schema_info(catalog, name, comment)
        self.unity_tables_dir(catalog, name).mkdir(parents=True, exist_ok=True)
        return self._schemas[f"{catalog}.{name}"]

    def unity_tables_dir(self, catalog: str, schema: str) -> Path:
        """Where the clusters' catalog keeps the managed tables of ``catalog.schema``."""
        return unity_names.table_dir(self.unity_tables_root, catalog, schema, "_").parent

    def _delete_schema(self, full_name: str, *, force: bool) -> dict:
        """Drop a schema; with ``force`` its volumes and their files too, else it must be empty."""
        self._uc_get("schemas", full_name)  # 404 with the real codes when it does not exist
        volumes = [name for name in self._volumes if name.rsplit(".", 1)[0] == full_name]
        if volumes and not force:
            raise _bad_request(
                f"Schema '{full_name}' is not empty. The schema has 0 tables(s), 0 functions(s), "
                f"{len(volumes)} volumes(s)",
                "SCHEMA_NOT_EMPTY",
            )
        for name in volumes:
            del self._volumes[name]
            shutil.rmtree(self.volumes_root / name.replace(".", "/"), ignore_errors=True)
        del self._schemas[full_name]
        shutil.rmtree(self.unity_tables_dir(*full_name.split(".")), ignore_errors=True)
        return {}

    def _create_volume(self, body: dict) -> dict:
        catalog, schema, name = body.get("catalog_name"), body.get("schema_name"), body.get("name")
        for value, what in ((catalog, "catalog_name"), (schema, "schema_name"), (name, "name")):
            if not isinstance(value, str) or not _NAME.match(value):
                raise _bad_request(f"Invalid {what}: {value!r}.")
        volume_type = body.get("volume_type")
        if volume_type not in ("MANAGED", "EXTERNAL"):
            raise _bad_request(f"Invalid volume_type: {volume_type!r}.")
        if volume_type == "EXTERNAL" and not body.get("storage_location"):
            raise _bad_request("storage_location is required for an EXTERNAL volume.")
        self._require_parents([catalog, schema])  # type: ignore[list-item]
        full_name = f"{catalog}.{schema}.{name}"
        if full_name in self._volumes:
            raise ApiError(409, "VOLUME_ALREADY_EXISTS", f"Volume '{full_name}' already exists")
        self._volumes[full_name] = self._volume_info(catalog, schema, name, volume_type)  # type: ignore[arg-type]
        (self.volumes_root / catalog / schema / name).mkdir(parents=True, exist_ok=True)  # type: ignore[operator]
        return self._volumes[full_name]

    # ----- clusters, secrets

    def _clusters_get(self, query: dict) -> dict:
        cluster_id = query.get("cluster_id", "")
        with self._lock:
            job_cluster = self._job_clusters.get(cluster_id)
        if job_cluster is not None:
            return job_cluster
        if cluster_id not in self.clusters:
            raise _bad_request(f"Cluster {cluster_id} does not exist")
        return {
            "cluster_id": cluster_id,
            "cluster_name": f"emulated-{cluster_id}",
            "spark_version": self.clusters[cluster_id],
            "state": "RUNNING",
            "num_workers": 0,
            "creator_user_name": USER_NAME,
            "data_security_mode": self.cluster_access_mode,
            **(
                {"single_user_name": USER_NAME} if self.cluster_access_mode == "SINGLE_USER" else {}
            ),
        }

    def _permissions_update(self, object_type: str, object_id: str, body: dict) -> dict:
        acl = body.get("access_control_list")
        if not isinstance(acl, list):
            raise _bad_request("access_control_list must be a list.")
        with self._lock:
            self.permissions.setdefault((object_type, object_id), []).extend(acl)
            granted = list(self.permissions[(object_type, object_id)])
        return {
            "object_id": f"/{object_type}/{object_id}",
            "object_type": object_type.removesuffix("s"),
            "access_control_list": [
                {**entry, "all_permissions": [{"permission_level": entry.get("permission_level")}]}
                for entry in granted
            ],
        }

    def _secrets_get(self, query: dict) -> dict:
        scope, key = query.get("scope", ""), query.get("key", "")
        if (scope, key) not in self.secrets:
            raise _not_found(f"Failed to get secret '{key}' in scope '{scope}'.")
        value = self.secrets[(scope, key)].encode()
        return {"key": key, "value": base64.b64encode(value).decode()}

    # ----- Jobs: one-time runs

    def _runs_submit(self, body: dict) -> dict:
        tasks = body.get("tasks")
        if not isinstance(tasks, list) or not tasks:
            raise _bad_request("A run needs at least one task in 'tasks'.")
        token = body.get("idempotency_token")
        with self._lock:
            if token and token in self._idempotency:
                return {"run_id": self._idempotency[token]}
            run_id = next(self._ids)
            task_runs = [self._task_run(task, body) for task in tasks]
            run = Run(run_id, body, task_runs, start_time=_now_ms())
            run.set_state("PENDING", None, "Waiting for cluster")
            self.runs[run_id] = run
            if token:
                self._idempotency[token] = run_id
        thread = threading.Thread(target=self._execute, args=(run,), name=f"run-{run_id}")
        thread.daemon = True
        self._threads.append(thread)
        thread.start()
        return {"run_id": run_id}

    def _task_run(self, task: dict, body: dict) -> TaskRun:
        key = task.get("task_key")
        if not key:
            raise _bad_request("Task key must be specified.")
        if "spark_python_task" not in task or not task["spark_python_task"].get("python_file"):
            raise _bad_request(
                f"Task {key}: this emulation runs only spark_python_task with a python_file."
            )
        existing = task.get("existing_cluster_id")
        computes = [
            k for k in ("new_cluster", "existing_cluster_id", "environment_key") if task.get(k)
        ]
        if len(computes) != 1:
            raise _bad_request(
                f"Task {key} needs exactly one of new_cluster, existing_cluster_id or "
                f"environment_key; got {computes or 'none'}."
            )
        if existing and existing not in self.clusters:
            raise _bad_request(f"Cluster {existing} does not exist")
        if task.get("environment_key"):
            keys = {e.get("environment_key") for e in body.get("environments") or []}
            if task["environment_key"] not in keys:
                raise _bad_request(
                    f"Task {key} uses environment_key {task['environment_key']!r}, which is not "
                    "defined in 'environments'."
                )
        task_run_id = next(self._ids)
        cluster_id = existing or f"0101-000000-emu{task_run_id:05d}"
        return TaskRun(task_run_id, key, task, cluster_id)

    def _runs_get(self, query: dict) -> dict:
        run = self._run(query.get("run_id"))
        return self._run_json(run)

    def _run(self, raw_id: Any) -> Run:
        try:
            run_id = int(raw_id)
        except (TypeError, ValueError):
            raise _bad_request(f"Invalid run_id: {raw_id!r}") from None
        run = self.runs.get(run_id)
        if run is None:
            raise _bad_request(f"Run {run_id} does not exist.")
        return run

    def _state_json(self, life_cycle: str, result: str | None, message: str, user: bool) -> dict:
        state: dict[str, Any] = {
            "life_cycle_state": life_cycle,
            "state_message": message,
            "user_cancelled_or_timedout": user,
        }
        if result:
            state["result_state"] = result
        return state

    def _run_json(self, run: Run) -> dict:
        tasks = []
        for task in run.tasks:
            entry = {
                "run_id": task.run_id,
                "task_key": task.task_key,
                "state": self._state_json(
                    task.life_cycle_state,
                    task.result_state,
                    task.state_message,
                    run.user_cancelled_or_timedout,
                ),
                "spark_python_task": task.spec["spark_python_task"],
                "cluster_instance": {"cluster_id": task.cluster_id, "spark_context_id": "1"},
                "start_time": task.start_time,
                "end_time": task.end_time,
                "attempt_number": 0,
                "run_page_url": f"{self.host}/#job/0/run/{task.run_id}",
            }
            for key in ("new_cluster", "existing_cluster_id", "environment_key", "libraries"):
                if key in task.spec:
                    entry[key] = task.spec[key]
            tasks.append(entry)
        return {
            "job_id": 0,
            "run_id": run.run_id,
            "number_in_job": run.run_id,
            "original_attempt_run_id": run.run_id,
            "creator_user_name": USER_NAME,
            "run_name": run.spec.get("run_name", "Untitled"),
            "run_type": "SUBMIT_RUN",
            "format": "MULTI_TASK",
            "run_page_url": f"{self.host}/#job/0/run/{run.run_id}",
            "start_time": run.start_time,
            "end_time": run.end_time,
            "setup_duration": 0,
            "execution_duration": 0,
            "cleanup_duration": 0,
            "state": self._state_json(
                run.life_cycle_state,
                run.result_state,
                run.state_message,
                run.user_cancelled_or_timedout,
            ),
            "tasks": tasks,
        }

    def _runs_get_output(self, query: dict) -> dict:
        raw_id = query.get("run_id")
        with self._lock:
            for run in self.runs.values():
                if str(run.run_id) == str(raw_id):
                    raise _bad_request(
                        "Retrieving the output of runs with multiple tasks is not supported. "
                        "Please retrieve the output of each individual task run instead."
                    )
                for task in run.tasks:
                    if str(task.run_id) == str(raw_id):
                        return self._task_output(run, task)
        raise _bad_request(f"Run {raw_id} does not exist.")

    def _task_output(self, run: Run, task: TaskRun) -> dict:
        metadata_json = self._run_json(run)
        metadata_json.update(
            {
                "run_id": task.run_id,
                "task_key": task.task_key,
                "run_page_url": f"{self.host}/#job/0/run/{task.run_id}",
                "state": self._state_json(
                    task.life_cycle_state,
                    task.result_state,
                    task.state_message,
                    run.user_cancelled_or_timedout,
                ),
            }
        )
        del metadata_json["tasks"]
        output: dict[str, Any] = {"metadata": metadata_json}
        logs = task.logs()
        if logs:
            output["logs"] = logs[-5_000_000:]
            output["logs_truncated"] = len(logs) > 5_000_000
        if task.error:
            output["error"] = task.error
            output["error_trace"] = task.error_trace or ""
        return output

    def _runs_cancel(self, body: dict) -> dict:
        run = self._run(body.get("run_id"))
        self._cancel(run)
        return {}

    def _cancel(self, run: Run) -> None:
        """Cancel a run; a finished run is left as it is (the real service answers 200)."""
        with self._lock:
            if run.done.is_set() or run.cancel_requested:
                return
            run.cancel_requested = True
            processes = [t.process for t in run.tasks if t.process and t.process.poll() is None]
        for process in processes:
            _kill_group(process)

    # ----- execution (the emulated cluster)

    def _execute(self, run: Run) -> None:
        try:
            self._execute_tasks(run)
        except Exception as error:  # an emulator bug must still end the run, visibly
            logger.exception("emulated run %s crashed", run.run_id)
            run.set_state("INTERNAL_ERROR", "FAILED", f"Emulator error: {error}")
        finally:
            run.end_time = _now_ms()
            for task in run.tasks:
                task.end_time = task.end_time or run.end_time
            run.done.set()

    def _execute_tasks(self, run: Run) -> None:
        deadline = (
            time.monotonic() + run.spec["timeout_seconds"]
            if run.spec.get("timeout_seconds")
            else None
        )
        waited = 0.0
        while waited < self.pending_seconds and not run.cancel_requested:
            time.sleep(0.05)
            waited += 0.05
        for index, task in enumerate(run.tasks):
            if run.cancel_requested:
                self._end(run, task, "CANCELED", "Run cancelled.", user=True)
                continue
            if run.result_state is not None:
                task.life_cycle_state, task.result_state = "SKIPPED", None
                task.state_message = "An upstream task failed."
                continue
            failure = self._prepare(run, task)
            if failure is not None:
                task.life_cycle_state, task.result_state = "INTERNAL_ERROR", "FAILED"
                task.state_message = failure
                run.set_state("INTERNAL_ERROR", "FAILED", failure)
                continue
            task_deadline = deadline
            if task.spec.get("timeout_seconds"):
                own = time.monotonic() + task.spec["timeout_seconds"]
                task_deadline = min(own, deadline) if deadline else own
            self._run_task(run, task, task_deadline, last=index == len(run.tasks) - 1)

    def _prepare(self, run: Run, task: TaskRun) -> str | None:
        """Check access mode, libraries, dependencies and Python: why the run must fail, or None."""
        new_cluster = task.spec.get("new_cluster") or {}
        mode = new_cluster.get("data_security_mode")
        if new_cluster and mode not in UNITY_CATALOG_ACCESS_MODES:
            # A real cluster starts, then the first three-part name fails; the task ends alike.
            return (
                "[REQUIRES_SINGLE_PART_NAMESPACE] Unity Catalog is not available on this cluster: "
                f"data_security_mode {mode or 'not set'} (the cluster has no Unity Catalog access)"
            )
        if mode == "SINGLE_USER" and new_cluster.get("single_user_name") != USER_NAME:
            return (
                f"Single-user cluster for {new_cluster.get('single_user_name') or 'nobody'}: "
                f"the run's user {USER_NAME} cannot use it"
            )
        spark_version = (task.spec.get("new_cluster") or {}).get(
            "spark_version"
        ) or self.clusters.get(task.spec.get("existing_cluster_id", ""))
        have = emulated_runtime.runtime_python().version
        if spark_version:
            wanted = python_for_spark_version(spark_version)
            if wanted and wanted != have:
                message = (
                    f"spark_version {spark_version} runs Python {wanted[0]}.{wanted[1]}; the "
                    f"emulated cluster runs Python {have[0]}.{have[1]}"
                )
                if self.strict_python_version:
                    return f"Emulator refused the cluster: {message}."
                run.warnings.append(message)
                logger.warning("run %s: %s", run.run_id, message)
        mismatch = emulated_runtime.python_mismatch()
        if mismatch and mismatch not in run.warnings:
            run.warnings.append(mismatch)
        libraries, shipped = self._libraries(run, task)
        try:
            runtime = emulated_runtime.prepare_task(libraries, self.runs_root / str(task.run_id))
        except emulated_runtime.LibraryInstallError as error:
            library = error.library or next(iter(libraries), None)
            if library is None:  # the base runtime itself could not be built
                return f"Emulator could not build the runtime: {error.message}"
            return self._install_failure(task, library, error.message)
        task.runtime = emulated_runtime.TaskRuntime(runtime.python, (*runtime.sys_path, *shipped))
        run.warnings.extend(runtime.warnings)
        return None

    def _install_failure(
        self, task: TaskRun, library: emulated_runtime.Library, message: str
    ) -> str:
        """The run's state message when ``library`` did not install, worded as Databricks does."""
        if task.spec.get("environment_key"):
            return f"Failed to install the environment dependency {library.spec}: {message}"
        if library.kind == "pypi":
            return (
                "Library installation failed for library due to user error for pypi {\n"
                f'  package: "{library.spec}"\n}}\n. Error messages:\n{message}'
            )
        return (
            f'Library installation failed for library due to user error for whl: "{library.spec}"'
            f"\n. Error messages:\n{message}"
        )

    def _environment(self, run: Run, task: TaskRun) -> dict:
        key = task.spec.get("environment_key")
        for environment in run.spec.get("environments") or []:
            if key and environment.get("environment_key") == key:
                return environment.get("spec") or {}
        return {}

    def _libraries(
        self, run: Run, task: TaskRun
    ) -> tuple[list[emulated_runtime.Library], list[str]]:
        """What the task declares to install, and the shipped paths that are not wheels.

        Cluster ``libraries`` (``pypi`` and ``whl``) and serverless ``dependencies`` (a requirement,
        or a path: ``/Volumes/...``, ``dbfs:/...``). A ``.whl`` path is installed; another path (a
        zip or a folder) goes on ``sys.path`` as it is (see the module docstring).
        """
        libraries: list[emulated_runtime.Library] = []
        shipped: list[str] = []
        declared = [
            ("whl", d) if d.startswith(("/", "dbfs:")) else ("pypi", d)
            for d in self._environment(run, task).get("dependencies") or []
        ]
        for library in task.spec.get("libraries") or []:
            if "pypi" in library:
                declared.append(("pypi", library["pypi"].get("package", "")))
            elif "whl" in library:
                declared.append(("whl", library["whl"]))
            else:
                run.warnings.append(f"library {library} is not installed by the emulator")
        for kind, spec in declared:
            if kind == "pypi":
                libraries.append(emulated_runtime.Library("pypi", spec))
            elif spec.endswith(".whl"):
                libraries.append(emulated_runtime.Library("whl", spec, self._host_path(spec)))
            else:
                shipped.append(_cluster_local(spec))
        return libraries, shipped

    def _host_path(self, path: str) -> Path | None:
        """Where a cluster path (``dbfs:/``, ``/dbfs``, ``/Volumes``, ``/Workspace``) is here."""
        local = _cluster_local(path)
        for mount, folder in (
            ("/dbfs", self.dbfs_root),
            ("/Volumes", self.volumes_root),
            ("/Workspace", self.workspace_root),
        ):
            if local == mount or local.startswith(mount + "/"):
                try:
                    return _inside(folder, local.removeprefix(mount) or "/")
                except ApiError:
                    return None
        return None

    def _cluster_env(self, run: Run, task: TaskRun, spec_path: Path) -> dict[str, str]:
        env = {
            key: os.environ[key]
            for key in ("PATH", "HOME", "LANG", "JAVA_HOME", "TZ")
            if key in os.environ
        }
        env.update((task.spec.get("new_cluster") or {}).get("spark_env_vars") or {})
        sys_path = task.runtime.sys_path if task.runtime else ()
        env.update(
            {
                "DATABRICKS_HOST": self.host,
                "DATABRICKS_TOKEN": self.cluster_token,
                # Spark's Python workers: the task's interpreter, with what the task ships through
                # PYTHONPATH (the -I driver ignores it), no user site-packages, no cwd on sys.path.
                "PYSPARK_PYTHON": str(self._task_python(task)),
                "PYSPARK_DRIVER_PYTHON": str(self._task_python(task)),
                "PYTHONPATH": os.pathsep.join(sys_path),
                "PYTHONNOUSERSITE": "1",
                "PYTHONSAFEPATH": "1",
                "EMULATED_CLUSTER_SPEC": str(spec_path),
            }
        )
        if self.set_runtime_version:
            spark_version = (task.spec.get("new_cluster") or {}).get(
                "spark_version"
            ) or self.clusters.get(task.spec.get("existing_cluster_id", ""), "")
            if task.spec.get("environment_key"):
                client = self._environment(run, task).get(
                    "environment_version"
                ) or self._environment(run, task).get("client", "2")
                env["DATABRICKS_RUNTIME_VERSION"] = f"client.{client}"
            elif spark_version:
                env["DATABRICKS_RUNTIME_VERSION"] = ".".join(spark_version.split(".")[:2])
        env.update(self.cluster_env)
        return env

    def _run_task(self, run: Run, task: TaskRun, deadline: float | None, last: bool) -> None:
        run_dir = self.runs_root / str(task.run_id)
        task.scratch_dir = run_dir / "scratch"
        task.scratch_dir.mkdir(parents=True)
        task.stdout_path, task.stderr_path = run_dir / "stdout", run_dir / "stderr"
        python_task = task.spec["spark_python_task"]
        new_cluster = task.spec.get("new_cluster") or {}
        log_destination = ((new_cluster.get("cluster_log_conf") or {}).get("dbfs") or {}).get(
            "destination", ""
        )
        if new_cluster:
            with self._lock:
                self._job_clusters[task.cluster_id] = {
                    "cluster_id": task.cluster_id,
                    "cluster_name": f"job-{run.run_id}-run-{task.run_id}",
                    "creator_user_name": USER_NAME,
                    "cluster_source": "JOB",
                    "state": "RUNNING",
                    **new_cluster,
                }
        spec = {
            "python_file": _cluster_local(python_task["python_file"]),
            "parameters": list(python_task.get("parameters") or []),
            "extra_sys_path": list(task.runtime.sys_path if task.runtime else ()),
            "spark_conf": self._runtime_conf(
                {**self.spark_conf, **(new_cluster.get("spark_conf") or {})}
            ),
            "cloudfiles_stand_in": self._cloudfiles_stand_in(run_dir),
            "cluster_id": task.cluster_id,
            "spark_version": new_cluster.get("spark_version", ""),
            "cluster_log_destination": log_destination,
            "start_spark": self.start_spark,
            # Serverless compute is Spark Connect: the task gets a Connect session of a local
            # server, so its foreachBatch functions run out of its process.
            "spark_connect": bool(task.spec.get("environment_key")),
            "result_path": str(run_dir / "result.json"),
        }
        spec_path = run_dir / "cluster_spec.json"
        spec_path.write_text(json.dumps(spec))
        # The script is copied out: the checkout it lives in may be hidden from the cluster.
        script = shutil.copy(CLUSTER_SCRIPT, run_dir / CLUSTER_SCRIPT.name)
        command = [
            "unshare", "-m", "--propagation", "private", "sh", "-c",
            'set -e; for d in /dbfs /Volumes /Workspace; do mkdir -p "$d"; done; '
            'mount --bind "$1" /dbfs; mount --bind "$2" /Volumes; mount --bind "$3" /Workspace; '
            + self._hide_script(run_dir) + 'shift 3; exec "$@"',
            "emulated-cluster", str(self.dbfs_root), str(self.volumes_root),
            str(self.workspace_root), str(self._task_python(task)), "-I", str(script),
        ]  # fmt: skip
        with self._lock:
            if run.cancel_requested:
                self._end(run, task, "CANCELED", "Run cancelled.", user=True)
                return
            with task.stdout_path.open("wb") as out, task.stderr_path.open("wb") as err:
                task.process = subprocess.Popen(
                    command,
                    cwd=task.scratch_dir,
                    env=self._cluster_env(run, task, spec_path),
                    stdout=out,
                    stderr=err,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            task.start_time = _now_ms()
            task.life_cycle_state = "RUNNING"
            run.set_state("RUNNING", None, "In run")
        timed_out = False
        while task.process.poll() is None:
            if deadline and time.monotonic() > deadline:
                timed_out = True
                _kill_group(task.process)
            time.sleep(0.1)
        result = _read_json(run_dir / "result.json")
        task.error, task.error_trace = result.get("error"), result.get("error_trace")
        if timed_out:
            seconds = run.spec.get("timeout_seconds") or task.spec.get("timeout_seconds")
            self._end(run, task, "TIMEDOUT", f"Run timed out after {seconds} seconds.", user=True)
        elif run.cancel_requested:
            self._end(run, task, "CANCELED", "Run cancelled.", user=True)
        elif task.process.returncode == 0:
            task.life_cycle_state, task.result_state, task.state_message = (
                "TERMINATED",
                "SUCCESS",
                "",
            )
            if last and run.result_state is None:
                run.set_state("TERMINATED", "SUCCESS", "")
        else:
            if not task.error:
                tail = task.stderr_path.read_text(errors="replace").strip().splitlines() or [""]
                task.error = (
                    tail[-1] or f"The Python process exited with code {task.process.returncode}"
                )
            task.life_cycle_state, task.result_state = "TERMINATED", "FAILED"
            task.state_message = "Workload failed, see run output for details"
            run.set_state(
                "TERMINATED",
                "FAILED",
                f"Task {task.task_key} failed with message: Workload failed, see run output for "
                "details. This caused all downstream tasks to get skipped.",
            )
        task.end_time = _now_ms()
        self._deliver_logs(task, log_destination)
        with self._lock:
            if task.cluster_id in self._job_clusters:
                self._job_clusters[task.cluster_id]["state"] = "TERMINATED"

    def _stand_ins(self) -> bool:
        """Whether tasks get the runtime's stand-ins: on a Databricks runtime, with Spark."""
        return self.set_runtime_version and self.start_spark

    def _runtime_conf(self, conf: dict[str, str]) -> dict[str, str]:
        """`conf` plus, on a Databricks runtime, the stand-in catalog of every catalog here.

        Three-part names ``catalog.schema.table`` resolve to managed Delta tables under
        `unity_tables_root` (`standins/unity_names.py`: no metastore, a schema is a folder, so
        runs on several clusters may use the tables at once).
        """
        if not self._stand_ins():
            return conf
        jar = unity_names.build_catalog_jar(
            emulated_runtime.runtime_root() / "standins", unity_names.default_classpath()
        )
        with self._lock:
            catalogs = sorted(self._catalogs)
        stand_in = unity_names.catalog_conf(jar, catalogs, self.unity_tables_root)
        return unity_names.merge_conf(conf, stand_in)

    def _cloudfiles_stand_in(self, run_dir: Path) -> str:
        """The Auto Loader stand-in's module, copied for the task to install ('' off Databricks)."""
        if not self._stand_ins():
            return ""
        folder = run_dir / "stand_ins"
        folder.mkdir(exist_ok=True)
        return str(shutil.copy(cloudfiles.__file__, folder / "cloudfiles.py"))

    def _deliver_logs(self, task: TaskRun, destination: str) -> None:
        """Cluster log delivery: the driver's stdout/stderr under <destination>/<cluster>/driver."""
        if not destination:
            return
        driver = self._dbfs_path(destination) / task.cluster_id / "driver"
        driver.mkdir(parents=True, exist_ok=True)
        for source in (task.stdout_path, task.stderr_path):
            if source is not None and source.exists():
                shutil.copyfile(source, driver / source.name)

    def _task_python(self, task: TaskRun) -> Path:
        """The task's interpreter: its library layer's, or the base runtime's."""
        if task.runtime is not None:
            return task.runtime.python
        return emulated_runtime.build_runtime().python

    def _hide_script(self, run_dir: Path) -> str:
        """Shell lines that cover each hidden path with tmpfs, keeping the venv visible."""
        lines = []
        for index, hidden in enumerate(self.hide_paths):
            if not hidden.is_dir():
                continue
            kept = [
                k for k in self.keep_paths if k.is_dir() and (k == hidden or hidden in k.parents)
            ]
            stages = []
            for number, keep in enumerate(kept):
                stage = run_dir / f"keep-{index}-{number}"
                stage.mkdir()
                stages.append((quote(str(keep)), quote(str(stage))))
                lines.append(f"mount --bind {stages[-1][0]} {stages[-1][1]}; ")
            lines.append(f"mount -t tmpfs tmpfs {quote(str(hidden))}; ")
            for keep, stage in stages:
                lines.append(f"mkdir -p {keep}; mount --bind {stage} {keep}; ")
        return "".join(lines)

    def _end(self, run: Run, task: TaskRun, result: str, message: str, user: bool) -> None:
        task.life_cycle_state, task.result_state, task.state_message = "TERMINATED", result, message
        task.end_time = _now_ms()
        run.user_cancelled_or_timedout = user
        run.set_state("TERMINATED", result, message)


def _permission_message(method: str, path: str) -> str:
    """A message shaped like the real one for the denied call."""
    volume = re.match(r"^/api/2\.0/fs/(?:files|directories)/Volumes/([^/]+)/([^/]+)/([^/]+)", path)
    if volume:
        privilege = "READ VOLUME" if method in ("GET", "HEAD") else "WRITE VOLUME"
        return f"User does not have {privilege} on Volume '{'.'.join(volume.groups())}'."
    uc = re.match(r"^/api/2\.1/unity-catalog/(catalogs|schemas|volumes)(?:/(.+))?", path)
    if uc:
        kind, name = uc.groups()
        if method == "POST":
            parent = "Catalog" if kind == "schemas" else "Schema"
            return f"User does not have CREATE {kind[:-1].upper()} on {parent}."
        return f"User does not have USE {kind[:-1].upper()} on {kind[:-1].title()} '{name}'."
    if "/jobs/" in path:
        return f"User {USER_NAME} does not have Manage Run or Owner or Admin permissions on job 0"
    return f"User {USER_NAME} does not have permission to {method} {path}."


def _json_body(body: bytes) -> dict:
    if not body:
        return {}
    try:
        parsed = json.loads(body)
    except ValueError:
        raise ApiError(400, "MALFORMED_REQUEST", "Could not parse request object.") from None
    if not isinstance(parsed, dict):
        raise ApiError(400, "MALFORMED_REQUEST", "Request body must be a JSON object.")
    return parsed


def _b64(data: Any) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (ValueError, TypeError):
        raise _bad_request("The data is not valid base64.") from None


def _inside(root: Path, absolute: str) -> Path:
    """``root`` joined with an absolute API path; refuses paths that climb out with ``..``."""
    target = (root / absolute.lstrip("/")).resolve()
    if target != root.resolve() and root.resolve() not in target.parents:
        raise _bad_request(f"Invalid path: {absolute}")
    return target


def _atomic_write(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.partial")
    partial.write_bytes(data)
    partial.replace(target)


def _cluster_local(path: str) -> str:
    """Where a task's path is on the cluster: ``dbfs:/x`` is ``/dbfs/x``; ``/Volumes`` stays."""
    if path.startswith("dbfs:"):
        return "/dbfs/" + path.removeprefix("dbfs:").lstrip("/")
    return path


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _kill_group(process: subprocess.Popen) -> None:
    """Stop a task's process group (the Python driver and its JVM): TERM, then KILL."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


def _handler_class(emulator: Emulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            reply = emulator.handle(self.command, self.path, self.headers, self._body())
            if reply.raw is not None:
                payload = reply.raw
                headers = dict(reply.headers)
            else:
                payload = json.dumps(reply.body).encode()
                headers = {"Content-Type": "application/json", **reply.headers}
            self.send_response(reply.status)
            headers.setdefault("Content-Length", str(len(payload)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _serve  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("emulator: " + format, *args)

    return Handler


@contextmanager
def running_emulator(root: Path, token: str, **options: Any) -> Iterator[Emulator]:
    """Start an :class:`Emulator` on loopback for the block; runs are cancelled when it ends."""
    emulator = Emulator(root, token, **options)
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()
