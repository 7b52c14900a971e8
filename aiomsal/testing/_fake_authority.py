"""An embeddable fake Microsoft Entra ID, served over loopback HTTP(S) by aiohttp."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import shutil
import socket
import ssl
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from types import MappingProxyType, TracebackType
from typing import Any

import anyio
import anyio.to_thread
from aiohttp import web
from cryptography import x509
from yarl import URL

from .._concurrency._clock import Clock, SystemClock
from ._certificates import TestCertificate, generate_certificate
from ._fake_authorize import handle_authorize
from ._fake_faults import Fault, FaultKind, canned_response, make_fault
from ._fake_grants import RegisteredClient, TokenRequest, handle_token_request
from ._fake_signing import SigningKeys
from ._fake_tokens import (
    GrantError,
    entra_error_body,
    instance_discovery,
    openid_configuration,
    status_error,
)
from ._fake_user_api import UserFlows
from ._fake_user_grants import device_authorization
from ._fake_users import UserDirectory, tenant_guid

__all__ = ["FakeAuthority", "FaultKind", "TokenRequestRecord"]

_SHUTDOWN_TIMEOUT = 2.0
_BACKLOG = 2048


@dataclass(frozen=True, slots=True)
class TokenRequestRecord:
    """One POST to a token endpoint of a :class:`FakeAuthority`, as it arrived.

    Empty strings stand for parameters the request did not carry. ``form`` holds
    secrets and assertions, so it is left out of the repr.
    """

    grant_type: str
    client_id: str
    tenant: str
    scope: str
    #: The authority's clock time when the request arrived.
    time: float
    #: The ``client-request-id`` header, or None.
    correlation_id: str | None
    form: Mapping[str, str] = field(repr=False)


class FakeAuthority(UserFlows, SigningKeys):
    """A fake Microsoft Entra ID for tests, benchmarks and demos.

    It serves instance discovery, OpenID Connect discovery, JWKS and the v2.0
    token endpoint of any tenant on a random loopback port, issues RS256 access
    tokens timed by ``clock``, and can be told to fail the next token requests::

        async with FakeAuthority() as authority:
            authority.add_client("my-app", secret="s3cret")
            authority.fail_next(status=503, retry_after=1)
            ...  # point the application at authority.authority("contoso.com")

    With users (:meth:`add_user`) it also serves the user flows: ``/authorize``
    (answering as a browser in which the user signs straight in), the device
    authorization endpoint, and the authorization code, refresh token, device
    code, password and on-behalf-of grants.

    ``latency`` (seconds of real time added to each token response),
    ``token_lifetime`` and ``refresh_in`` may be changed at any time.
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        tls: bool = False,
        latency: float = 0.0,
        token_lifetime: int = 3600,
        refresh_in: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        #: Seconds (real time) by which every token response is delayed.
        self.latency = latency
        #: The ``expires_in`` of issued tokens, in seconds.
        self.token_lifetime = token_lifetime
        #: When set, token responses carry ``refresh_in`` with this value.
        self.refresh_in = refresh_in
        #: Resources that get v1 access tokens (``iss`` ``https://sts.windows.net/{tid}/``),
        #: as Azure Storage (and Azurite) expect.
        self.v1_resources: set[str] = {"https://storage.azure.com"}
        #: Every POST to a token endpoint, in arrival order (failed and faulted ones too).
        self.token_requests: list[TokenRequestRecord] = []
        #: How many GETs of OpenID configuration and instance discovery were served.
        self.discovery_requests = 0
        #: With ``tls=True``, once started: a PEM file of the CA that signed the server.
        self.ca_file: str | None = None
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._tls = tls
        self._host = host
        self._port = port
        self._clients: dict[str, RegisteredClient] = {}
        self._directory = UserDirectory()
        self._faults: collections.deque[Fault] = collections.deque()
        self._init_signing_keys()
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        self._alias_base_urls: tuple[str, ...] = ()
        self._stopping = asyncio.Event()
        self._tempdir: str | None = None

    # --- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> FakeAuthority:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start serving on ``host``, on a free port unless ``port`` was given."""
        if self._runner is not None:
            raise RuntimeError("this FakeAuthority is already running")
        self._stopping = asyncio.Event()
        app = web.Application()
        app.add_routes(
            [
                web.get("/{tenant}/v2.0/.well-known/openid-configuration", self._openid_config),
                web.get("/{tenant}/.well-known/openid-configuration", self._openid_config),
                web.get("/{tenant}/discovery/instance", self._instance_discovery),
                web.get("/{tenant}/discovery/v2.0/keys", self._keys),
                web.get("/{tenant}/discovery/keys", self._keys),
                web.post("/{tenant}/oauth2/v2.0/token", self._token),
                web.get("/{tenant}/oauth2/v2.0/authorize", self._authorize),
                web.post("/{tenant}/oauth2/v2.0/devicecode", self._devicecode),
            ]
        )
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=_SHUTDOWN_TIMEOUT
        )
        await runner.setup()
        try:
            server_ssl = await anyio.to_thread.run_sync(self._make_tls) if self._tls else None
            family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.bind((self._host, self._port))
            except OSError:
                sock.close()
                raise
            port = sock.getsockname()[1]
            site = web.SockSite(runner, sock, ssl_context=server_ssl, backlog=_BACKLOG)
            await site.start()
        except BaseException:
            await runner.cleanup()
            self._remove_tempdir()
            raise
        self._runner = runner
        scheme = "https" if self._tls else "http"
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._base_url = f"{scheme}://{host}:{port}"
        self._alias_base_urls = (
            (f"{scheme}://localhost:{port}",) if self._host in ("127.0.0.1", "::1") else ()
        )

    async def stop(self) -> None:
        """Stop serving: hung and delayed requests are dropped, temporary files removed."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._stopping.set()
        try:
            await runner.cleanup()
        finally:
            self._base_url = None
            self._alias_base_urls = ()
            self._remove_tempdir()

    def _make_tls(self) -> ssl.SSLContext:
        """Make a throwaway CA and a server certificate; write the CA to ``ca_file``."""
        ca = generate_certificate("aiomsal FakeAuthority test CA", is_ca=True)
        ips = ("127.0.0.1", "::1")
        server = generate_certificate(
            "aiomsal FakeAuthority",
            issuer=ca,
            ip_addresses=ips if self._host in ips else (*ips, self._host),
            dns_names=("localhost",),
        )
        self._tempdir = tempfile.mkdtemp(prefix="aiomsal-fake-authority-")
        ca_file = os.path.join(self._tempdir, "ca.pem")
        cert_file = os.path.join(self._tempdir, "server.pem")
        key_file = os.path.join(self._tempdir, "server.key")
        with open(ca_file, "wb") as f:
            f.write(ca.certificate_pem)
        with open(cert_file, "wb") as f:
            f.write(server.certificate_pem + ca.certificate_pem)
        with open(key_file, "wb") as f:
            f.write(server.private_key_pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(cert_file, key_file)
        finally:
            os.remove(key_file)
            os.remove(cert_file)
        self.ca_file = ca_file
        return context

    def _remove_tempdir(self) -> None:
        if self._tempdir is not None:
            shutil.rmtree(self._tempdir, ignore_errors=True)
        self._tempdir = None
        self.ca_file = None

    # --- configuration ---------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (``https`` with ``tls=True``); raises unless started."""
        if self._base_url is None:
            raise RuntimeError("this FakeAuthority is not running: use 'async with' or start()")
        return self._base_url

    @property
    def clock(self) -> Clock:
        """The clock that times issued tokens and checks client assertions."""
        return self._clock

    def authority(self, tenant: str = "common") -> str:
        """The authority URL of ``tenant``: ``{base_url}/{tenant}``."""
        return f"{self.base_url}/{tenant}"

    def tenant_id(self, tenant: str) -> str:
        """The GUID (``tid``) of a tenant: the name itself when it is a GUID, else derived."""
        return tenant_guid(tenant)

    def add_client(
        self,
        client_id: str,
        secret: str | None = None,
        certificate: TestCertificate | x509.Certificate | bytes | None = None,
        *,
        redirect_uris: Sequence[str] | None = None,
    ) -> None:
        """Register (or re-register, replacing) an application valid in every tenant.

        ``certificate`` may be a :class:`TestCertificate`, a cryptography
        certificate or PEM bytes; client assertions must be signed with its key.
        With neither secret nor certificate the client is a public client.
        ``redirect_uris`` are those ``/authorize`` accepts; a public client's
        ``http://localhost`` (or ``127.0.0.1``) one accepts any port. The
        application ID URI of every client is ``api://{client_id}``.
        """
        certificates: tuple[x509.Certificate, ...] = ()
        if isinstance(certificate, TestCertificate):
            certificates = (certificate.certificate,)
        elif isinstance(certificate, x509.Certificate):
            certificates = (certificate,)
        elif isinstance(certificate, bytes):
            certificates = (x509.load_pem_x509_certificate(certificate),)
        self._clients[client_id] = RegisteredClient(
            client_id, secret, certificates, tuple(redirect_uris or ())
        )

    def fail_next(
        self,
        n: int = 1,
        status: int = 500,
        *,
        retry_after: float | None = None,
        fault: FaultKind = "status",
        body: bytes | str | None = None,
        content_type: str = "application/json",
        patch: Mapping[str, Any] | None = None,
    ) -> None:
        """Make the next ``n`` token requests fail; calls queue up in order.

        ``"status"``: answer ``status`` with an Entra-shaped JSON error;
        ``"html"``: answer ``status`` with an HTML error page; ``retry_after``
        adds a ``Retry-After`` header to either. ``"malformed_json"``: answer
        200 with truncated JSON. ``"drop"``: close the connection without an
        answer. ``"hang"``: never answer (until the client gives up or the
        authority stops).

        For hostile answers: ``"body"`` answers ``status`` (200 allowed) with
        exactly ``body`` as ``content_type``; ``"patch"`` serves the grant as
        usual and, when it succeeds, updates its JSON answer with ``patch``
        (``json.dumps`` writes ``float("inf")`` as ``Infinity``), so a test can
        send a real token with one bad field.
        """
        if n < 0:
            raise ValueError("n must not be negative")
        item = make_fault(fault, status, retry_after, body, content_type, patch)
        self._faults.extend([item] * n)

    def clear_faults(self) -> None:
        """Forget the faults not yet served: the outage is over."""
        self._faults.clear()

    def ssl_context(self) -> ssl.SSLContext:
        """A client SSL context that trusts this authority's CA (``tls=True``, started)."""
        if self.ca_file is None:
            raise RuntimeError("ssl_context() needs a running FakeAuthority(tls=True)")
        context = ssl.create_default_context(cafile=self.ca_file)
        # The throwaway CA lacks extensions that strict X.509 checking demands.
        context.verify_flags &= ~ssl.VERIFY_X509_STRICT
        return context

    def request_counts(self) -> collections.Counter[tuple[str, str]]:
        """How many token requests arrived, by ``(grant_type, client_id)``."""
        return collections.Counter((r.grant_type, r.client_id) for r in self.token_requests)

    def __repr__(self) -> str:
        where = self._base_url or "stopped"
        users = len(self._directory.users)
        return f"FakeAuthority({where}, clients={len(self._clients)}, users={users})"

    # --- discovery -------------------------------------------------------------------------

    async def _openid_config(self, request: web.Request) -> web.Response:
        self.discovery_requests += 1
        tenant = request.match_info["tenant"]
        return _json_response(openid_configuration(self.base_url, tenant, self.tenant_id(tenant)))

    async def _instance_discovery(self, request: web.Request) -> web.Response:
        self.discovery_requests += 1
        hosts = [URL(u).authority for u in (self.base_url, *self._alias_base_urls)]
        tenant = "common"
        endpoint = request.query.get("authorization_endpoint")
        if endpoint:
            url = URL(endpoint)
            if not url.is_absolute() or url.authority not in hosts:
                error = GrantError(400, "invalid_instance", 50049, "Unknown or invalid instance.")
                return self._error(request, error, {}, str(uuid.uuid4()))
            if url.parts[1:]:
                tenant = url.parts[1]
        return _json_response(instance_discovery(self.base_url, tenant, hosts))

    async def _keys(self, request: web.Request) -> web.Response:
        body = self._jwks_body(request.match_info["tenant"])
        return self._outage_response() if body is None else _json_response(body)

    # --- token endpoint --------------------------------------------------------------------

    async def _token(self, request: web.Request) -> web.StreamResponse:
        tenant = request.match_info["tenant"]
        posted = await request.post()
        form = MappingProxyType({k: v for k, v in posted.items() if isinstance(v, str)})
        correlation_id = request.headers.get("client-request-id")
        self.token_requests.append(
            TokenRequestRecord(
                grant_type=form.get("grant_type", ""),
                client_id=form.get("client_id", ""),
                tenant=tenant,
                scope=form.get("scope", ""),
                time=self._clock.time(),
                correlation_id=correlation_id,
                form=form,
            )
        )
        fault = self._faults.popleft() if self._faults else None
        if self.latency > 0 and await self._stopped_within(self.latency):
            return self._drop(request)
        headers = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}
        trace_id = str(uuid.uuid4())
        headers["x-ms-request-id"] = trace_id
        if correlation_id is not None:
            headers["client-request-id"] = correlation_id
        if fault is not None and fault.kind != "patch":
            return await self._apply_fault(request, fault, headers, trace_id)
        token_request = TokenRequest(
            form=form,
            tenant=tenant,
            tenant_id=self.tenant_id(tenant),
            base_url=self.base_url,
            alias_base_urls=self._alias_base_urls,
            now=self._clock.time(),
            clients=self._clients,
            signer=self._signer,
            token_lifetime=self.token_lifetime,
            refresh_in=self.refresh_in,
            directory=self._directory,
            published_signers=tuple(self._published.values()),
            v1_resources=frozenset(r.rstrip("/") for r in self.v1_resources),
        )
        try:
            body = await handle_token_request(token_request)
        except GrantError as error:
            return self._error(request, error, headers, trace_id)
        if fault is not None and fault.patch is not None:
            body = {**body, **fault.patch}
            text = json.dumps(body, separators=(",", ":"))
            return web.Response(text=text, content_type="application/json", headers=headers)
        return _json_response(body, headers=headers)

    def _error(
        self, request: web.Request, error: GrantError, headers: dict[str, str], trace_id: str
    ) -> web.Response:
        body = entra_error_body(
            error.error,
            error.code,
            error.message,
            now=self._clock.time(),
            correlation_id=request.headers.get("client-request-id"),
            trace_id=trace_id,
            error_uri_base=self.base_url,
        )
        body.update(error.extra)
        return _json_response(body, status=error.status, headers=headers)

    # --- user flows ------------------------------------------------------------------------

    async def _authorize(self, request: web.Request) -> web.Response:
        return handle_authorize(
            dict(request.query),
            request.match_info["tenant"],
            clients=self._clients,
            directory=self._directory,
            base_url=self.base_url,
            now=self._clock.time(),
            correlation_id=request.headers.get("client-request-id"),
        )

    async def _devicecode(self, request: web.Request) -> web.Response:
        """The device authorization endpoint (no faults, latency or log entry)."""
        posted = await request.post()
        form = {k: v for k, v in posted.items() if isinstance(v, str)}
        headers = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}
        trace_id = str(uuid.uuid4())
        try:
            body = device_authorization(
                form,
                request.match_info["tenant"],
                self._clients,
                self._directory,
                self.base_url,
                self._clock.time(),
            )
        except GrantError as error:
            return self._error(request, error, headers, trace_id)
        return _json_response(body, headers=headers)

    async def _apply_fault(
        self, request: web.Request, fault: Fault, headers: dict[str, str], trace_id: str
    ) -> web.StreamResponse:
        if fault.kind == "hang":
            await self._stopping.wait()
            return self._drop(request)
        if fault.kind == "drop":
            return self._drop(request)
        canned = canned_response(fault, headers)
        if canned is not None:
            return canned
        error = GrantError(fault.status, *status_error(fault.status))
        return self._error(request, error, headers, trace_id)

    async def _stopped_within(self, seconds: float) -> bool:
        """Sleep ``seconds`` of real time; return True early if the authority stops."""
        with anyio.move_on_after(seconds):
            await self._stopping.wait()
            return True
        return False

    @staticmethod
    def _drop(request: web.Request) -> web.Response:
        """Close the connection; aiohttp then fails quietly to write the returned response."""
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=HTTPStatus.SERVICE_UNAVAILABLE)


def _json_response(
    body: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.json_response(
        body, status=status, headers=headers, dumps=lambda v: json.dumps(v, separators=(",", ":"))
    )
