"""Binance-area fixtures: the recording's frames as text, a loopback port nobody listens on,
and a TLS proxy."""

from __future__ import annotations

import asyncio
import datetime
import gzip
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@pytest.fixture(scope="session")
def recording_frames(recording: Path) -> list[str]:
    """The recorded frames (without the receive-time column), in recording order."""
    with gzip.open(recording, "rt", encoding="utf-8") as handle:
        return [line.split(" ", 1)[1].rstrip("\n") for line in handle]


@pytest.fixture
def unused_port_url() -> str:
    """``ws://127.0.0.1:<port>`` where nothing listens (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"ws://127.0.0.1:{port}"


@pytest.fixture
def tls_proxy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], str]]:
    """``wss://`` in front of a loopback ``ws://`` server: a real TLS-terminating proxy.

    Its self-signed certificate (for IP 127.0.0.1) is trusted through websocket-client's
    ``WEBSOCKET_CLIENT_CA_BUNDLE``, so clients verify it as they would a real server's.
    """
    cert_file, key_file = _self_signed_certificate(tmp_path)
    monkeypatch.setenv("WEBSOCKET_CLIENT_CA_BUNDLE", str(cert_file))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="tls-proxy", daemon=True)
    thread.start()
    servers: list[asyncio.Server] = []

    def start(ws_url: str) -> str:
        upstream = urlsplit(ws_url)

        async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while chunk := await reader.read(65536):
                    writer.write(chunk)
                    await writer.drain()
            except OSError:
                pass
            finally:
                writer.close()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            up_reader, up_writer = await asyncio.open_connection(upstream.hostname, upstream.port)
            await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

        async def serve() -> asyncio.Server:
            return await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)

        server = asyncio.run_coroutine_threadsafe(serve(), loop).result(10)
        servers.append(server)
        return f"wss://127.0.0.1:{server.sockets[0].getsockname()[1]}"

    async def shutdown() -> None:
        for server in servers:
            server.close()
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(0.05)  # let the closed transports' callbacks run

    yield start
    asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def _self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "proxy-cert.pem", directory / "proxy-key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file
