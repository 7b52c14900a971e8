"""TokenValidator: validates the bearer tokens an async web API receives.

It learns the issuer and the signing keys from the authority's OpenID
metadata and JWKS, through aiomsal's transport and authority resolver: the
first load is coalesced (one request however many callers wait), the keys are
refreshed in the background in a task group the validator owns, an unknown
``kid`` triggers at most one refetch per ``unknown_key_cooldown``, and the last
good keys keep serving while the endpoint is down. A token already validated
is answered from a bounded in-memory cache until it expires (a dictionary
lookup and a clock read).
"""

from __future__ import annotations

import logging
import random
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .._concurrency._clock import Clock, SystemClock
from .._concurrency._singleflight import SingleFlight
from .._concurrency._tasks import TaskRunner
from .._errors import (
    MsalClaimsChallengeError,
    MsalConfigurationError,
    MsalError,
    MsalInvalidTokenError,
    MsalServiceError,
    MsalSigningKeysUnavailableError,
)
from .._protocol._authority import (
    Authority,
    AuthorityMetadata,
    build_metadata_request,
    parse_authority,
    parse_metadata_response,
)
from .._protocol._http import HttpRequest
from .._protocol._json import decode_json
from .._protocol._token_validation import (
    TENANT_PLACEHOLDER,
    SigningKey,
    ValidatedToken,
    ValidationPolicy,
    bearer_token,
    check_access,
    claims_challenge,
    parse_jwks,
    read_header,
    verify_token,
)
from .._transport._aiohttp_transport import AiohttpTransport
from .._transport._authority_resolver import AuthorityResolver

if TYPE_CHECKING:
    import aiohttp

__all__ = ["TokenValidator", "TokenValidatorStatistics"]

_log = logging.getLogger("aiomsal")

#: The v1 (``sts``) issuer host of each Entra sign-in host whose v1 tokens use another host.
_V1_ISSUER_HOSTS = {
    "login.microsoftonline.com": "sts.windows.net",
    "login.windows.net": "sts.windows.net",
    "login.microsoft.com": "sts.windows.net",
    "sts.windows.net": "sts.windows.net",
    "login.chinacloudapi.cn": "sts.chinacloudapi.cn",
    "login.partner.microsoftonline.cn": "sts.chinacloudapi.cn",
}


#: Seconds during which no first load is tried again after one failed.
_LOAD_RETRY_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class TokenValidatorStatistics:
    """A snapshot of a validator's counters."""

    #: Tokens validated on first sight (signature checked).
    validated: int
    #: Validations answered from the cache of already-validated tokens.
    cache_hits: int
    #: Tokens refused (any reason, insufficient scope included).
    rejected: int
    #: JWKS documents fetched (successfully or not).
    key_fetches: int
    #: Of those, the ones that failed (the last good keys kept serving).
    key_fetch_failures: int
    #: Tokens held in the cache now.
    cached_tokens: int
    #: Signing keys known now.
    signing_keys: int


class TokenValidator:
    """Validates incoming access tokens for one API (one client id).

    ``authority`` is an Entra authority: a tenant (single-tenant API: tokens
    from that tenant only, v1 ``https://sts.windows.net/{tid}/`` and v2
    ``.../{tid}/v2.0`` issuers), or ``common``/``organizations`` (multi-tenant:
    any tenant whose token's issuer matches its own ``tid``, narrowed with
    ``allowed_tenants``); a B2C authority; or ``oidc_authority`` for any
    OpenID Connect issuer (its metadata's issuer exactly). ``audiences``
    default to the client id and ``api://{client id}``; ``issuers`` overrides
    the issuers learnt from the metadata (``{tenantid}`` templates allowed).

    Use it as an async context manager (or call :meth:`aclose`): the
    background key refresh lives in a task group the validator owns.
    """

    def __init__(
        self,
        client_id: str,
        *,
        authority: str | None = None,
        oidc_authority: str | None = None,
        audiences: Sequence[str] | None = None,
        issuers: Sequence[str] | None = None,
        allowed_tenants: Iterable[str] | None = None,
        clock_skew: float = 300.0,
        key_refresh_interval: float = 3600.0,
        unknown_key_cooldown: float = 300.0,
        max_cached_tokens: int = 10_000,
        instance_discovery: bool = False,
        http_session: aiohttp.ClientSession | None = None,
        timeout: float = 10.0,
        verify: bool | str | ssl.SSLContext = True,
        clock: Clock | None = None,
    ) -> None:
        if not isinstance(client_id, str) or not client_id.strip():
            raise MsalConfigurationError("client_id must be a non-empty string")
        if authority is None and oidc_authority is None:
            raise MsalConfigurationError("give the authority (or oidc_authority) of the tokens")
        self.client_id = client_id
        self.authority: Authority = parse_authority(authority, oidc_authority=oidc_authority)
        if verify is False and not self.authority.is_loopback:
            raise MsalConfigurationError("verify=False is only allowed for loopback authorities")
        if isinstance(audiences, str) or isinstance(issuers, str):
            raise MsalConfigurationError("audiences and issuers are lists of strings")
        self.audiences = (
            tuple(audiences) if audiences is not None else (client_id, f"api://{client_id}")
        )
        if not self.audiences or not all(isinstance(a, str) and a for a in self.audiences):
            raise MsalConfigurationError("audiences must be non-empty strings")
        self._issuers = tuple(issuers) if issuers is not None else None
        if self._issuers is not None and not all(isinstance(i, str) and i for i in self._issuers):
            raise MsalConfigurationError("issuers must be non-empty strings")
        self._allowed = _tenant_set(allowed_tenants)
        self._skew = _seconds("clock_skew", clock_skew, 0, 3600)
        self._refresh_interval = _seconds("key_refresh_interval", key_refresh_interval, 60, 86400)
        self._cooldown = _seconds("unknown_key_cooldown", unknown_key_cooldown, 1, 86400)
        if isinstance(max_cached_tokens, bool) or not (
            isinstance(max_cached_tokens, int) and max_cached_tokens >= 0
        ):
            raise MsalConfigurationError("max_cached_tokens must be a non-negative integer")
        self._max_cached = max_cached_tokens
        self._clock: Clock = clock or SystemClock()
        self._runner = TaskRunner()
        # One immediate retry: a key fetch waits on no clock a test might hold still.
        self._transport = AiohttpTransport(
            clock=self._clock,
            session=http_session,
            timeout=timeout,
            verify=verify,
            retry_backoff=0.0,
        )
        self._resolver = AuthorityResolver(
            self._transport, self._runner, instance_discovery=instance_discovery
        )
        self._flights: SingleFlight[str, dict[str, SigningKey]] = SingleFlight(self._runner)
        self._policy: ValidationPolicy | None = None
        self._metadata: AuthorityMetadata | None = None
        self._keys: dict[str, SigningKey] = {}
        self._last_key_fetch = float("-inf")
        self._load_retry_at = float("-inf")
        self._refreshing = False
        #: Already-validated tokens, oldest first.
        self._validated: dict[str, ValidatedToken] = {}
        self._counts = {"validated": 0, "hits": 0, "rejected": 0, "fetches": 0, "failures": 0}

    def __repr__(self) -> str:
        return f"TokenValidator(client_id={self.client_id!r}, authority={self.authority.url!r})"

    async def __aenter__(self) -> TokenValidator:
        if self._runner.closed:
            raise MsalError("the token validator is closed")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the background key refresh and close connections."""
        closed = MsalError("the token validator was closed")
        await self._runner.aclose()
        self._flights.abort(closed)
        self._resolver.abort(closed)
        await self._transport.aclose()

    def statistics(self) -> TokenValidatorStatistics:
        """The validator's counters: validations, cache hits, refusals, key fetches."""
        c = self._counts
        return TokenValidatorStatistics(
            validated=c["validated"],
            cache_hits=c["hits"],
            rejected=c["rejected"],
            key_fetches=c["fetches"],
            key_fetch_failures=c["failures"],
            cached_tokens=len(self._validated),
            signing_keys=len(self._keys),
        )

    # -- validation ----------------------------------------------------------------------

    async def validate(
        self, token: str, *, scopes: Iterable[str] = (), roles: Iterable[str] = ()
    ) -> ValidatedToken:
        """Validate an access token; with ``scopes``/``roles``, also require them.

        Raises :class:`MsalInvalidTokenError` (401) for a token that is not
        acceptable, :class:`MsalInsufficientScopeError` (403) for a valid one
        that lacks the permissions, :class:`MsalSigningKeysUnavailableError`
        (503) when no signing keys could ever be fetched.
        """
        try:
            cached = self._validated.get(token)
        except TypeError:
            cached = None
        if cached is not None and cached.expires_on + self._skew > self._clock.time():
            self._counts["hits"] += 1
            if scopes or roles:
                self._check_access(cached, scopes, roles)
            return cached
        return await self._validate_new(token, scopes, roles)

    async def validate_authorization(
        self,
        authorization: str | None,
        *,
        scopes: Iterable[str] = (),
        roles: Iterable[str] = (),
    ) -> ValidatedToken:
        """Validate the token of an ``Authorization`` header (a missing one: 401, no error code)."""
        try:
            token = bearer_token(authorization)
        except MsalError:
            self._counts["rejected"] += 1
            raise
        return await self.validate(token, scopes=scopes, roles=roles)

    def claims_challenge(
        self, token: ValidatedToken, claims: str | dict[str, Any]
    ) -> MsalClaimsChallengeError | MsalInvalidTokenError:
        """The error to raise when ``token`` must be replaced by one satisfying ``claims``.

        A CAE-capable caller (``xms_cc`` contains ``cp1``) gets Entra's claims
        challenge (401 ``insufficient_claims``), pointing at the authorization
        endpoint of the caller's tenant; any other caller a plain 401.
        """
        metadata = self._metadata
        endpoint = (
            metadata.authorization_endpoint
            if metadata is not None
            else f"{self.authority.url}/oauth2/v2.0/authorize"
        )
        tenant = self.authority.tenant
        if self.authority.is_multi_tenant and tenant and token.tenant_id:
            endpoint = endpoint.replace(f"/{tenant}/", f"/{token.tenant_id}/", 1)
        return claims_challenge(token, claims, authorization_uri=endpoint)

    def _check_access(
        self, token: ValidatedToken, scopes: Iterable[str], roles: Iterable[str]
    ) -> None:
        try:
            check_access(token, scopes=scopes, roles=roles)
        except MsalError:
            self._counts["rejected"] += 1
            raise

    async def _validate_new(
        self, token: str, scopes: Iterable[str], roles: Iterable[str]
    ) -> ValidatedToken:
        try:
            header = read_header(token)
            policy = await self._ready()
            key = self._keys.get(header.kid)
            if key is None:
                key = await self._unknown_key(header.kid)
            validated = verify_token(token, header, key, policy, self._clock.time())
        except MsalError:
            self._counts["rejected"] += 1
            raise
        self._counts["validated"] += 1
        if self._max_cached:
            if len(self._validated) >= self._max_cached:
                del self._validated[next(iter(self._validated))]
            self._validated[token] = validated
        if scopes or roles:
            self._check_access(validated, scopes, roles)
        return validated

    async def _unknown_key(self, kid: str) -> SigningKey:
        """Refetch the keys for an unknown ``kid``, at most once per cooldown."""
        if self._clock.time() - self._last_key_fetch >= self._cooldown:
            try:
                await self._flights.run("keys", self._fetch_keys)
            except MsalError as exc:
                _log.warning("aiomsal: refetching signing keys failed: %s", exc)
        key = self._keys.get(kid)
        if key is None:
            raise MsalInvalidTokenError("the bearer token is signed by an unknown key")
        return key

    # -- metadata and keys ---------------------------------------------------------------

    async def _ready(self) -> ValidationPolicy:
        """The policy, once the metadata and a first key set are loaded (coalesced)."""
        if self._policy is not None and self._keys:
            return self._policy
        if self._clock.time() < self._load_retry_at:
            raise MsalSigningKeysUnavailableError(
                "the signing keys of the authority could not be fetched (retrying shortly)"
            )
        try:
            await self._flights.run("keys", self._fetch_keys)
        except MsalError as exc:
            if self._policy is not None and self._keys:
                return self._policy
            # Not again for a few seconds: a down authority is not hammered by every request.
            self._load_retry_at = self._clock.time() + _LOAD_RETRY_SECONDS
            raise MsalSigningKeysUnavailableError(
                "the signing keys of the authority could not be fetched"
            ) from exc
        assert self._policy is not None
        return self._policy

    async def _fetch_keys(self) -> dict[str, SigningKey]:
        """Inside a flight: the metadata (once) and the JWKS; the keys replace the old ones."""
        self._last_key_fetch = self._clock.time()
        metadata = self._metadata
        if metadata is None:
            metadata = (await self._resolver.resolve(self.authority)).metadata
            self._metadata = metadata
        if self._policy is None:
            self._policy = self._make_policy(metadata)
        if not metadata.jwks_uri:
            raise MsalServiceError("invalid_response", "the authority's metadata has no jwks_uri")
        self._counts["fetches"] += 1
        try:
            response = await self._transport.send(
                HttpRequest("GET", metadata.jwks_uri, headers={"Accept": "application/json"})
            )
            if response.status != 200:
                raise MsalServiceError(
                    "invalid_response",
                    f"the JWKS endpoint answered HTTP {response.status}",
                    status=response.status,
                )
            try:
                keys = parse_jwks(decode_json(response.body))
            except ValueError as exc:
                raise MsalServiceError("invalid_response", f"unusable JWKS: {exc}") from None
        except MsalError:
            self._counts["failures"] += 1
            raise
        removed = self._keys.keys() - keys.keys()
        self._keys = keys
        if removed:
            # Tokens signed by a retired key are trusted no longer.
            self._validated.clear()
        if not self._refreshing:
            self._refreshing = True
            self._runner.spawn(self._refresh_loop)
        return keys

    async def _refresh_loop(self) -> None:
        """Refetch the metadata and keys every ``key_refresh_interval`` (±10%).

        A failed refresh keeps the last good ones and is tried again after
        ``unknown_key_cooldown`` (if that is sooner).
        """
        interval = self._refresh_interval
        while True:
            jitter = random.uniform(0.9, 1.1)  # noqa: S311 - spreading load, not a secret
            await self._clock.sleep(interval * jitter)
            try:
                await self._refresh_metadata()
                await self._flights.run("keys", self._fetch_keys)
            except MsalError as exc:
                _log.warning("aiomsal: background refresh of signing keys failed: %s", exc)
                interval = min(self._refresh_interval, self._cooldown)
            else:
                interval = self._refresh_interval

    async def _refresh_metadata(self) -> None:
        """Read the metadata again (a moved ``jwks_uri``); on failure keep the one known."""
        try:
            response = await self._transport.send(build_metadata_request(self.authority))
            self._metadata = parse_metadata_response(self.authority, response)
        except MsalError as exc:
            _log.warning("aiomsal: refreshing the authority's metadata failed: %s", exc)

    def _make_policy(self, metadata: AuthorityMetadata) -> ValidationPolicy:
        authority = self.authority
        entra = authority.kind in ("aad", "ciam")
        if self._issuers is not None:
            issuers = self._issuers
        elif entra:
            issuers = _entra_issuers(authority, metadata.issuer)
        else:
            issuers = (metadata.issuer,)
        return ValidationPolicy(
            issuers=issuers,
            audiences=self.audiences,
            allowed_tenants=self._allowed,
            clock_skew=self._skew,
            entra=entra,
        )


def _tenant_set(tenants: object) -> frozenset[str] | None:
    """The allow-list of tenant ids, lower-case (None: any tenant)."""
    if tenants is None:
        return None
    try:
        listed = [] if isinstance(tenants, str) else list(tenants)  # type: ignore[call-overload]
    except TypeError:
        listed = []
    if not listed or not all(isinstance(t, str) and t for t in listed):
        raise MsalConfigurationError("allowed_tenants is a non-empty list of tenant ids")
    return frozenset(t.lower() for t in listed)


def _seconds(name: str, value: object, low: float, high: float) -> float:
    """A number of seconds between ``low`` and ``high``, or a configuration error."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise MsalConfigurationError(f"{name} must be a number of seconds from {low:g} to {high:g}")
    return float(value)


def _entra_issuers(authority: Authority, metadata_issuer: str) -> tuple[str, ...]:
    """The v2 and v1 issuers of an Entra authority (templates for a multi-tenant one)."""
    scheme_host, _, path = metadata_issuer.partition("://")
    host, _, rest = path.partition("/")
    tenant = rest.split("/", 1)[0] if rest else ""
    if authority.is_multi_tenant or tenant == TENANT_PLACEHOLDER:
        tenant = TENANT_PLACEHOLDER
        v2 = f"{scheme_host}://{host}/{tenant}/v2.0"
    else:
        v2 = metadata_issuer
    v1_host = _V1_ISSUER_HOSTS.get(host.lower())
    v1 = f"https://{v1_host}/{tenant}/" if v1_host else f"{scheme_host}://{host}/{tenant}/"
    return (v2, v1) if tenant else (metadata_issuer,)
