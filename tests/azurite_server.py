"""A private Azurite blob service for the tests: https on a free loopback port, OAuth on.

``.ci/run`` installs Azurite 3.35.x with npm into ``.azurite/`` (3.35 runs on
Debian's Node 20). The server gets a throwaway CA-signed certificate for
127.0.0.1, keeps everything in memory, and is stopped by its PID.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aiomsal.testing import generate_certificate
from tests.redis_server import _free_port

#: How long a starting Azurite may take to accept connections.
START_TIMEOUT = 30.0
ACCOUNT = "devstoreaccount1"
_ROOT = Path(__file__).resolve().parent.parent


def azurite_binary() -> str | None:
    """``azurite-blob`` from the project-local npm prefix, else from PATH, else None."""
    local = _ROOT / ".azurite" / "node_modules" / ".bin" / "azurite-blob"
    if local.exists() and shutil.which("node"):
        return str(local)
    return shutil.which("azurite-blob")


def missing_azurite_message() -> str:
    return (
        "azurite-blob is not installed: npm install --prefix .azurite azurite@~3.35.0 "
        "(.ci/run does this)"
    )


class AzuriteServer:
    """One ``azurite-blob --oauth basic`` process over https on 127.0.0.1."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="aiomsal-azurite-"))
        ca = generate_certificate("aiomsal Azurite test CA", is_ca=True)
        server = generate_certificate(
            "aiomsal Azurite", issuer=ca, ip_addresses=("127.0.0.1",), dns_names=("localhost",)
        )
        self.ca_file = self.dir / "ca.pem"
        self.ca_file.write_bytes(ca.certificate_pem)
        (self.dir / "cert.pem").write_bytes(server.certificate_pem + ca.certificate_pem)
        (self.dir / "key.pem").write_bytes(server.private_key_pem)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def account_url(self) -> str:
        return f"https://127.0.0.1:{self.port}/{ACCOUNT}"

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        context.verify_flags &= ~ssl.VERIFY_X509_STRICT
        return context

    def start(self) -> None:
        args = [
            self.binary,
            "--blobHost", "127.0.0.1",
            "--blobPort", str(self.port),
            "--oauth", "basic",
            "--cert", str(self.dir / "cert.pem"),
            "--key", str(self.dir / "key.pem"),
            "--inMemoryPersistence",
            "--disableTelemetry",
            "--skipApiVersionCheck",
            "--silent",
        ]  # fmt: skip
        log = open(self.dir / "azurite.log", "wb")  # noqa: SIM115 - closed with the process
        self._process = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=self.dir, env={**os.environ, "AZURITE_SKIP_API_VERSION_CHECK": "true"},
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Azurite did not start: {(self.dir / 'azurite.log').read_text()}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@contextmanager
def azurite_server(binary: str) -> Iterator[AzuriteServer]:
    server = AzuriteServer(binary)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)
