"""ManagedIdentityClient: tokens for an Azure resource's own identity, cached and coalesced."""

from __future__ import annotations

import math
import os
import ssl
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread

from .._cache._entries import AccessTokenKey
from .._cache._store import CachedToken
from .._cache._token_cache import SerializableTokenCache
from .._concurrency._clock import Clock
from .._concurrency._deadline import remaining
from .._errors import MsalConfigurationError, MsalServiceError, MsalTransportError
from .._protocol._http import HttpRequest, HttpResponse
from .._protocol._managed_identity._ids import ManagedIdentity, managed_identity_from
from .._protocol._managed_identity._requests import (
    build_arc_retry,
    build_token_request,
    identity_parameters,
    resource_from_scope,
)
from .._protocol._managed_identity._responses import (
    ARC_MAX_KEY_BYTES,
    arc_key_path,
    parse_managed_identity_response,
)
from .._protocol._managed_identity._retry import ImdsRetryPolicy
from .._protocol._managed_identity._sources import ManagedIdentitySource, detect_source
from .._protocol._throttling import parse_retry_after
from .._result import AuthenticationResult
from .._transport._aiohttp_transport import AiohttpTransport
from .._transport._pinned_tls import pinned_ssl_context
from ._application import DEFAULT_TIMEOUT, MEMO_LIMIT, ClientApplication

if TYPE_CHECKING:
    import aiohttp

__all__ = ["ManagedIdentityClient"]

#: The cache's environment and realm of managed identity tokens (MSAL Python's).
MI_ENVIRONMENT = "localhost"
MI_REALM = "managed_identity"
_LINUX_ARC_KEYS = "/var/opt/azcmagent/tokens"
_LINUX_HIMDS = "/opt/azcmagent/bin/himds"
#: Seconds of a call's deadline an IMDS retry must leave for its own attempt.
_RETRY_MARGIN = 0.05


def _default_arc_key_directory(environ: Mapping[str, str]) -> str | None:
    if sys.platform.startswith("linux"):
        return _LINUX_ARC_KEYS
    if sys.platform == "win32":
        program_data = environ.get("PROGRAMDATA")
        if program_data:
            return os.path.join(program_data, "AzureConnectedMachineAgent", "Tokens")
    return None


def _arc_agent_present() -> bool:
    if sys.platform.startswith("linux"):
        return os.path.exists(_LINUX_HIMDS)
    if sys.platform == "win32":
        files = os.environ.get("PROGRAMFILES")
        return bool(files) and os.path.exists(
            os.path.join(files or "", "AzureConnectedMachineAgent", "himds.exe")
        )
    return False


def _read_arc_key(path: str) -> str:
    """The Arc key file's content, refusing a file larger than Arc's 4,096 bytes (blocking)."""
    try:
        if os.stat(path).st_size > ARC_MAX_KEY_BYTES:
            raise MsalServiceError(
                "invalid_response", "the Azure Arc key file is larger than 4096 bytes"
            )
        with open(path, encoding="utf-8") as handle:
            return handle.read(ARC_MAX_KEY_BYTES + 1).strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise MsalServiceError(
            "invalid_response", f"cannot read the Azure Arc key file ({type(exc).__name__})"
        ) from None


class ManagedIdentityClient(ClientApplication):
    """Tokens for a managed identity, with MSAL Python's ``ManagedIdentityClient`` shape.

    The source (Service Fabric, App Service, Azure ML, Azure Arc, Cloud Shell or
    IMDS) is detected once, from ``environ`` (``os.environ`` by default);
    ``endpoint`` overrides the detected source's token endpoint. Tokens go
    through the same cache, coalescing and background refresh as every aiomsal
    token: one request per (identity, resource) however many callers.

    A user-assigned identity that the detected source cannot select raises
    :class:`MsalConfigurationError` here. IMDS requests are retried with
    backoff (:class:`ImdsRetryPolicy`); other sources are retried once.

    Every wait here is real time, not ``clock`` time. ``timeout`` (seconds)
    bounds a whole call, retries and backoff included; by default it is what
    the source's retries need: for IMDS the policy's longest backoff plus one
    attempt (70 + 10 = 80 s with the default policy, so a 410 episode of
    about 70 s is ridden out), for the others ``attempt_timeout``. Each
    request is bounded by ``attempt_timeout`` and each connection attempt by
    ``connect_timeout``, so one hung attempt does not use up the call.
    """

    def __init__(
        self,
        managed_identity: ManagedIdentity | Mapping[str, object],
        *,
        environ: Mapping[str, str] | None = None,
        endpoint: str | None = None,
        http_session: aiohttp.ClientSession | None = None,
        timeout: float | None = None,
        attempt_timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = 2.0,
        clock: Clock | None = None,
        expiry_margin: float = 300.0,
        refresh_fraction: float = 0.75,
        client_capabilities: Sequence[str] = (),
        token_cache: SerializableTokenCache | None = None,
        max_cache_entries: int | None = None,
        arc_key_directory: str | None = None,
        imds_retry: ImdsRetryPolicy | None = None,
    ) -> None:
        identity = managed_identity_from(managed_identity)
        env: Mapping[str, str] = os.environ if environ is None else environ
        selects_by_env = any(env.get(n) for n in ("IDENTITY_ENDPOINT", "MSI_ENDPOINT"))
        source = detect_source(
            env,
            endpoint=endpoint,
            arc_agent_present=not selects_by_env and _arc_agent_present(),
        )
        identity_parameters(source.kind, identity)  # unsupported user-assigned: raise now
        for name, value in (("attempt_timeout", attempt_timeout),
                            ("connect_timeout", connect_timeout)):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not 0 < value < math.inf
            ):
                raise MsalConfigurationError(f"{name} must be a positive number of seconds")
        if imds_retry is not None and not isinstance(imds_retry, ImdsRetryPolicy):
            raise MsalConfigurationError("imds_retry must be an aiomsal.ImdsRetryPolicy")
        policy = imds_retry or ImdsRetryPolicy()
        if timeout is None:
            timeout = attempt_timeout
            if source.kind == "imds":
                timeout += policy.longest_backoff()
        super().__init__(
            identity.cache_id,
            instance_discovery=False,
            http_session=http_session,
            timeout=timeout,
            clock=clock,
            expiry_margin=expiry_margin,
            refresh_fraction=refresh_fraction,
            client_capabilities=client_capabilities,
            token_cache=token_cache,
            max_cache_entries=max_cache_entries,
        )
        self.managed_identity = identity
        self.source: ManagedIdentitySource = source
        self._arc_keys = arc_key_directory or _default_arc_key_directory(env)
        if source.kind == "azure_arc" and self._arc_keys is None:
            raise MsalConfigurationError(
                "Azure Arc managed identity is supported on Linux and Windows only "
                "(or pass arc_key_directory=)"
            )
        self._imds_retry = policy
        verify: bool | ssl.SSLContext = True
        if source.kind == "service_fabric" and source.thumbprint:
            verify = pinned_ssl_context(source.thumbprint)
        self._transport_verify: bool | ssl.SSLContext = verify
        # Identity endpoints are local to the machine: never through a proxy, and IMDS
        # follows its own retry schedule.
        self._transport = AiohttpTransport(
            clock=self._clock,
            session=http_session,
            timeout=min(attempt_timeout, self._timeout),
            verify=verify,
            retry_once=source.kind != "imds",
            connect_timeout=connect_timeout,
            trust_env=False,
        )
        self._tokens = self.token_cache._app
        self._keys: dict[str, AccessTokenKey] = {}
        self._refresh_mi = self._refresh_token

    def __repr__(self) -> str:
        return f"ManagedIdentityClient({self.managed_identity!r}, source={self.source.kind!r})"

    def _cached_tokens(self) -> int:
        return len(self._tokens) + len(self._users)

    async def acquire_token_for_client(
        self, *, resource: str, claims_challenge: str | None = None
    ) -> AuthenticationResult:
        """A token for ``resource`` (or a ``{resource}/.default`` scope).

        Served from the cache while it is valid; concurrent callers that miss
        share one request. ``claims_challenge`` skips the cache (and is passed
        on to Service Fabric, as MSAL does).
        """
        try:
            key = self._keys[resource]
        except (KeyError, TypeError):
            pass
        else:
            if claims_challenge is None:
                token = self._tokens.get(key)
                if token is not None and token.serve_until > self._clock.time():
                    return self._serve(token, self._refresh_mi, None)
        return await self._acquire(resource, claims_challenge)

    async def _acquire(self, requested: str, claims: str | None) -> AuthenticationResult:
        self._check_open()
        resource = resource_from_scope(requested)
        key = AccessTokenKey(MI_ENVIRONMENT, self.client_id, MI_REALM, "", "", resource)
        if len(self._keys) >= MEMO_LIMIT:
            self._keys.clear()
        self._keys[requested] = key
        if claims is None:
            token = self._tokens.get(key)
            if token is not None and token.serve_until > self._clock.time():
                return self._serve(token, self._refresh_mi, None)
        return await self._acquire_missing(
            key,
            claims,
            lambda: self._cached(self._tokens.get(key)),
            lambda: self._fetch(key, claims),
            fresh=claims is not None,
        )

    async def probe(self, resource: str, *, probe_timeout: float = 1.0) -> bool:
        """Whether the source answers at all, within ``probe_timeout`` s and without retries.

        A request without its ``Metadata``/secret headers: any HTTP answer
        (normally a 400) means the endpoint is there. For credential chains,
        which must not wait long on a machine without managed identity.
        """
        self._check_open()
        request = build_token_request(
            self.source, self.managed_identity, resource_from_scope(resource)
        )
        bare = HttpRequest(request.method, request.url, form=request.form)
        async with AiohttpTransport(
            clock=self._clock, timeout=probe_timeout, retry_once=False, trust_env=False,
            verify=self._transport_verify,
        ) as transport:
            try:
                response = await transport.send(bare)
            except MsalTransportError:
                return False
        return not (response.status == 403 and b"unreachable" in response.body.lower())

    async def _refresh_token(self, token: CachedToken, _context: object) -> bool:
        """Renew a managed identity token in the background."""
        key = token.key
        return await self._refresh_in_background(
            token, self._tokens.get, lambda: self._fetch(key, None)
        )

    async def _fetch(self, key: AccessTokenKey, claims: str | None) -> AuthenticationResult:
        resource = key.target
        cached = self._tokens.get(key) if claims is not None else None
        request = build_token_request(
            self.source,
            self.managed_identity,
            resource,
            claims=claims,
            client_capabilities=self.client_capabilities,
            cached_token=cached.secret if cached is not None else None,
        )
        requested_at = self._clock.time()
        if self.source.kind == "imds":
            response = await self._send_imds(request)
        elif self.source.kind == "azure_arc":
            response = await self._send_arc(request)
        else:
            response = await self._send(request)
        parsed = parse_managed_identity_response(
            self.source.kind, response, self._clock.time(), self.managed_identity
        )
        token = self._new_token(key, parsed, requested_at=requested_at, scopes=(resource,))
        self._tokens.put(token)
        return self._result(token, source="identity_provider")

    async def _send(self, request: HttpRequest) -> HttpResponse:
        self._counters.requests_sent += 1
        response = await self._transport.send(request)
        if response.replayed:  # answered from the throttling memory: nothing was sent
            self._counters.requests_sent -= 1
        return response

    async def _send_arc(self, request: HttpRequest) -> HttpResponse:
        """Arc's challenge: a 401 naming a key file, whose content authorizes the retry."""
        first = await self._send(request)
        if first.status != 401:
            if 200 <= first.status < 300:
                raise MsalServiceError(
                    "invalid_response",
                    "the Azure Arc agent answered without its key-file challenge",
                    status=first.status,
                )
            return first
        assert self._arc_keys is not None  # checked at construction
        path = arc_key_path(first, self._arc_keys, windows=sys.platform == "win32")
        key = await anyio.to_thread.run_sync(_read_arc_key, path)
        return await self._send(build_arc_retry(request, key))

    async def _send_imds(self, request: HttpRequest) -> HttpResponse:
        """IMDS: retried with backoff on 404, 410, 429, 5xx and failed connections.

        The backoff and the 410 window are real (monotonic) time, like every
        wait on the network; a retry that would not fit in what is left of the
        call's ``timeout=`` is not made, and the last answer (or failure) stands.
        """
        policy = self._imds_retry
        retry = 0
        gone_since: float | None = None
        while True:
            response: HttpResponse | None
            failure: MsalTransportError | None = None
            try:
                response = await self._send(request)
            except MsalTransportError as exc:
                response, failure = None, exc
            status = None if response is None else response.status
            if status is not None and (status < 400 or not policy.retryable(status)):
                assert response is not None
                return response
            now = anyio.current_time()
            if status == 410 and gone_since is None:
                gone_since = now
            retry_after = (
                None
                if response is None  # an HTTP-date is read against the wall clock
                else parse_retry_after(response.headers.get("retry-after"), self._clock.time())
            )
            delay = policy.delay(
                retry,
                status,
                retry_after=retry_after,
                gone_for=None if gone_since is None else now - gone_since,
            )
            if delay is None or remaining() <= delay + _RETRY_MARGIN:
                if response is None:
                    assert failure is not None
                    raise failure
                return response
            # A wait on the network, in real time: the injected clock governs token time only.
            await anyio.sleep(delay)
            self._check_open()
            retry += 1
