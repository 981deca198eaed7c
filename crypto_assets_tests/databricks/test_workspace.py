"""`workspace_client`: host and token in one line each, short timeouts, errors without the token."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from databricks.sdk.errors import PermissionDenied

from crypto_assets.databricks.workspace import (
    WorkspaceError,
    check_reachable,
    error_text,
    workspace_client,
    workspace_host,
    workspace_token,
)
from crypto_assets.settings import Settings
from crypto_assets_tests.databricks.emulator import running_emulator

TOKEN = "dapi-workspace-test-0123456789"


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("environ", [{}, {"DATABRICKS_TOKEN": ""}, {"DATABRICKS_TOKEN": " \t"}])
def test_a_missing_token_is_one_line_saying_how_to_get_one(environ: dict[str, str]) -> None:
    with pytest.raises(WorkspaceError, match=r"^DATABRICKS_TOKEN is not set: create a personal"):
        workspace_token(environ)


def test_the_token_is_read_from_the_given_environment() -> None:
    assert workspace_token({"DATABRICKS_TOKEN": f" {TOKEN}\n"}) == TOKEN


@pytest.mark.parametrize(
    ("host", "message"),
    [
        (None, r"^DATABRICKS_HOST is not set: export DATABRICKS_HOST=https://"),
        ("  ", r"^DATABRICKS_HOST is not set"),
        (
            "adb-123.azuredatabricks.net",
            r"^DATABRICKS_HOST='adb-123.azuredatabricks.net': expected",
        ),
    ],
)
def test_a_missing_or_malformed_host_is_one_line(host: str | None, message: str) -> None:
    with pytest.raises(WorkspaceError, match=message):
        workspace_host(Settings(databricks_host=host))


def test_the_host_loses_its_trailing_slash() -> None:
    assert workspace_host(Settings(databricks_host="https://x.cloud.databricks.com/")) == (
        "https://x.cloud.databricks.com"
    )


def test_a_refused_connection_is_one_line_at_once() -> None:
    host = f"http://127.0.0.1:{unused_port()}"
    started = time.monotonic()
    with pytest.raises(WorkspaceError) as caught:
        check_reachable(host)
    assert time.monotonic() - started < 5
    assert str(caught.value) == (
        f"cannot reach {host}: connection refused: check DATABRICKS_HOST and the network"
    )


def test_the_client_gives_up_on_an_unreachable_host_after_its_short_retry_timeout() -> None:
    host = f"http://127.0.0.1:{unused_port()}"
    client = workspace_client(
        Settings(databricks_host=host),
        {"DATABRICKS_TOKEN": TOKEN},
        retry_timeout_seconds=2,
        check=False,
    )
    assert client.config.retry_timeout_seconds == 2
    started = time.monotonic()
    with pytest.raises(TimeoutError) as caught:
        client.catalogs.get("takamol_demo")
    assert time.monotonic() - started < 20  # not the SDK's default 300 s
    text = error_text(caught.value)
    assert text.startswith("ConnectionError after retrying (Timed out after 0:00:02): ")
    assert TOKEN not in text


def test_the_client_uses_this_host_and_token_whatever_databrickscfg_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".databrickscfg").write_text(
        "[DEFAULT]\nhost = https://other.cloud.databricks.com\ntoken = dapi-other\n"
    )
    monkeypatch.setenv("HOME", str(home))
    with running_emulator(tmp_path / "workspace", TOKEN, catalogs=("takamol_demo",)) as emulator:
        client = workspace_client(
            Settings(databricks_host=emulator.host), {"DATABRICKS_TOKEN": TOKEN}
        )
        assert client.catalogs.get("takamol_demo").name == "takamol_demo"
        assert client.config.host == emulator.host
        assert client.config.auth_type == "pat"


def test_a_rejected_token_reads_as_its_class_code_and_message_only(tmp_path: Path) -> None:
    wrong = "dapi-wrong-0000"
    with running_emulator(tmp_path / "workspace", TOKEN, catalogs=("takamol_demo",)) as emulator:
        client = workspace_client(
            Settings(databricks_host=emulator.host), {"DATABRICKS_TOKEN": wrong}
        )
        with pytest.raises(PermissionDenied) as caught:
            client.catalogs.get("takamol_demo")
    assert error_text(caught.value) == "PermissionDenied (403): Invalid access token."
