"""What both application classes share: configuration, transport, cache, tasks."""

from __future__ import annotations

import dataclasses
import math
import ssl
import sys
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from .._cache._entries import AccessTokenEntry, AccessTokenKey, Identity
from .._cache._environment import cache_realm
from .._cache._partitions import partition_of
from .._cache._storage import CacheStorage
from .._cache._store import CachedToken
from .._cache._token_cache import SerializableTokenCache
from .._concurrency._clock import Clock, SystemClock
from .._concurrency._deadline import within
from .._concurrency._refresher import BackgroundRefresher, Refresh
from .._concurrency._singleflight import SingleFlight, inside_flight
from .._concurrency._tasks import TaskRunner
from .._errors import MsalConfigurationError, MsalError
from .._protocol._authority import Authority, parse_authority
from .._protocol._http import HttpRequest, HttpResponse
from .._protocol._identity import decode_id_token
from .._protocol._refresh_policy import RefreshPolicy
from .._protocol._scopes import UserScopes, user_scopes
from .._protocol._token_response import TokenResponse, parse_token_response
from .._result import AuthenticationResult, TokenSource
from .._statistics import CacheStatistics, Counters
from .._storage._persistence import CachePersistence
from .._transport._aiohttp_transport import AiohttpTransport
from .._transport._authority_resolver import AuthorityResolver, ResolvedAuthority
from ._msal_options import app_headers, check_client_claims, check_exclude_scopes
from ._reporting import RequestReporter
from ._shapes import RequestShape, scopes_once

if TYPE_CHECKING:
    import aiohttp

__all__ = ["ClientApplication"]

#: Authority kinds that follow Entra ID's scope rules.
ENTRA_KINDS = frozenset({"aad", "b2c", "ciam"})
BEARER = "Bearer"
#: Bound on the shared whole-second times (a few seconds' worth of distinct values).
STAMP_LIMIT = 1024
#: Bound on the memo from a call's (scopes, tenant) to its cache key.
MEMO_LIMIT = 65_536
#: Seconds a request to the authority may take (``timeout=None`` means this too).
DEFAULT_TIMEOUT = 10.0

FlightKey = tuple[AccessTokenKey, "str | None"]
T = TypeVar("T")


_App = TypeVar("_App", bound="ClientApplication")


class ClientApplication:
    """The base of :class:`PublicClientApplication` and :class:`ConfidentialClientApplication`.

    Construction validates everything and does no I/O: the authority's
    metadata is fetched on first use. Use the application as an async context
    manager (or call :meth:`aclose`) so that its connections and background
    tasks end with it.
    """

    def __init__(
        self,
        client_id: str,
        authority: str | None = None,
        *,
        oidc_authority: str | None = None,
        instance_discovery: bool | None = True,
        http_session: aiohttp.ClientSession | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        verify: bool | str | ssl.SSLContext = True,
        clock: Clock | None = None,
        expiry_margin: float = 300.0,
        refresh_fraction: float = 0.75,
        client_capabilities: Sequence[str] | None = (),
        token_cache: SerializableTokenCache | None = None,
        cache_storage: CacheStorage | None = None,
        max_cache_entries: int | None = None,
        validate_authority: bool = True,
        proxies: Mapping[str, str] | None = None,
        trust_env: bool = True,
        app_name: str | None = None,
        app_version: str | None = None,
        exclude_scopes: Sequence[str] | None = None,
        client_claims: Mapping[str, Any] | None = None,
        azure_region: str | bool | None = None,
        http_cache: object = None,
        enable_pii_log: bool | None = None,
    ) -> None:
        if not isinstance(client_id, str) or not client_id.strip():
            raise MsalConfigurationError("client_id must be a non-empty string")
        if timeout is None:  # MSAL's default; every wait here is bounded
            timeout = DEFAULT_TIMEOUT
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or not 0 < timeout < math.inf
        ):
            raise MsalConfigurationError("timeout must be a positive, finite number of seconds")
        if client_capabilities is None:
            client_capabilities = ()
        if not isinstance(client_capabilities, (list, tuple, set, frozenset)) or not all(
            isinstance(c, str) and c for c in client_capabilities
        ):
            raise MsalConfigurationError("client_capabilities must be a list such as ['cp1']")
        self.client_id = client_id
        self.client_capabilities = tuple(client_capabilities)
        self.authority: Authority = parse_authority(authority, oidc_authority=oidc_authority)
        if verify is False and not self.authority.is_loopback:
            raise MsalConfigurationError(
                "verify=False is only allowed for loopback authorities (local test servers)"
            )
        self._clock: Clock = clock or SystemClock()
        self._policy = RefreshPolicy(expiry_margin=expiry_margin, refresh_fraction=refresh_fraction)
        self._counters = Counters()
        #: Seconds a call may take in all (discovery, metadata, token, retries).
        self._timeout = timeout
        self._reporter = RequestReporter(self._counters)
        #: The realm of the authority's own keys (per-tenant counts before a key is known).
        self._default_realm = self.authority.path.strip("/").split("/", 1)[0]
        self._runner = TaskRunner()
        # http_cache and enable_pii_log are MSAL's, accepted and unused: aiomsal keeps
        # its authority metadata for the application's life and logs no personal data.
        del http_cache, enable_pii_log
        self._exclude_scopes = check_exclude_scopes(exclude_scopes)
        #: Extra claims of this client's assertions, as canonical JSON ("" for none).
        self._client_claims = check_client_claims(client_claims)
        if not (azure_region is None or isinstance(azure_region, (str, bool))):
            raise MsalConfigurationError("azure_region must be a region name, True, False or None")
        #: MSAL's azure_region; confidential clients choose their region from it.
        self._azure_region = azure_region
        self._transport = AiohttpTransport(
            clock=self._clock,
            session=http_session,
            timeout=timeout,
            verify=verify,
            binding=self._runner.binding,
            proxies=proxies,
            trust_env=trust_env,
            app_headers=app_headers(app_name, app_version),
        )
        self._runner.on_loop_end(self._transport.release_loop)
        self._resolver = AuthorityResolver(
            self._transport,
            self._runner,
            # None is MSAL's default, and means on.
            instance_discovery=instance_discovery is not False,
            validate_authority=validate_authority,
            timeout=timeout,
        )
        self._flights: SingleFlight[FlightKey, AuthenticationResult] = SingleFlight(
            self._runner, timeout=timeout
        )
        #: Misses by their call's arguments, before the key is known (see ``_acquire_for_client``).
        self._calls: SingleFlight[Hashable, AuthenticationResult] = SingleFlight(
            self._runner, timeout=timeout
        )
        self._refresher = BackgroundRefresher(self._clock, self._runner, self._counters)
        if token_cache is not None and not isinstance(token_cache, SerializableTokenCache):
            raise MsalConfigurationError("token_cache must be an aiomsal.SerializableTokenCache")
        self.token_cache = token_cache if token_cache is not None else SerializableTokenCache()
        #: The user token cache (signed-in users and on-behalf-of assertions).
        self._users = self.token_cache._users
        #: (scopes, tenant) of earlier user-token calls -> their validated shape.
        self._shapes: dict[tuple[object, str | None], RequestShape] = {}
        #: Recent whole-second times, so that tokens stored in the same second share them.
        self._stamps: dict[int, int] = {}
        if max_cache_entries is not None:
            self.token_cache._app.set_limit(max_cache_entries)
            self._users.set_limit(max_cache_entries)
        if cache_storage is not None and not isinstance(cache_storage, CacheStorage):
            raise MsalConfigurationError(
                "cache_storage must implement load(), update() and aclose() "
                "(FileCacheStorage, RedisCacheStorage)"
            )
        self._storage = cache_storage
        self._persistence = (
            None
            if cache_storage is None
            else CachePersistence(
                cache_storage, self.token_cache, self._clock, self._counters,
                request_timeout=timeout,
            )
        )

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(client_id={self.client_id!r}, authority={self.authority.url!r})"

    async def __aenter__(self: _App) -> _App:
        if self._runner.closed:
            raise MsalError("the application is closed")
        if self._persistence is not None:
            # A storage that cannot work (a wrong key, an unreadable path) says so now.
            await self._persistence.check()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """End background work, pending calls and connections; later calls raise MsalError."""
        closed = MsalError("the application was closed")
        self._forget_memos()  # hits go through the memos: without them they reach the check
        self._refresher.clear()
        self._runner.bind()  # from another running loop: a clear MsalError, nothing touched
        await self._runner.aclose()
        self._flights.abort(closed)
        self._calls.abort(closed)
        self._resolver.abort(closed)
        await self._transport.aclose()
        if self._storage is not None:
            await self._storage.aclose()

    def statistics(self, *, by_tenant: bool = False) -> CacheStatistics:
        """The application's counters: hits, misses, requests sent, refreshes.

        With ``by_tenant``, ``tenants`` maps each tenant (the realm of its cache keys)
        to its own counters: which tenant of a fan-out worker is failing.
        """
        return self._counters.snapshot(
            joined=self._calls.coalesced,
            coalesced=self._flights.coalesced,
            cached_tokens=self._cached_tokens(),
            by_tenant=by_tenant,
        )

    def _cached_tokens(self) -> int:
        return len(self._users)

    # -- shared plumbing for the acquisition flows --------------------------------------

    def _check_open(self) -> None:
        if self._runner.closed:
            raise MsalError("the application is closed")

    def _forget_memos(self) -> None:
        """Drop the memos of the hit paths (the application is closing)."""
        self._shapes.clear()

    async def _bounded(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run a call that may wait for the authority under the application's ``timeout``."""
        return await within(self._timeout, call)

    def _sent_scopes(self, wanted: UserScopes) -> tuple[str, ...]:
        """What a user-flow request asks for: ``wanted`` plus the reserved scopes not excluded."""
        sent = wanted.with_reserved
        if self._exclude_scopes:
            sent = tuple(s for s in sent if s not in self._exclude_scopes)
        return sent

    def _target_authority(self, tenant: str | None) -> Authority:
        return self.authority if tenant is None else self.authority.with_tenant(tenant)

    def _is_entra(self, authority: Authority) -> bool:
        return authority.kind in ENTRA_KINDS

    @staticmethod
    def _realm(resolved: ResolvedAuthority) -> str:
        """The cache realm: the tenant segment, as MSAL does ("" for a generic OIDC issuer).

        Interned: the keys of one tenant share one string instead of one each.
        """
        return sys.intern(cache_realm(resolved.authority))

    def _scope_rules(self, authority: Authority) -> dict[str, bool]:
        """How the scopes of ``authority`` compare: exactly off Entra ID (RFC 6749 section 3.3)."""
        return {"entra": self._is_entra(authority), "case_sensitive": authority.kind == "oidc"}

    def _known_shape(self, requested: object, tenant: str | None) -> RequestShape | None:
        """The memo of :meth:`_shape`: a dictionary lookup (``requested``: :func:`scopes_once`)."""
        try:
            return self._shapes.get((requested, tenant))
        except TypeError:  # unhashable scopes: the validation will say what is wrong
            return None

    async def _shape(self, requested: object, tenant: str | None) -> RequestShape:
        """Validate a user-token call's scopes and resolve its authority, once per shape.

        ``requested``: the caller's scopes, read once (:func:`scopes_once`).
        """
        requested = scopes_once(requested)  # type: ignore[arg-type]
        shape = self._known_shape(requested, tenant)
        if shape is not None:
            return shape
        self._check_open()
        authority = self._target_authority(tenant)
        wanted = user_scopes(requested, **self._scope_rules(authority))  # type: ignore[arg-type]
        resolved = await self._resolver.resolve(authority)
        shape = RequestShape(resolved.environment, self._realm(resolved), wanted, tenant)
        self._check_open()  # closed meanwhile: leave no memo behind
        if len(self._shapes) >= MEMO_LIMIT:
            self._shapes.clear()
        self._shapes[(requested, tenant)] = shape
        return shape

    async def _acquire_missing(
        self,
        key: AccessTokenKey,
        claims: str | None,
        lookup: Callable[[], AuthenticationResult | None],
        fetch: Callable[[], Awaitable[AuthenticationResult]],
        *,
        fresh: bool,
    ) -> AuthenticationResult:
        """A miss: one flight per (key, claims) here, then the storage, then ``fetch``."""
        self._counters.misses += 1
        tenant = self._counters.tenant(key.realm)
        tenant.misses += 1
        joined = self._flights.join((key, claims))  # one future per waiter, no coroutine
        if joined is not None:
            tenant.coalesced += 1
        waiting = joined or self._flights.run(
            (key, claims), lambda: self._fetch_via_storage(key, lookup, fetch, fresh=fresh)
        )
        if self._counters.observer is None or inside_flight():
            return await waiting
        return await self._observed(waiting, key.realm, coalesced=joined is not None)

    async def _observed(self, waiting: Awaitable[T], tenant: str, *, coalesced: bool) -> T:
        """Await a miss and tell the observer how long it took (only with an observer)."""
        started, failed = time.perf_counter(), True
        try:
            result = await waiting
            failed = False
            return result
        finally:
            observer = self._counters.observer
            if observer is not None:
                observer.acquired(
                    tenant, time.perf_counter() - started, coalesced=coalesced, failed=failed
                )

    async def _refresh_in_background(
        self,
        token: CachedToken,
        current: Callable[[AccessTokenKey], CachedToken | None],
        fetch: Callable[[], Awaitable[AuthenticationResult]],
    ) -> bool:
        """Renew a token that is in use, unless it was replaced or removed meanwhile.

        A newer token another process stored is taken from the storage instead.
        Returns whether it renewed the token (False: the token was gone).
        """
        key = token.key
        if current(key) is not token:
            return False
        await self._flights.run(
            (key, None),
            lambda: self._fetch_via_storage(
                key, lambda: self._cached(current(key), replacing=token), fetch, fresh=False
            ),
        )
        return True

    async def _fetch_via_storage(
        self,
        key: AccessTokenKey,
        lookup: Callable[[], AuthenticationResult | None],
        fetch: Callable[[], Awaitable[AuthenticationResult]],
        *,
        fresh: bool,
    ) -> AuthenticationResult:
        """Inside a flight: the storage first (and its cross-process lock), then ``fetch``."""
        if self._persistence is None:
            return await fetch()
        return await self._persistence.fetch_through(key, lookup, fetch, fresh=fresh)

    async def _write_through(self, key: AccessTokenKey) -> None:
        """Save the partition of ``key`` to the storage (after a sign-in)."""
        if self._persistence is not None:
            await self._persistence.save(partition_of(key))

    def _cached(
        self, token: CachedToken | None, *, replacing: CachedToken | None = None
    ) -> AuthenticationResult | None:
        """The result of a token that may be served (and, with ``replacing``, is newer)."""
        if token is None or token.serve_until <= self._clock.time():
            return None
        if replacing is not None and (token is replacing or token.refresh_at <= self._clock.time()):
            return None
        return self._result(token, source="cache")

    async def _client_auth(self, token_endpoint: str, now: float) -> dict[str, str]:
        """The fields that authenticate this client to the token endpoint (none for public ones)."""
        return {}

    async def _send_token_request(self, request: HttpRequest) -> TokenResponse:
        """Send a token request and parse the answer (raising the typed error it carries).

        The reporter counts it (per tenant too), logs it and tells the observer.
        """
        report = self._reporter.start(request)
        response: HttpResponse | None = None

        def not_sent() -> None:
            self._counters.requests_sent -= 1
            self._counters.tenant(report.tenant).requests_sent -= 1

        # Taken back when it never left (no connection, or none free in time in the pool).
        told = {"not_sent": not_sent} if isinstance(self._transport, AiohttpTransport) else {}
        try:
            response = await self._transport.send(report.request, **told)
            token = parse_token_response(response, self._clock.time())
        except MsalError as exc:
            self._reporter.end(report, response, exc)
            raise
        self._reporter.end(report, response, None)
        return token

    def _new_token(
        self,
        key: AccessTokenKey,
        response: TokenResponse,
        *,
        requested_at: float,
        scopes: tuple[str, ...],
        identity: Identity | None = None,
    ) -> CachedToken:
        """A cache record for a fresh token, with its serving and refresh times."""
        # Tokens fetched in the same second (a cold burst) share these int objects.
        stamps = self._stamps
        if len(stamps) >= STAMP_LIMIT:
            stamps.clear()
        second = int(requested_at)
        cached_at = stamps.setdefault(second, second)
        expires_on = cached_at + response.expires_in
        expires_on = stamps.setdefault(expires_on, expires_on)
        refresh_at = self._policy.refresh_at(cached_at, expires_on, response.refresh_in)
        entry = AccessTokenEntry(
            key=key,
            secret=response.access_token,
            scopes=scopes,
            # One string for the usual type, not one per token.
            token_type=BEARER if response.token_type == BEARER else response.token_type,
            cached_at=cached_at,
            expires_on=expires_on,
            # The same int object when equal (the usual case): one less number per token.
            extended_expires_on=(
                expires_on
                if not response.ext_expires_in or response.ext_expires_in == response.expires_in
                else cached_at + response.ext_expires_in
            ),
            refresh_on=int(refresh_at),
        )
        return CachedToken(
            entry,
            serve_until=self._policy.serve_until(cached_at, expires_on),
            refresh_at=refresh_at,
            identity=identity,
        )

    def _serve(self, token: CachedToken, refresh: Refresh, context: Any) -> AuthenticationResult:
        """A cache hit: the stored result; the first hit schedules the background refresh.

        ``refresh(token, context)`` renews the token; it is a method bound once per
        application, so a hit allocates nothing.
        """
        counters = self._counters
        counters.hits += 1
        counters.tenants[token.key.realm].hits += 1
        token.touched = True
        if not token.used:
            # False from another thread's event loop: the application's own calls schedule it.
            token.used = self._refresher.schedule(token, refresh, context)
        return token.result

    @staticmethod
    def _result(
        token: CachedToken,
        *,
        source: TokenSource,
        correlation_id: str | None = None,
        response: TokenResponse | None = None,
    ) -> AuthenticationResult:
        """The token's result as a cache hit returns it (the one it keeps), or as a fetch does.

        With ``response``, also what the authority's answer said (and an ID token
        the cache does not keep: on-behalf-of keeps none, but the answer had one).
        """
        result = token.result
        if source == "cache" and correlation_id is None and response is None:
            return result
        extra: dict[str, Any] = {}
        if response is not None:
            if result.id_token is None and response.id_token:
                extra["id_token"] = response.id_token
                extra["id_token_claims"] = decode_id_token(response.id_token)
            extra.update(
                expires_in=response.expires_in,
                ext_expires_in=response.ext_expires_in,
                refresh_token=response.refresh_token,
                scope=" ".join(response.scope) if response.scope else None,
                client_info=response.client_info,
            )
        return dataclasses.replace(
            result, token_source=source, correlation_id=correlation_id, **extra
        )
