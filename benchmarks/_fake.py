"""A FakeAuthority in a separate process, so that its work is not timed with the client's."""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from types import TracebackType
from typing import IO

__all__ = [
    "CLIENT_ID",
    "CLIENT_SECRET",
    "PUBLIC_CLIENT_ID",
    "TENANT",
    "FakeEndpoint",
    "FakeProcess",
    "user_credentials",
]

CLIENT_ID = "bench-app"
CLIENT_SECRET = "bench-secret"
#: A public client that signs the benchmark's users in (ROPC) to get on-behalf-of assertions.
PUBLIC_CLIENT_ID = "bench-frontend"
TENANT = "contoso"


def user_credentials(i: int) -> tuple[str, str]:
    """The username and password of the ``i``-th user a fake with ``users > i`` registers."""
    return f"user{i:06d}", f"pw-{i:06d}"

_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class FakeEndpoint:
    """Where a running fake authority listens, and how it was configured."""

    base_url: str
    ca_file: str
    latency: float
    token_lifetime: int
    #: Users registered (``user_credentials(i)`` for ``i < users``), with PUBLIC_CLIENT_ID.
    users: int = 0

    @property
    def authority(self) -> str:
        return f"{self.base_url}/{TENANT}"

    @property
    def token_endpoint(self) -> str:
        return f"{self.authority}/oauth2/v2.0/token"

    @property
    def host(self) -> str:
        """``127.0.0.1`` (MSAL Python's cache environment: the host name, without the port)."""
        return self.base_url.split("://", 1)[1].rsplit(":", 1)[0]


class FakeProcess:
    """``python -m aiomsal.testing serve --tls ...`` as a context manager.

    Entering starts the process and waits (at most ``start_timeout`` seconds)
    for the JSON line it prints once listening; leaving always ends it:
    SIGTERM, then SIGKILL if it has not exited within five seconds. With
    ``users``, it also registers the public client PUBLIC_CLIENT_ID and that
    many users (``user_credentials``), for the on-behalf-of scenarios.
    """

    def __init__(
        self,
        *,
        latency: float,
        token_lifetime: int,
        users: int = 0,
        start_timeout: float = _START_TIMEOUT,
    ) -> None:
        self.latency = latency
        self.token_lifetime = token_lifetime
        self.users = users
        self._start_timeout = start_timeout
        self._proc: subprocess.Popen[str] | None = None
        self._stderr: IO[str] | None = None

    def __enter__(self) -> FakeEndpoint:
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _start(self) -> FakeEndpoint:
        command = [
            sys.executable, "-m", "aiomsal.testing", "serve", "--tls",
            "--client", f"{CLIENT_ID}:{CLIENT_SECRET}",
            "--latency", repr(self.latency),
            "--token-lifetime", str(self.token_lifetime),
        ]
        if self.users:
            command += ["--client", PUBLIC_CLIENT_ID]
            for i in range(self.users):
                command += ["--user", ":".join(user_credentials(i))]
        self._stderr = tempfile.TemporaryFile(mode="w+", encoding="utf-8")  # noqa: SIM115
        self._proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=self._stderr, stdin=subprocess.DEVNULL,
            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        stdout = self._proc.stdout
        assert stdout is not None
        deadline = time.monotonic() + self._start_timeout
        with selectors.DefaultSelector() as selector:
            selector.register(stdout, selectors.EVENT_READ)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RuntimeError(f"the fake authority did not start within "
                                       f"{self._start_timeout:.0f} s{self._stderr_tail()}")
                if selector.select(timeout=min(remaining, 0.5)):
                    line = stdout.readline()
                    break
                if self._proc.poll() is not None:
                    raise RuntimeError(f"the fake authority exited with status "
                                       f"{self._proc.returncode}{self._stderr_tail()}")
        try:
            info = json.loads(line)
            base_url, ca_file = str(info["base_url"]), str(info["ca_file"])
        except (ValueError, KeyError, TypeError) as exc:
            raise RuntimeError(f"unexpected first line from the fake authority: {line!r}"
                               f"{self._stderr_tail()}") from exc
        return FakeEndpoint(base_url, ca_file, self.latency, self.token_lifetime, self.users)

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        tail = self._stderr.read()[-2000:].strip()
        return f"; its stderr: {tail}" if tail else ""

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=_STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=_STOP_TIMEOUT)
            if proc.stdout is not None:
                proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
