"""ConfidentialClientApplication: an application that can prove its own identity."""

from __future__ import annotations

import base64
import functools
import hashlib
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .._cache._entries import AccessTokenKey
from .._cache._partitions import partition_of
from .._cache._store import CachedToken
from .._concurrency._refresher import Refresh
from .._errors import MsalAssertionExpiredError, MsalConfigurationError, MsalUiRequiredError
from .._protocol._assertion_lifetime import assertion_expiry, check_assertion_lifetime
from .._protocol._claims import merge_claims
from .._protocol._credentials import ClientCredential, credential_from_msal
from .._protocol._grants._client_credentials import build_client_credentials_request
from .._protocol._grants._user_grants import build_obo_request
from .._protocol._region import choose_region, regional_token_endpoint
from .._protocol._scopes import client_credentials_scopes, target_key
from .._result import AuthenticationResult
from .._transport._authority_resolver import ResolvedAuthority
from ._application import MEMO_LIMIT, ClientApplication
from ._call_flights import join_call
from ._device_code import DeviceCodeFlows
from ._long_running_obo import LongRunningOnBehalfOf
from ._options import ApplicationOptions, with_application_options
from ._shapes import RequestShape, scopes_once

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["ConfidentialClientApplication"]


class ConfidentialClientApplication(LongRunningOnBehalfOf, DeviceCodeFlows):
    """A web API, web app or daemon that holds a secret, a certificate or an assertion.

    ``client_credential`` takes a :class:`ClientSecret`, :class:`ClientCertificate`
    or :class:`ClientAssertion`, or any form MSAL Python accepts (a secret
    string, a ``{"private_key": ..., "public_certificate": ...}`` dict, a
    ``{"private_key_pfx_path": ...}`` dict, a ``{"client_assertion": ...}``
    dict). ``authority`` is the third positional parameter, as in MSAL. Keys
    are loaded here, once; a malformed credential raises
    :class:`MsalConfigurationError` before any request.
    """

    @with_application_options(ClientApplication.__init__)
    def __init__(
        self,
        client_id: str,
        client_credential: ClientCredential | str | dict[str, object],
        authority: str | None = None,
        **options: Unpack[ApplicationOptions],
    ) -> None:
        super().__init__(client_id, authority, **options)
        self._credential = credential_from_msal(client_credential)
        #: The region of client-credentials requests (MSAL's azure_region), or None.
        self._region = choose_region(self._azure_region, os.environ, confidential=True)
        #: The application token cache (client credentials), apart from user tokens.
        self._app_tokens = self.token_cache._app
        #: The keys of earlier calls: by their one scope (the same string as the key's
        #: target when it is lower-case) or their scopes, for the authority's tenant ...
        self._app_keys: dict[str | tuple[str, ...], AccessTokenKey] = {}
        #: ... and by (scopes, tenant) for calls with a tenant override.
        self._tenant_app_keys: dict[tuple[tuple[str, ...], str], AccessTokenKey] = {}
        #: assertion hash -> its ``exp`` (None: unreadable), bounded like the cache.
        self._assertion_expiry: dict[str, float | None] = {}
        self._assertion_memo_limit = min(MEMO_LIMIT, options.get("max_cache_entries") or MEMO_LIMIT)
        # Bound once, so that scheduling a background refresh allocates no closure.
        self._refresh_client = self._refresh_client_token

    def _cached_tokens(self) -> int:
        return len(self._app_tokens) + len(self._users)

    async def acquire_token_for_client(
        self,
        scopes: Iterable[str],
        *,
        tenant: str | None = None,
        claims_challenge: str | None = None,
        force_refresh: bool = False,
    ) -> AuthenticationResult:
        """A token for the application itself (client credentials grant).

        Served from the cache while it is valid; concurrent callers that miss
        the cache for the same scopes share one request. ``tenant`` overrides
        the authority's tenant for this call (a multi-tenant worker).
        ``claims_challenge`` and ``force_refresh`` skip the cache. ``timeout=``
        (the application's) bounds the whole call, retries included.
        """
        requested: Any = scopes_once(scopes)  # a generator is read here, once
        try:
            if tenant is None:
                key = self._app_keys[requested[0] if len(requested) == 1 else requested]
            else:
                key = self._tenant_app_keys[(requested, tenant)]
        except (KeyError, TypeError, IndexError):
            pass
        else:
            # The hit path: dictionary lookups and a clock read, nothing that suspends.
            if claims_challenge is None and not force_refresh:
                token = self._app_tokens.get(key)
                if token is not None and token.serve_until > self._clock.time():
                    return self._serve(token, self._refresh_client, tenant)
        # No deadline of its own: the call's flight carries the deadline of the caller that
        # started it, so a coalesced waiter costs a future, not a cancel scope and a timer.
        return await self._acquire_for_client(requested, tenant, claims_challenge, force_refresh)

    def _forget_memos(self) -> None:
        super()._forget_memos()
        self._app_keys.clear()
        self._tenant_app_keys.clear()
        self._assertion_expiry.clear()

    async def _acquire_for_client(
        self,
        requested: object,
        tenant: str | None,
        claims: str | None,
        force_refresh: bool,
    ) -> AuthenticationResult:
        """A miss: callers with the same arguments share one flight from the start.

        The flight resolves the authority, derives the key and enters the key's
        flight; the callers that join it do nothing else and wake once, when the
        token is there (a cold burst's waiters are not woken between the authority's
        metadata and the token request, and the request is not queued behind them).
        """
        self._check_open()
        call = (requested, tenant, claims, force_refresh)
        return await join_call(self, call, tenant, None, self._acquire_client_call, *call)

    async def _acquire_client_call(
        self,
        requested: object,
        tenant: str | None,
        claims: str | None,
        force_refresh: bool,
    ) -> AuthenticationResult:
        self._check_open()
        authority = self._target_authority(tenant)
        normalized = client_credentials_scopes(
            requested,  # type: ignore[arg-type]  # validated there
            **self._scope_rules(authority),
        )
        # Checked before any request, as on-behalf-of does: a malformed challenge is an error.
        merge_claims(claims, ())
        resolved = await self._resolver.resolve(authority)
        self._check_open()  # closed meanwhile: leave no memo behind
        key = AccessTokenKey(
            environment=resolved.environment,
            client_id=self.client_id,
            realm=self._realm(resolved),
            home_account_id="",
            user_assertion_hash="",
            target=target_key(normalized, case_sensitive=authority.kind == "oidc"),
        )
        self._remember_app_key(tuple(requested), tenant, key)  # type: ignore[arg-type]
        if claims is None and not force_refresh:
            token = self._app_tokens.get(key)
            if token is not None and token.serve_until > self._clock.time():
                return self._serve(token, self._refresh_client, tenant)
        return await self._acquire_missing(
            key,
            claims,
            lambda: self._cached(self._app_tokens.get(key)),
            lambda: self._fetch_client_token(key, normalized, tenant, claims),
            fresh=claims is not None or force_refresh,
        )

    def _remember_app_key(
        self, requested: tuple[str, ...], tenant: str | None, key: AccessTokenKey
    ) -> None:
        """Remember the key a call's (scopes, tenant) maps to, so its next hit skips validation."""
        if tenant is None:
            memo: dict[Any, AccessTokenKey] = self._app_keys
            memo_key: object = requested[0] if len(requested) == 1 else requested
        else:
            memo, memo_key = self._tenant_app_keys, (requested, tenant)
        if len(memo) >= MEMO_LIMIT:
            memo.clear()
        memo[memo_key] = key

    async def _refresh_client_token(self, token: CachedToken, tenant: str | None) -> bool:
        """Renew an application token in the background (``tenant``: the call's override)."""
        key, scopes = token.key, token.scopes
        return await self._refresh_in_background(
            token,
            self._app_tokens.get,
            lambda: self._fetch_client_token(key, scopes, tenant, None),
        )

    async def _fetch_client_token(
        self,
        key: AccessTokenKey,
        scopes: tuple[str, ...],
        tenant: str | None,
        claims: str | None,
    ) -> AuthenticationResult:
        resolved = await self._resolver.resolve(self._target_authority(tenant))
        token_endpoint = resolved.metadata.token_endpoint
        requested_at = self._clock.time()
        request = build_client_credentials_request(
            self._regional(resolved, token_endpoint),
            client_id=self.client_id,
            scopes=scopes,
            # The assertion's audience stays the global endpoint, as MSAL's does.
            client_auth=await self._client_auth(token_endpoint, requested_at),
            # The challenge with the client's capabilities (xms_cc), as every grant sends them.
            claims=merge_claims(claims, self.client_capabilities),
        )
        response = await self._send_token_request(request)
        token = self._new_token(key, response, requested_at=requested_at, scopes=scopes)
        self._app_tokens.put(token)
        return self._result(
            token,
            source="identity_provider",
            correlation_id=response.correlation_id,
            response=response,
        )

    def _regional(self, resolved: ResolvedAuthority, token_endpoint: str) -> str:
        """Where a client-credentials request goes: the region's endpoint on Entra ID."""
        if self._region is None or resolved.authority.kind != "aad":
            return token_endpoint
        return regional_token_endpoint(token_endpoint, self._region) or token_endpoint

    async def remove_tokens_for_client(self) -> None:
        """Forget this application's own tokens (client credentials), as MSAL's method does.

        User and on-behalf-of tokens stay. With a cache storage, the
        partitions of the tenants whose tokens were held are deleted there too.
        """
        keys = [t.key for t in self._app_tokens if t.key.client_id == self.client_id]
        for key in keys:
            self._app_tokens.remove(key)
        if self._persistence is not None:
            for partition in sorted({partition_of(key) for key in keys}):
                await self._persistence.forget(partition)

    async def _client_auth(self, token_endpoint: str, now: float) -> dict[str, str]:
        # Entra accepts an assertion again; a generic OIDC authority may refuse a seen jti.
        return await self._credential.form_fields(
            client_id=self.client_id,
            token_endpoint=token_endpoint,
            now=now,
            reuse=self._is_entra(self.authority),
            extra_claims=self._client_claims,
        )

    # -- on-behalf-of --------------------------------------------------------------------

    async def acquire_token_on_behalf_of(
        self,
        user_assertion: str,
        scopes: Iterable[str],
        *,
        claims_challenge: str | None = None,
        force_refresh: bool = False,
        tenant: str | None = None,
    ) -> AuthenticationResult:
        """A token for a downstream API, on behalf of the user whose token this API received.

        Tokens are cached per incoming assertion (by its SHA-256, MSAL's
        ``user_assertion_hash``), so a repeated request with the same
        assertion is a cache hit. On a miss the refresh token obtained through
        the on-behalf-of grant is tried first, then the grant itself.
        Concurrent misses for one (assertion, scopes) share one request.

        An assertion whose ``exp`` has passed (read without verification, with
        five minutes of clock skew, on the application's clock) is refused with
        :class:`MsalAssertionExpiredError` before the cache or a refresh token
        is consulted.
        """
        if not isinstance(user_assertion, str) or not user_assertion:
            raise MsalConfigurationError("user_assertion must be the incoming access token")
        assertion_hash = user_assertion_hash(user_assertion)
        self._check_assertion(user_assertion, assertion_hash)
        requested = scopes_once(scopes)  # a generator is read here, once
        prefix = self._known_shape(requested, tenant)
        if prefix is not None and claims_challenge is None and not force_refresh:
            # The hit path: dictionary lookups and a clock read, nothing that suspends.
            wanted = prefix.wanted
            key = AccessTokenKey(
                prefix.environment, self.client_id, prefix.realm, "", assertion_hash, wanted.target
            )
            token = self._users.get(key)
            if token is None or token.serve_until <= self._clock.time():
                token = self._users.find(key, wanted.canonical, self._clock.time())
            if token is not None:
                renew = prefix.renew or self._obo_renewal(prefix)
                return self._serve(token, renew, user_assertion)
        # No deadline of its own: as for client credentials, the misses with the same
        # arguments share the call's flight, which carries the starting caller's deadline.
        self._check_open()
        call = ("on-behalf-of", assertion_hash, requested, tenant, claims_challenge, force_refresh)
        known = None if prefix is None else prefix.realm
        return await join_call(
            self, call, tenant, known, self._obo,
            user_assertion, assertion_hash, requested, claims_challenge, force_refresh, tenant,
        )

    def _check_assertion(self, user_assertion: str, assertion_hash: str) -> None:
        """Refuse an expired incoming assertion (the one check a long-running OBO skips).

        Its ``exp`` is read once per assertion and remembered (bounded like the
        cache), so that a hit does not decode the token again.
        """
        memo = self._assertion_expiry
        try:
            expires_at = memo[assertion_hash]
        except KeyError:
            expires_at = assertion_expiry(user_assertion)
            if len(memo) >= self._assertion_memo_limit:
                memo.clear()
            memo[assertion_hash] = expires_at
        check_assertion_lifetime(expires_at, self._clock.time())

    def _assertion_expired(self, user_assertion: str) -> bool:
        try:
            self._check_assertion(user_assertion, user_assertion_hash(user_assertion))
        except MsalAssertionExpiredError:
            return True
        return False

    async def _obo(
        self,
        user_assertion: str,
        assertion_hash: str,
        requested: object,
        claims_challenge: str | None,
        force_refresh: bool,
        tenant: str | None,
    ) -> AuthenticationResult:
        """On-behalf-of past the hit path (the call's flight): the shape, the cache, the key's."""
        prefix = await self._shape(requested, tenant)
        wanted = prefix.wanted
        key = AccessTokenKey(
            prefix.environment, self.client_id, prefix.realm, "", assertion_hash, wanted.target
        )
        if claims_challenge is None and not force_refresh:
            token = self._users.get(key)
            if token is None or token.serve_until <= self._clock.time():
                token = self._users.find(key, wanted.canonical, self._clock.time())
            if token is not None:
                renew = prefix.renew or self._obo_renewal(prefix)
                return self._serve(token, renew, user_assertion)
        self._check_open()
        return await self._acquire_missing(
            key,
            claims_challenge,
            lambda: self._cached(self._users.find(key, wanted.canonical, self._clock.time())),
            lambda: self._fetch_obo(key, user_assertion, prefix, tenant, claims_challenge),
            fresh=claims_challenge is not None or force_refresh,
        )

    def _obo_renewal(self, prefix: RequestShape) -> Refresh:
        """The background renewal of the on-behalf-of tokens of one shape, made once."""
        renew = prefix.renew = functools.partial(self._refresh_obo_token, prefix)
        return renew

    async def _refresh_obo_token(
        self, prefix: RequestShape, token: CachedToken, assertion: str
    ) -> bool:
        """Renew an on-behalf-of token in the background (its refresh token first)."""
        if self._assertion_expired(assertion):
            return False  # not on behalf of a user whose token has expired
        key, tenant = token.key, prefix.tenant
        return await self._refresh_in_background(
            token, self._users.get, lambda: self._fetch_obo(key, assertion, prefix, tenant, None)
        )

    async def _fetch_obo(
        self,
        key: AccessTokenKey,
        assertion: str,
        prefix: RequestShape,
        tenant: str | None,
        claims: str | None,
    ) -> AuthenticationResult:
        wanted = prefix.wanted
        refresh_token = self._users.refresh_token(key.partition)
        if refresh_token is not None and claims is None:
            try:
                return await self._redeem(
                    tenant,
                    wanted,
                    None,
                    self._refresh_grant(refresh_token.secret, wanted),
                    assertion_hash=key.user_assertion_hash,
                )
            except MsalUiRequiredError:
                # The refresh token is spent; the assertion may still be good.
                self._users.remove_refresh_token(key.partition, refresh_token.secret)
        return await self._redeem(
            tenant,
            wanted,
            claims,
            lambda endpoint, auth, merged: build_obo_request(
                endpoint,
                client_id=self.client_id,
                user_assertion=assertion,
                scopes=self._sent_scopes(wanted),
                client_auth=auth,
                claims=merged,
            ),
            assertion_hash=key.user_assertion_hash,
        )


def user_assertion_hash(assertion: str) -> str:
    """MSAL's ``user_assertion_hash``: base64url (no padding) of the assertion's SHA-256."""
    digest = hashlib.sha256(assertion.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
