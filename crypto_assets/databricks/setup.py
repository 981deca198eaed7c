"""`crypto-assets databricks-setup`: the Unity Catalog objects the Databricks deployment needs.

It checks that the catalog exists (it never creates one: that is a metastore admin's choice),
then creates the schema, the MANAGED Volume and the Volume's folders (`layout.FOLDERS`) when they
are missing. Run twice, the second run creates nothing. Each object is one line, saying whether it
existed or was created. A failure is one line too (`SetupError`), naming what is missing and what
to do; it is decided by databricks-sdk's exception class (and error code), never by a message.

    GET  /api/2.1/unity-catalog/catalogs/{catalog}
    GET  /api/2.1/unity-catalog/schemas/{catalog.schema}      POST .../schemas on 404
    GET  /api/2.1/unity-catalog/volumes/{catalog.schema.vol}  POST .../volumes on 404
    HEAD /api/2.0/fs/directories{path}                        PUT  /api/2.0/fs/directories{path}
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import (
    DatabricksError,
    NotFound,
    PermissionDenied,
    ResourceConflict,
    Unauthenticated,
)
from databricks.sdk.service.catalog import VolumeType

from crypto_assets.databricks.layout import FOLDERS, VolumeLayout
from crypto_assets.databricks.workspace import TOKEN_VARIABLE, error_text
from crypto_assets.errors import CryptoAssetsError

# The error code of a real permission error; an invalid token is a 403 whose error_code is the
# number 403 (databricks-sdk-go#873), which the SDK maps to PermissionDenied as well.
PERMISSION_DENIED = "PERMISSION_DENIED"


class SetupError(CryptoAssetsError):
    """A Unity Catalog object is missing or cannot be created; one line says what to do."""


@dataclass(frozen=True)
class SetupStep:
    """One object of the deployment and whether this run created it."""

    kind: str
    name: str
    created: bool
    detail: str = ""

    def line(self) -> str:
        """``<kind> <name>: created`` or ``... exists`` (with its detail)."""
        state = "created" if self.created else "exists"
        return f"{self.kind} {self.name}: {state}{f' ({self.detail})' if self.detail else ''}"


def set_up(
    client: WorkspaceClient,
    layout: VolumeLayout,
    report: Callable[[SetupStep], None] = lambda step: None,
) -> list[SetupStep]:
    """Check the catalog, create the schema, the Volume and its folders if missing."""
    host = client.config.host
    steps: list[SetupStep] = []

    def done(step: SetupStep) -> None:
        steps.append(step)
        report(step)

    catalog, schema, volume = layout.catalog, layout.schema, layout.full_volume_name
    schema_name = f"{catalog}.{schema}"
    _step(
        host,
        lambda: done(_catalog(client, catalog)),
        missing=f"catalog {catalog} does not exist: create it in Catalog Explorer or set CATALOG",
        denied=f"no permission to use catalog {catalog}: ask for USE CATALOG on {catalog}",
    )
    _step(
        host,
        lambda: done(_schema(client, catalog, schema)),
        missing=f"catalog {catalog} does not exist: create it in Catalog Explorer or set CATALOG",
        denied=f"no permission to create schema {schema_name}: ask for USE CATALOG and "
        f"CREATE SCHEMA on {catalog}",
    )
    _step(
        host,
        lambda: done(_volume(client, layout)),
        missing=f"schema {schema_name} does not exist: run databricks-setup again",
        denied=f"no permission to create volume {volume}: ask for USE SCHEMA and CREATE VOLUME "
        f"on {schema_name}",
    )
    for folder in FOLDERS:
        path = layout.folder(folder)
        _step(
            host,
            lambda path=path: done(_folder(client, path)),
            missing=f"volume {volume} does not exist: run databricks-setup again",
            denied=f"no permission to write to volume {volume}: ask for READ VOLUME and "
            f"WRITE VOLUME on {volume}",
        )
    return steps


def _step(host: str | None, run: Callable[[], None], *, missing: str, denied: str) -> None:
    """Run one step; its SDK errors become a `SetupError` of one line."""
    try:
        run()
    except NotFound as exc:
        raise SetupError(f"{missing} ({error_text(exc)})") from None
    except (Unauthenticated, PermissionDenied) as exc:
        # A PermissionDenied whose code is not PERMISSION_DENIED is the token itself.
        if isinstance(exc, PermissionDenied) and exc.error_code == PERMISSION_DENIED:
            raise SetupError(f"{denied} ({PERMISSION_DENIED}: {exc})") from None
        raise SetupError(
            f"{TOKEN_VARIABLE} is not accepted by {host} ({error_text(exc)}): create a new "
            f"personal access token (Settings > Developer > Access tokens) and export "
            f"{TOKEN_VARIABLE}"
        ) from None
    except TimeoutError as exc:
        raise SetupError(
            f"{host} did not answer in time ({error_text(exc)}): check DATABRICKS_HOST and "
            "the network"
        ) from None
    except DatabricksError as exc:
        raise SetupError(f"the workspace {host} refused a call: {error_text(exc)}") from None
    except OSError as exc:  # requests' connection errors
        raise SetupError(f"cannot reach {host}: {error_text(exc)}") from None


def _create(create: Callable[[], object]) -> bool:
    """Create an object; False when another client created it meanwhile (409)."""
    try:
        create()
    except ResourceConflict:
        return False
    return True


def _catalog(client: WorkspaceClient, catalog: str) -> SetupStep:
    client.catalogs.get(catalog)
    return SetupStep("catalog", catalog, created=False)


def _schema(client: WorkspaceClient, catalog: str, schema: str) -> SetupStep:
    full_name = f"{catalog}.{schema}"
    try:
        client.schemas.get(full_name)
        return SetupStep("schema", full_name, created=False)
    except NotFound:
        pass
    created = _create(lambda: client.schemas.create(name=schema, catalog_name=catalog))
    return SetupStep("schema", full_name, created=created)


def _volume(client: WorkspaceClient, layout: VolumeLayout) -> SetupStep:
    name = layout.full_volume_name
    try:
        info = client.volumes.read(name)
        kind = info.volume_type.value if info.volume_type else ""
        return SetupStep("volume", name, created=False, detail=kind)
    except NotFound:
        pass
    created = _create(
        lambda: client.volumes.create(
            layout.catalog, layout.schema, layout.volume, VolumeType.MANAGED
        )
    )
    return SetupStep("volume", name, created=created, detail=VolumeType.MANAGED.value)


def _folder(client: WorkspaceClient, path: str) -> SetupStep:
    try:
        client.files.get_directory_metadata(path)
        return SetupStep("folder", path, created=False)
    except NotFound:
        pass
    # PUT on a directory is idempotent: it succeeds when the folder exists.
    _create(lambda: client.files.create_directory(path))
    return SetupStep("folder", path, created=True)
