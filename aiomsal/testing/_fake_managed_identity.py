"""The shared machinery of the fake managed identity endpoints: serving, faults, token issuing.

Each source's fake (:mod:`._fake_mi_sources`) checks its own request shape and
answers in its own response shape; this base serves it on 127.0.0.1, logs
every request, applies queued faults and signs v1-style access tokens
(``iss`` ``https://sts.windows.net/{tenant}/``, ``aud`` the resource), as a
real managed identity endpoint hands out.
"""

from __future__ import annotations

import asyncio
import collections
import json
import socket
import ssl
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType, TracebackType
from typing import Any, Literal, TypeVar, get_args

import anyio
import anyio.to_thread
from aiohttp import web

from .._concurrency._clock import Clock, SystemClock
from ._fake_tokens import html_error_page, new_uti, retry_after_value, shared_signer
from ._fake_users import tenant_guid

__all__ = [
    "FakeManagedIdentityEndpoint",
    "ManagedIdentityFault",
    "ManagedIdentityRequestRecord",
    "RegisteredIdentity",
]

#: What :meth:`FakeManagedIdentityEndpoint.fail_next` does to a request.
ManagedIdentityFault = Literal["status", "hang", "malformed_json", "html", "drop"]

_SHUTDOWN_TIMEOUT = 2.0
_Fake = TypeVar("_Fake", bound="FakeManagedIdentityEndpoint")


@dataclass(frozen=True, slots=True)
class ManagedIdentityRequestRecord:
    """One request to a fake managed identity endpoint, as it arrived.

    ``headers`` and ``form`` may hold the endpoint's secret, so they stay out of the repr.
    """

    method: str
    path: str
    query: Mapping[str, str]
    #: The resource asked for (query or form), or "".
    resource: str
    time: float
    headers: Mapping[str, str] = field(repr=False)
    form: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class RegisteredIdentity:
    """A managed identity the fake knows: its client, object and ARM resource ids."""

    client_id: str
    object_id: str
    resource_id: str

    def matches(self, kind: str, value: str) -> bool:
        """Whether ``value`` names this identity by ``kind`` (ids compare case-insensitively)."""
        own = {"client_id": self.client_id, "object_id": self.object_id}.get(kind)
        if kind == "resource_id":
            own = self.resource_id
        return own is not None and own.lower() == value.lower()


@dataclass(frozen=True, slots=True)
class _Fault:
    kind: ManagedIdentityFault
    status: int
    retry_after: float | None
    body: Mapping[str, Any] | None


class Reject(Exception):
    """Raised by a source's check to answer with ``status`` and a JSON ``body``."""

    def __init__(
        self, status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


class FakeManagedIdentityEndpoint:
    """A fake managed identity endpoint on 127.0.0.1 (a random port) for tests.

    Subclasses are the sources. Knobs (changeable at any time): ``latency``
    (real seconds added to each answer), ``token_lifetime`` (seconds),
    ``refresh_in`` (sent when set), :meth:`fail_next`; records: ``requests``,
    :meth:`request_counts`. :meth:`environ` gives the environment variables
    that point :class:`aiomsal.ManagedIdentityClient` at the fake.
    """

    #: The URL path of the token endpoint.
    token_path = "/metadata/identity/oauth2/token"
    #: The HTTP method the source uses.
    method = "GET"

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        latency: float = 0.0,
        token_lifetime: int = 86_400,
        refresh_in: int | None = None,
        tenant: str = "managed-identity-tenant",
        system_assigned: bool = True,
    ) -> None:
        self.latency = latency
        self.token_lifetime = token_lifetime
        self.refresh_in = refresh_in
        #: Every request, in arrival order (faulted and rejected ones too).
        self.requests: list[ManagedIdentityRequestRecord] = []
        self.tenant_id = tenant_guid(tenant)
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._system = (
            RegisteredIdentity(str(uuid.uuid4()), str(uuid.uuid4()), "/system-assigned")
            if system_assigned
            else None
        )
        self._identities: list[RegisteredIdentity] = []
        self._faults: collections.deque[_Fault] = collections.deque()
        self._signer = shared_signer()
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        self._stopping = asyncio.Event()

    # --- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self: _Fake) -> _Fake:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _server_ssl(self) -> ssl.SSLContext | None:
        """The server's TLS context (None: plain http on loopback)."""
        return None

    async def start(self) -> None:
        """Start serving on 127.0.0.1 on a free port."""
        if self._runner is not None:
            raise RuntimeError("this fake is already running")
        self._stopping = asyncio.Event()
        app = web.Application()
        app.router.add_route(self.method, self.token_path, self._handle)
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=_SHUTDOWN_TIMEOUT
        )
        await runner.setup()
        try:
            server_ssl = await anyio.to_thread.run_sync(self._server_ssl)
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.bind(("127.0.0.1", 0))
            except OSError:
                sock.close()
                raise
            port = sock.getsockname()[1]
            await web.SockSite(runner, sock, ssl_context=server_ssl).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._base_url = f"{'https' if server_ssl else 'http'}://127.0.0.1:{port}"

    async def stop(self) -> None:
        """Stop serving; hung and delayed requests are dropped."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._stopping.set()
        try:
            await runner.cleanup()
        finally:
            self._base_url = None

    # --- configuration ------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``; raises unless started."""
        if self._base_url is None:
            raise RuntimeError("this fake is not running: use 'async with' or start()")
        return self._base_url

    @property
    def endpoint(self) -> str:
        """The token endpoint URL."""
        return self.base_url + self.token_path

    @property
    def system_assigned(self) -> RegisteredIdentity | None:
        """The resource's system-assigned identity (None when it has none)."""
        return self._system

    def environ(self) -> dict[str, str]:
        """The environment variables by which the real source is detected, pointing here."""
        raise NotImplementedError

    def add_identity(
        self,
        *,
        client_id: str | None = None,
        object_id: str | None = None,
        resource_id: str | None = None,
    ) -> RegisteredIdentity:
        """Assign a user-assigned identity (ids not given are made up)."""
        identity = RegisteredIdentity(
            client_id or str(uuid.uuid4()),
            object_id or str(uuid.uuid4()),
            resource_id
            or "/subscriptions/0/resourcegroups/rg/providers/"
            f"Microsoft.ManagedIdentity/userAssignedIdentities/{uuid.uuid4().hex[:8]}",
        )
        self._identities.append(identity)
        return identity

    def find_identity(self, kind: str | None, value: str | None) -> RegisteredIdentity | None:
        """The identity a request names (None for kind: the system-assigned one)."""
        if kind is None or value is None:
            return self._system
        return next((i for i in self._identities if i.matches(kind, value)), None)

    def fail_next(
        self,
        n: int = 1,
        status: int = 500,
        *,
        retry_after: float | None = None,
        fault: ManagedIdentityFault = "status",
        body: Mapping[str, Any] | None = None,
    ) -> None:
        """Make the next ``n`` requests fail; calls queue up in order.

        ``"status"`` answers ``status`` with ``body`` (else the source's error
        shape); ``"html"`` an HTML page; ``"malformed_json"`` a 200 with cut
        JSON; ``"drop"`` closes the connection; ``"hang"`` never answers.
        """
        if fault not in get_args(ManagedIdentityFault):
            raise ValueError(f"unknown fault {fault!r}")
        if n < 0:
            raise ValueError("n must not be negative")
        self._faults.extend([_Fault(fault, status, retry_after, body)] * n)

    def clear_faults(self) -> None:
        """Forget the faults not yet served."""
        self._faults.clear()

    def request_counts(self) -> collections.Counter[str]:
        """How many requests arrived, by resource."""
        return collections.Counter(r.resource for r in self.requests)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._base_url or 'stopped'})"

    # --- what each source defines -------------------------------------------------------

    async def check(
        self, request: web.Request, form: Mapping[str, str]
    ) -> tuple[str, RegisteredIdentity]:
        """Validate a request; return (resource, identity) or raise :class:`Reject`."""
        raise NotImplementedError

    def success_body(
        self, token: str, resource: str, identity: RegisteredIdentity, now: int
    ) -> dict[str, Any]:
        """The source's answer carrying ``token``."""
        raise NotImplementedError

    def error_body(self, status: int, code: str, message: str) -> dict[str, Any]:
        """The source's error shape (flat OAuth by default)."""
        return {"error": code, "error_description": message}

    # --- serving ------------------------------------------------------------------------

    def issue_token(self, resource: str, identity: RegisteredIdentity, now: int) -> str:
        """A v1 access token for ``resource``, as Entra issues to managed identities."""
        claims = {
            "aud": resource,
            "iss": f"https://sts.windows.net/{self.tenant_id}/",
            "iat": now,
            "nbf": now,
            "exp": now + self.token_lifetime,
            "appid": identity.client_id,
            "oid": identity.object_id,
            "sub": identity.object_id,
            "tid": self.tenant_id,
            "idtyp": "app",
            "xms_mirid": identity.resource_id,
            "uti": new_uti(),
            "ver": "1.0",
        }
        return self._signer.sign(claims)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        form: Mapping[str, str] = {}
        if request.method == "POST":
            posted = await request.post()
            form = {k: v for k, v in posted.items() if isinstance(v, str)}
        query = MappingProxyType(dict(request.query))
        self.requests.append(
            ManagedIdentityRequestRecord(
                method=request.method,
                path=request.path,
                query=query,
                resource=query.get("resource") or form.get("resource", ""),
                time=self._clock.time(),
                headers=MappingProxyType(dict(request.headers)),
                form=MappingProxyType(dict(form)),
            )
        )
        fault = self._faults.popleft() if self._faults else None
        if self.latency > 0 and await self._stopped_within(self.latency):
            return self._drop(request)
        if fault is not None:
            return await self._apply_fault(request, fault)
        try:
            resource, identity = await self.check(request, form)
        except Reject as rejected:
            return _json(rejected.body, status=rejected.status, headers=rejected.headers)
        now = int(self._clock.time())
        token = self.issue_token(resource, identity, now)
        body = self.success_body(token, resource, identity, now)
        if self.refresh_in is not None:
            body["refresh_in"] = self.refresh_in
        return _json(body)

    async def _apply_fault(self, request: web.Request, fault: _Fault) -> web.StreamResponse:
        if fault.kind == "hang":
            await self._stopping.wait()
            return self._drop(request)
        if fault.kind == "drop":
            return self._drop(request)
        if fault.kind == "malformed_json":
            return web.Response(text='{"access_token": "eyJ', content_type="application/json")
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = retry_after_value(fault.retry_after)
        if fault.kind == "html":
            return web.Response(
                status=fault.status,
                text=html_error_page(fault.status),
                content_type="text/html",
                headers=headers,
            )
        body = fault.body or self.error_body(fault.status, "fault", f"injected {fault.status}")
        return _json(body, status=fault.status, headers=headers)

    async def _stopped_within(self, seconds: float) -> bool:
        with anyio.move_on_after(seconds):
            await self._stopping.wait()
            return True
        return False

    @staticmethod
    def _drop(request: web.Request) -> web.Response:
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=503)


def _json(
    body: Mapping[str, Any], *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.json_response(
        dict(body), status=status, headers=headers, dumps=lambda v: json.dumps(v)
    )
