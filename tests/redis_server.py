"""A private, throwaway redis-server for the tests.

Each :class:`RedisServer` listens on a free loopback port, keeps nothing on
disk (``--save "" --appendonly no``, in its own temporary directory), and can
be killed mid-test to simulate an outage, then restarted on the same port.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: How long a starting server may take to answer PING.
START_TIMEOUT = 10.0


def redis_server_binary() -> str | None:
    """The path of ``redis-server``, or None when it is not installed."""
    return shutil.which("redis-server")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """One redis-server process on 127.0.0.1, optionally requiring a password."""

    def __init__(self, *, password: str | None = None) -> None:
        binary = redis_server_binary()
        if binary is None:
            raise RuntimeError("redis-server is not on PATH")
        self.binary = binary
        self.password = password
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._dir = Path(tempfile.mkdtemp(prefix="aiomsal-redis-"))

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start on a free port (the first time) or on the same port again."""
        if self.running:
            return
        keep_port = self.port != 0
        for _ in range(5):
            if not keep_port:
                self.port = _free_port()
            if self._launch():
                return
        raise RuntimeError(f"redis-server did not start; see {self._dir / 'redis.log'}")

    def _launch(self) -> bool:
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self._dir),
            "--logfile", str(self._dir / "redis.log"),
        ]  # fmt: skip
        if self.password:
            args += ["--requirepass", self.password]
        self._process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                return False  # e.g. the port was taken in the meantime
            if self.ping():
                return True
            time.sleep(0.005)
        self.stop()
        return False

    def ping(self) -> bool:
        """Whether the server answers (PONG, or NOAUTH when a password is required)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                reply = sock.recv(64)
        except OSError:
            return False
        return reply.startswith((b"+PONG", b"-NOAUTH"))

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash or an outage would."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL if it lingers)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def restart(self) -> None:
        """Start again on the same port (after :meth:`kill` or :meth:`stop`)."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Kill the server (it keeps nothing worth a clean shutdown) and remove its directory."""
        self.kill()
        shutil.rmtree(self._dir, ignore_errors=True)


@contextmanager
def redis_server(*, password: str | None = None) -> Iterator[RedisServer]:
    """A started :class:`RedisServer`, stopped and removed on exit."""
    server = RedisServer(password=password)
    try:
        server.start()
        yield server
    finally:
        server.close()


def missing_redis_server_message() -> str:
    ci = (
        " (CI is set: .ci/run installs the Debian package redis-server)"
        if os.environ.get("CI")
        else ""
    )
    return f"redis-server is not on PATH: apt-get install redis-server{ci}"
