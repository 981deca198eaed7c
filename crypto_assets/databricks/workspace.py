"""A databricks-sdk `WorkspaceClient` for the deployment's workspace, failing fast and in one line.

The host is `Settings.databricks_host` (DATABRICKS_HOST); the token is read from DATABRICKS_TOKEN
here, where it is used, and handed only to the SDK (it is never a setting, never logged). The SDK
retries a connection error for 300 s by default (`_base_client.py`): the client made here retries
for `retry_timeout_seconds` at most, and `check_reachable` answers in seconds whether the host
accepts connections at all, before anything waits on it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from urllib.parse import urlsplit

from databricks.sdk import WorkspaceClient
from databricks.sdk.config import Config
from databricks.sdk.errors import DatabricksError

from crypto_assets.errors import CryptoAssetsError
from crypto_assets.settings import Settings

TOKEN_VARIABLE = "DATABRICKS_TOKEN"
HOST_VARIABLE = "DATABRICKS_HOST"
# A request that takes longer is a failure; transient errors are retried this long in total.
HTTP_TIMEOUT_SECONDS = 30.0
RETRY_TIMEOUT_SECONDS = 30
CONNECT_TIMEOUT_SECONDS = 5.0


class WorkspaceError(CryptoAssetsError):
    """The workspace cannot be used: no host or token, or the host does not answer."""


def workspace_token(environ: Mapping[str, str] | None = None) -> str:
    """DATABRICKS_TOKEN from `environ` (the process environment by default); one line if unset."""
    token = (os.environ if environ is None else environ).get(TOKEN_VARIABLE, "").strip()
    if not token:
        raise WorkspaceError(
            f"{TOKEN_VARIABLE} is not set: create a personal access token in the workspace "
            f"(Settings > Developer > Access tokens) and export {TOKEN_VARIABLE}"
        )
    return token


def workspace_host(settings: Settings) -> str:
    """The workspace URL of `settings`; one line if DATABRICKS_HOST is unset."""
    host = (settings.databricks_host or "").strip().rstrip("/")
    if not host:
        raise WorkspaceError(
            f"{HOST_VARIABLE} is not set: export {HOST_VARIABLE}=https://<workspace>"
            ".cloud.databricks.com (the URL of the workspace)"
        )
    if not host.startswith(("https://", "http://")):
        raise WorkspaceError(f"{HOST_VARIABLE}={host!r}: expected a URL starting with https://")
    return host


def check_reachable(host: str, timeout_seconds: float = CONNECT_TIMEOUT_SECONDS) -> None:
    """Raise `WorkspaceError` unless `host` accepts a TCP connection within `timeout_seconds`."""
    parts = urlsplit(host)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=timeout_seconds):
            pass
    except socket.gaierror as exc:
        raise WorkspaceError(
            f"cannot reach {host}: the name does not resolve ({exc.strerror}): "
            f"check {HOST_VARIABLE}"
        ) from None
    except TimeoutError:
        raise WorkspaceError(
            f"cannot reach {host}: no answer within {timeout_seconds:g} s: check "
            f"{HOST_VARIABLE} and the network (proxy, VPN, IP access list)"
        ) from None
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise WorkspaceError(
            f"cannot reach {host}: {reason}: check {HOST_VARIABLE} and the network"
        ) from None


def workspace_client(
    settings: Settings,
    environ: Mapping[str, str] | None = None,
    *,
    http_timeout_seconds: float = HTTP_TIMEOUT_SECONDS,
    retry_timeout_seconds: int = RETRY_TIMEOUT_SECONDS,
    check: bool = True,
) -> WorkspaceClient:
    """A client of `settings.databricks_host` with DATABRICKS_TOKEN and short timeouts.

    With `check`, the host must accept a connection first (`check_reachable`).
    """
    host = workspace_host(settings)
    token = workspace_token(environ)
    if check:
        check_reachable(host)
    # auth_type="pat": only this host and token, whatever ~/.databrickscfg or other variables say.
    config = Config(
        host=host,
        token=token,
        auth_type="pat",
        http_timeout_seconds=http_timeout_seconds,
        retry_timeout_seconds=retry_timeout_seconds,
    )
    return WorkspaceClient(config=config)


def error_text(exc: BaseException) -> str:
    """``ClassName: message`` of an SDK error (its cause for a timed-out retry); never a token."""
    if isinstance(exc, TimeoutError) and exc.__cause__ is not None:
        cause = exc.__cause__
        return f"{type(cause).__name__} after retrying ({exc}): {_first_line(cause)}"
    if isinstance(exc, DatabricksError) and exc.error_code:
        return f"{type(exc).__name__} ({exc.error_code}): {_first_line(exc)}"
    return f"{type(exc).__name__}: {_first_line(exc)}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    # The SDK appends its configuration to auth errors ("... Config: host=..., token=***, ...").
    text = text.split(" Config: host=", 1)[0]
    return text.splitlines()[0] if text else "(no message)"
