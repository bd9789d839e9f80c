"""``dialer serve --certfile --keyfile`` serves HTTPS and marks the session cookie Secure.

Starts the real command as a subprocess on 127.0.0.1 with a self-signed certificate made here,
and talks to it with certificate verification against that certificate.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dialer.actors import Role
from dialer.settings import Settings
from dialer.storage import create_engine, create_session_factory, upgrade_database
from dialer.users import create_user

REPOSITORY = Path(__file__).resolve().parents[2]
STARTUP_DEADLINE_SECONDS = 60.0
PASSWORD = "served over tls"


def write_self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dialer test")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certificate_path = directory / "cert.pem"
    key_path = directory / "key.pem"
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return certificate_path, key_path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _prepare_database(settings: Settings) -> None:
    await upgrade_database(settings.database_url)
    engine = create_engine(settings.database_url)
    try:
        async with create_session_factory(engine)() as database:
            await create_user(
                database,
                None,
                settings,
                login="tls-admin",
                password=PASSWORD,
                display_name="TLS",
                role=Role.ADMIN,
            )
            await database.commit()
    finally:
        await engine.dispose()


def _wait_until_listening(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"dialer serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail(
        f"dialer serve did not listen within {STARTUP_DEADLINE_SECONDS}s:\n{log.read_text()}"
    )


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    data_dir = tmp_path / "data"
    settings = Settings(
        data_dir=data_dir,
        database_url=f"sqlite+aiosqlite:///{data_dir / 'dialer.db'}",
        recordings_dir=data_dir / "recordings",
        argon2_time_cost=1,
        argon2_memory_kib=1024,
        argon2_parallelism=1,
    )
    asyncio.run(_prepare_database(settings))
    certificate, key = write_self_signed_certificate(tmp_path)
    port = free_port()
    log = tmp_path / "serve.log"
    environment = {
        **os.environ,
        "DIALER_DATA_DIR": str(data_dir),
        "DIALER_DATABASE_URL": settings.database_url,
    }
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "web.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--certfile",
                str(certificate),
                "--keyfile",
                str(key),
            ],
            cwd=REPOSITORY,
            env=environment,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_listening(process, port, log)
        yield port, certificate
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def test_serve_speaks_https_and_sets_secure_cookies(tls_server: tuple[int, Path]) -> None:
    port, certificate = tls_server
    trust = ssl.create_default_context(cafile=str(certificate))
    async with httpx.AsyncClient(
        base_url=f"https://127.0.0.1:{port}", verify=trust, timeout=30
    ) as client:
        schema = await client.get("/api/openapi.json")
        assert schema.status_code == 200
        assert schema.json()["openapi"].startswith("3.1.")

        login = await client.post("/api/session", json={"login": "tls-admin", "password": PASSWORD})
        assert login.status_code == 200, login.text
        cookie = login.headers["set-cookie"]
        attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
        assert {"secure", "httponly"} <= attributes
        assert (await client.get("/api/session")).json()["user"]["login"] == "tls-admin"

    # Without trusting the certificate the connection is refused.
    async with httpx.AsyncClient(base_url=f"https://127.0.0.1:{port}") as untrusting:
        with pytest.raises(httpx.ConnectError):
            await untrusting.get("/api/openapi.json")
