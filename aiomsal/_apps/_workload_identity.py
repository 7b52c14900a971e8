"""Workload identity federation: a projected token file as the client assertion (AKS and others).

Kubernetes (the Azure Workload Identity webhook) writes a short-lived service
account token to ``AZURE_FEDERATED_TOKEN_FILE`` and renews it in place; Entra
accepts it as a client assertion. :class:`FederatedTokenFile` reads it in a
worker thread, only when a token request goes out (never on a cache hit), and
reads it again when the file changed or every few minutes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from .._concurrency._clock import Clock, SystemClock
from .._errors import MsalConfigurationError
from .._protocol._credentials import ClientAssertion
from ._confidential import ConfidentialClientApplication

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._options import ApplicationOptions

__all__ = ["FederatedTokenFile", "workload_identity_application"]

DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"


class FederatedTokenFile:
    """An async assertion source: the content of a token file, re-read when it changes.

    ``check_every`` seconds (of ``clock`` time) after the last look, the file's
    modification time and size are compared (a ``stat`` in a worker thread);
    it is read again when they changed or ``max_age`` seconds have passed.
    Pass it to :class:`aiomsal.ClientAssertion`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Clock | None = None,
        check_every: float = 30.0,
        max_age: float = 300.0,
    ) -> None:
        self.path = os.fspath(path)
        if not self.path:
            raise MsalConfigurationError("the federated token file path is empty")
        self._clock: Clock = clock or SystemClock()
        self._check_every = check_every
        self._max_age = max_age
        self._content: str | None = None
        self._stamp: tuple[int, int] | None = None
        self._read_at = self._checked_at = float("-inf")
        #: How many times the file was read (for tests and diagnostics).
        self.reads = 0

    def __repr__(self) -> str:
        return f"FederatedTokenFile({self.path!r})"

    async def __call__(self) -> str:
        now = self._clock.time()
        if self._content is not None and now - self._checked_at < self._check_every:
            return self._content
        self._checked_at = now
        stale = now - self._read_at >= self._max_age
        content, stamp = await anyio.to_thread.run_sync(self._load, self._stamp, stale)
        if content is not None:
            self._content, self._read_at = content, now
            self.reads += 1
        self._stamp = stamp
        assert self._content is not None
        return self._content

    def _load(
        self, known: tuple[int, int] | None, stale: bool
    ) -> tuple[str | None, tuple[int, int]]:
        """(new content or None when unchanged, the file's stamp); runs in a worker thread."""
        try:
            info = os.stat(self.path)
            stamp = (info.st_mtime_ns, info.st_size)
            if stamp == known and not stale and self._content is not None:
                return None, stamp
            with open(self.path, encoding="utf-8") as handle:
                content = handle.read().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise MsalConfigurationError(
                f"cannot read the federated token file {self.path!r} ({type(exc).__name__})"
            ) from None
        if not content:
            raise MsalConfigurationError(f"the federated token file {self.path!r} is empty")
        return content, stamp


def workload_identity_application(
    *,
    environ: Mapping[str, str] | None = None,
    client_id: str | None = None,
    tenant_id: str | None = None,
    token_file_path: str | None = None,
    authority_host: str | None = None,
    **options: Unpack[ApplicationOptions],
) -> ConfidentialClientApplication:
    """A confidential client authenticated by the federated token file.

    Arguments win over ``AZURE_CLIENT_ID``, ``AZURE_TENANT_ID``,
    ``AZURE_FEDERATED_TOKEN_FILE`` and ``AZURE_AUTHORITY_HOST`` (read from
    ``environ``, ``os.environ`` by default).
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    client = client_id or env.get("AZURE_CLIENT_ID")
    tenant = tenant_id or env.get("AZURE_TENANT_ID")
    path = token_file_path or env.get("AZURE_FEDERATED_TOKEN_FILE")
    host = authority_host or env.get("AZURE_AUTHORITY_HOST") or DEFAULT_AUTHORITY_HOST
    missing = [
        name
        for name, value in (
            ("AZURE_CLIENT_ID", client),
            ("AZURE_TENANT_ID", tenant),
            ("AZURE_FEDERATED_TOKEN_FILE", path),
        )
        if not value
    ]
    if missing:
        raise MsalConfigurationError(
            "workload identity needs " + ", ".join(missing) + " (or the matching arguments)"
        )
    if not (client and tenant and path):  # for the type checker: `missing` was empty
        raise MsalConfigurationError("workload identity is not configured")
    settings: dict[str, Any] = dict(options)
    settings.setdefault("authority", f"{host.rstrip('/')}/{tenant}")
    source = FederatedTokenFile(path, clock=settings.get("clock"))
    return ConfidentialClientApplication(client, ClientAssertion(source), **settings)
