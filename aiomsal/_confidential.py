"""ConfidentialClientApplication: an application that can prove its own identity."""

from __future__ import annotations

import ssl
from collections.abc import Iterable

import aiohttp

from ._application import MEMO_LIMIT, ClientApplication
from ._cache._entries import AccessTokenKey
from ._cache._store import CachedToken, TokenStore
from ._clock import Clock
from ._credentials import ClientCredential, credential_from_msal
from ._grants._client_credentials import build_client_credentials_request
from ._result import AuthenticationResult
from ._scopes import client_credentials_scopes, target_key
from ._token_response import parse_token_response

__all__ = ["ConfidentialClientApplication"]


class ConfidentialClientApplication(ClientApplication):
    """A web API, web app or daemon that holds a secret, a certificate or an assertion.

    ``client_credential`` takes a :class:`ClientSecret`, :class:`ClientCertificate`
    or :class:`ClientAssertion`, or any form MSAL Python accepts (a secret
    string, a ``{"private_key": ..., "public_certificate": ...}`` dict, a
    ``{"private_key_pfx_path": ...}`` dict, a ``{"client_assertion": ...}``
    dict). Keys are loaded here, once; a malformed credential raises
    :class:`MsalConfigurationError` before any request.
    """

    def __init__(
        self,
        client_id: str,
        client_credential: ClientCredential | str | dict[str, object],
        *,
        authority: str | None = None,
        oidc_authority: str | None = None,
        instance_discovery: bool = True,
        http_session: aiohttp.ClientSession | None = None,
        timeout: float = 10.0,
        verify: bool | str | ssl.SSLContext = True,
        clock: Clock | None = None,
        expiry_margin: float = 300.0,
        refresh_fraction: float = 0.75,
    ) -> None:
        super().__init__(
            client_id,
            authority=authority,
            oidc_authority=oidc_authority,
            instance_discovery=instance_discovery,
            http_session=http_session,
            timeout=timeout,
            verify=verify,
            clock=clock,
            expiry_margin=expiry_margin,
            refresh_fraction=refresh_fraction,
        )
        self._credential = credential_from_msal(client_credential)
        #: The application token cache (client credentials), apart from user tokens.
        self._app_tokens = TokenStore()
        self._app_keys: dict[tuple[tuple[str, ...], str | None], AccessTokenKey] = {}

    def _cached_tokens(self) -> int:
        return len(self._app_tokens)

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
        ``claims_challenge`` and ``force_refresh`` skip the cache.
        """
        try:
            key = self._app_keys[(tuple(scopes), tenant)]
        except (KeyError, TypeError):
            pass
        else:
            # The hit path: dictionary lookups and a clock read, nothing that suspends.
            if claims_challenge is None and not force_refresh:
                token = self._app_tokens.get(key)
                if token is not None and token.serve_until > self._clock.time():
                    self._counters.hits += 1
                    return self._serve(token, tenant)
        return await self._acquire_for_client(scopes, tenant, claims_challenge, force_refresh)

    def _serve(self, token: CachedToken, tenant: str | None) -> AuthenticationResult:
        result = token.result
        if result is None:
            result = token.result = self._result(token, source="cache")
        if not token.used:
            token.used = True
            self._refresher.schedule(token, lambda: self._refresh_client_token(token, tenant))
        return result

    async def _acquire_for_client(
        self,
        scopes: Iterable[str],
        tenant: str | None,
        claims: str | None,
        force_refresh: bool,
    ) -> AuthenticationResult:
        self._check_open()
        requested = tuple(scopes) if not isinstance(scopes, (str, bytes)) else scopes
        authority = self._target_authority(tenant)
        normalized = client_credentials_scopes(requested, entra=self._is_entra(authority))
        resolved = await self._resolver.resolve(authority)
        key = AccessTokenKey(
            environment=resolved.environment,
            client_id=self.client_id,
            realm=self._realm(resolved),
            home_account_id="",
            user_assertion_hash="",
            target=target_key(normalized),
        )
        if len(self._app_keys) >= MEMO_LIMIT:
            self._app_keys.clear()
        self._app_keys[(tuple(requested), tenant)] = key
        if claims is None and not force_refresh:
            token = self._app_tokens.get(key)
            if token is not None and token.serve_until > self._clock.time():
                self._counters.hits += 1
                return self._serve(token, tenant)
        self._counters.misses += 1
        return await self._flights.run(
            (key, claims), lambda: self._fetch_client_token(key, normalized, tenant, claims)
        )

    async def _refresh_client_token(self, token: CachedToken, tenant: str | None) -> None:
        key = token.entry.key
        if self._app_tokens.get(key) is not token:
            return  # already replaced (a forced refresh) or removed
        await self._flights.run(
            (key, None),
            lambda: self._fetch_client_token(key, token.entry.scopes, tenant, None),
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
        client_auth = await self._credential.form_fields(
            client_id=self.client_id, token_endpoint=token_endpoint, now=requested_at
        )
        request = build_client_credentials_request(
            token_endpoint,
            client_id=self.client_id,
            scopes=scopes,
            client_auth=client_auth,
            claims=claims,
        )
        self._counters.requests_sent += 1
        response = parse_token_response(await self._transport.send(request), self._clock.time())
        token = self._store(
            self._app_tokens, key, response, requested_at=requested_at, scopes=scopes
        )
        return self._result(
            token, source="identity_provider", correlation_id=response.correlation_id
        )
