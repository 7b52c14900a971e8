"""The flows that get a user's tokens, shared by public and confidential clients.

Silent acquisition (cache, then refresh token), authorization code with PKCE,
username/password and refresh-token migration (the device code flow is in
:mod:`._device_code`, the interactive one in :mod:`._public`). Every flow stores
its answer the same way (:meth:`UserFlowApplication._store_user_tokens`) and
every later call for that user starts from the cache.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .._cache._entries import AccessTokenKey, Identity, PartitionKey, RefreshTokenEntry
from .._cache._environment import canonical_environment
from .._cache._partitions import user_partition, user_partition_prefix
from .._cache._store import CachedToken
from .._errors import MsalConfigurationError, MsalServiceError, MsalUiRequiredError
from .._protocol._auth_code import (
    AuthCodeFlow,
    build_authorization_url,
    code_from_auth_response,
    initiate_auth_code_flow,
)
from .._protocol._authority import parse_authority
from .._protocol._claims import merge_claims
from .._protocol._grants._user_grants import (
    build_auth_code_request,
    build_password_request,
    build_refresh_token_request,
)
from .._protocol._http import HttpRequest
from .._protocol._identity import (
    account_from,
    check_id_token,
    decode_id_token,
    home_account_id_for,
    parse_client_info,
)
from .._protocol._scopes import UserScopes, granted_scopes, user_scopes
from .._protocol._token_response import TokenResponse
from .._result import Account, AuthenticationResult, as_account
from .._transport._authority_resolver import ResolvedAuthority
from ._application import ClientApplication
from ._call_flights import join_call
from ._shapes import RequestShape, scopes_once

__all__ = ["UserFlowApplication"]

#: Builds a grant request from (token endpoint, client authentication, claims).
BuildRequest = Callable[[str, dict[str, str], "str | None"], HttpRequest]


class UserFlowApplication(ClientApplication):
    """User flows with MSAL's method names: a migration is "add await"."""

    # -- accounts ------------------------------------------------------------------------

    async def get_accounts(self, username: str | None = None) -> list[Account]:
        """The accounts signed in to this application (optionally one username's).

        Only this application's: its client id's, or its family's (FOCI). With
        a ``cache_storage`` that can list its partitions (``FileCacheStorage``,
        ``RedisCacheStorage``), the accounts it holds for this client are
        loaded first, so that a restarted tool finds its signed-in user.
        """
        self._check_open()
        if self._persistence is not None:
            await self._persistence.load_listed(user_partition_prefix(self.client_id))
        accounts = self._users.accounts(self.client_id)
        if username is not None:
            wanted = username.lower()
            accounts = [a for a in accounts if (a.username or "").lower() == wanted]
        return accounts

    async def remove_account(self, account: Account | Mapping[str, Any]) -> None:
        """Sign an account out of the cache: its access, refresh and ID tokens go with it.

        ``account`` is an :class:`Account` or MSAL's account dict.
        """
        self._check_open()
        account = as_account(account)
        environment = canonical_environment(account.environment)
        self._users.remove_account(account.home_account_id, {environment})
        if self._persistence is not None:
            await self._persistence.forget(
                user_partition(
                    PartitionKey(environment, self.client_id, account.home_account_id, "")
                )
            )

    # -- silent --------------------------------------------------------------------------

    async def acquire_token_silent(
        self,
        scopes: Iterable[str],
        account: Account | Mapping[str, Any] | None,
        authority: str | None = None,
        *,
        claims_challenge: str | None = None,
        force_refresh: bool = False,
        tenant: str | None = None,
    ) -> AuthenticationResult | None:
        """A token for ``account`` from the cache, else from its refresh token.

        Returns None when nothing is cached for the account; raises
        :class:`MsalUiRequiredError` when only an interactive sign-in can help.
        A cached token whose scopes include the requested ones is a hit; new
        scopes (incremental consent) are asked for with the refresh token.
        ``account`` is an :class:`Account` or MSAL's account dict.
        ``authority`` holds MSAL's third positional place; only the
        application's own authority is accepted there (use ``tenant=`` for
        another tenant).
        """
        self._check_open()
        if not account:
            return None
        account = as_account(account)
        if authority is not None and parse_authority(authority) != self.authority:
            raise MsalConfigurationError(
                "acquire_token_silent() uses the application's authority; "
                "pass tenant= for another tenant"
            )
        requested = scopes_once(scopes)  # a generator is read here, once
        shape = self._known_shape(requested, tenant)
        if shape is not None and claims_challenge is None and not force_refresh:  # a hit?
            key = AccessTokenKey(
                shape.environment, self.client_id, shape.realm, account.home_account_id, "",
                shape.wanted.target,
            )
            token = self._users.find(key, shape.wanted.canonical, self._clock.time())
            if token is not None:
                return self._serve(token, self._refresh_user_token, shape)
        home, known = account.home_account_id, None if shape is None else shape.realm
        call = ("silent", home, requested, tenant, claims_challenge, force_refresh)
        args = (requested, home, claims_challenge, force_refresh, tenant)  # a flight's, from here
        return await join_call(self, call, tenant, known, self._silent, *args)

    async def _silent(  # past the hit path (the call's flight): shape, cache, storage, a flight
        self, requested: object, home: str, claims_challenge: str | None,
        force_refresh: bool, tenant: str | None,
    ) -> AuthenticationResult | None:
        shape = await self._shape(requested, tenant)
        environment, realm, wanted = shape.environment, shape.realm, shape.wanted
        key = AccessTokenKey(environment, self.client_id, realm, home, "", wanted.target)
        if claims_challenge is None and not force_refresh:
            token = self._users.find(key, wanted.canonical, self._clock.time())
            if token is not None:
                return self._serve(token, self._refresh_user_token, shape)
        if self._users.refresh_token(key.partition) is None:
            # Another process of this application may have signed the account in.
            if self._persistence is None or not await self._persistence.load(
                user_partition(key.partition)
            ):
                return None
            if claims_challenge is None and not force_refresh:
                loaded = self._users.find(key, wanted.canonical, self._clock.time())
                if loaded is not None:
                    self._counters.storage_hits += 1
                    return self._result(loaded, source="cache")
            if self._users.refresh_token(key.partition) is None:
                return None
        return await self._acquire_missing(
            key,
            claims_challenge,
            lambda: self._cached(self._users.find(key, wanted.canonical, self._clock.time())),
            lambda: self._redeem_refresh_token(key, wanted, tenant, claims_challenge),
            fresh=claims_challenge is not None or force_refresh,
        )

    async def _refresh_user_token(self, token: CachedToken, shape: RequestShape) -> bool:
        """Renew a signed-in user's token in the background with the refresh token."""
        key, wanted, tenant = token.key, shape.wanted, shape.tenant
        return await self._refresh_in_background(
            token, self._users.get, lambda: self._redeem_refresh_token(key, wanted, tenant, None)
        )

    async def _redeem_refresh_token(
        self, key: AccessTokenKey, wanted: UserScopes, tenant: str | None, claims: str | None
    ) -> AuthenticationResult:
        refresh_token = self._users.refresh_token(key.partition)
        if refresh_token is None:
            raise MsalUiRequiredError(
                "invalid_grant", "no refresh token is cached for this account any more"
            )
        return await self._redeem(
            tenant, wanted, claims, self._refresh_grant(refresh_token.secret, wanted)
        )

    def _refresh_grant(self, refresh_token: str, wanted: UserScopes) -> BuildRequest:
        """The refresh-token grant for ``wanted``, built once the endpoint is known."""
        return lambda endpoint, auth, merged: build_refresh_token_request(
            endpoint,
            client_id=self.client_id,
            refresh_token=refresh_token,
            scopes=self._sent_scopes(wanted),
            client_auth=auth,
            claims=merged,
        )

    # -- authorization code --------------------------------------------------------------

    async def initiate_auth_code_flow(
        self,
        scopes: Iterable[str],
        redirect_uri: str,
        *,
        state: str | None = None,
        prompt: str | None = None,
        login_hint: str | None = None,
        domain_hint: str | None = None,
        claims_challenge: str | None = None,
        max_age: int | None = None,
        response_mode: str | None = None,
    ) -> AuthCodeFlow:
        """Start a sign-in: the flow holds ``auth_uri`` to send the browser to.

        Keep the flow (``flow.to_dict()`` is JSON-safe) until the browser comes
        back, then pass both to :meth:`acquire_token_by_auth_code_flow`.
        """
        self._check_open()
        wanted = user_scopes(scopes, **self._scope_rules(self.authority))
        resolved = await self._bounded(lambda: self._resolver.resolve(self.authority))
        return initiate_auth_code_flow(
            resolved.metadata.authorization_endpoint,
            client_id=self.client_id,
            redirect_uri=redirect_uri,
            scopes=self._sent_scopes(wanted),
            state=state,
            prompt=prompt,
            login_hint=login_hint,
            domain_hint=domain_hint,
            claims=merge_claims(claims_challenge, self.client_capabilities),
            response_mode=response_mode,
            max_age=max_age,
        )

    async def acquire_token_by_auth_code_flow(
        self, auth_code_flow: AuthCodeFlow | Mapping[str, Any], auth_response: Mapping[str, str]
    ) -> AuthenticationResult:
        """Finish a sign-in: check ``state``, redeem the code (PKCE), check the ID token's nonce."""
        self._check_open()
        flow = (
            auth_code_flow
            if isinstance(auth_code_flow, AuthCodeFlow)
            else AuthCodeFlow.from_dict(auth_code_flow)
        )
        code = code_from_auth_response(flow, auth_response)
        return await self._redeem_code(
            code,
            flow.scopes,
            flow.redirect_uri,
            code_verifier=flow.code_verifier,
            nonce=flow.nonce,
            claims=flow.claims,
        )

    async def get_authorization_request_url(
        self,
        scopes: Iterable[str],
        login_hint: str | None = None,
        state: str | None = None,
        redirect_uri: str | None = None,
        *,
        nonce: str | None = None,
        code_challenge: str | None = None,
        prompt: str | None = None,
        domain_hint: str | None = None,
        claims_challenge: str | None = None,
    ) -> str:
        """The sign-in URL, for applications that keep state and PKCE themselves.

        The positional order is MSAL's (``scopes, login_hint, state,
        redirect_uri``); the rest is keyword-only. Without ``redirect_uri``
        the authority uses the application's registered one.
        """
        self._check_open()
        wanted = user_scopes(scopes, **self._scope_rules(self.authority))
        resolved = await self._bounded(lambda: self._resolver.resolve(self.authority))
        return build_authorization_url(
            resolved.metadata.authorization_endpoint,
            client_id=self.client_id,
            redirect_uri=redirect_uri,
            scopes=self._sent_scopes(wanted),
            state=state,
            nonce=nonce,
            code_challenge=code_challenge,
            prompt=prompt,
            login_hint=login_hint,
            domain_hint=domain_hint,
            claims=merge_claims(claims_challenge, self.client_capabilities),
        )

    async def acquire_token_by_authorization_code(
        self,
        code: str,
        scopes: Iterable[str],
        redirect_uri: str,
        *,
        code_verifier: str | None = None,
        nonce: str | None = None,
        claims_challenge: str | None = None,
    ) -> AuthenticationResult:
        """Redeem an authorization code the application obtained itself."""
        self._check_open()
        if not isinstance(code, str) or not code:
            raise MsalConfigurationError("code must be a non-empty string")
        return await self._redeem_code(
            code,
            scopes,
            redirect_uri,
            code_verifier=code_verifier,
            nonce=nonce,
            claims=merge_claims(claims_challenge, self.client_capabilities),
        )

    async def _redeem_code(
        self,
        code: str,
        scopes: Iterable[str],
        redirect_uri: str,
        *,
        code_verifier: str | None,
        nonce: str | None,
        claims: str | None,
    ) -> AuthenticationResult:
        wanted = user_scopes(
            [s for s in scopes if s.lower() not in ("openid", "profile", "offline_access")],
            **self._scope_rules(self.authority),
        )
        return await self._redeem(
            None,
            wanted,
            claims,
            lambda endpoint, auth, merged: build_auth_code_request(
                endpoint,
                client_id=self.client_id,
                code=code,
                redirect_uri=redirect_uri,
                scopes=self._sent_scopes(wanted),
                client_auth=auth,
                code_verifier=code_verifier,
                claims=merged,
            ),
            nonce=nonce,
            merge=False,
            write_through=True,
        )

    # -- username / password, refresh token migration ------------------------------------

    async def acquire_token_by_username_password(
        self,
        username: str,
        password: str,
        scopes: Iterable[str],
        *,
        claims_challenge: str | None = None,
    ) -> AuthenticationResult:
        """Resource owner password credentials (ROPC). Prefer any interactive flow."""
        self._check_open()
        if not username or not password:
            raise MsalConfigurationError("username and password are required")
        wanted = user_scopes(scopes, **self._scope_rules(self.authority))
        return await self._redeem(
            None,
            wanted,
            claims_challenge,
            lambda endpoint, auth, merged: build_password_request(
                endpoint,
                client_id=self.client_id,
                username=username,
                password=password,
                scopes=self._sent_scopes(wanted),
                client_auth=auth,
                claims=merged,
            ),
            write_through=True,
        )

    async def acquire_token_by_refresh_token(
        self, refresh_token: str, scopes: Iterable[str]
    ) -> AuthenticationResult:
        """Bring a refresh token obtained elsewhere (a migration) into this cache."""
        self._check_open()
        if not isinstance(refresh_token, str) or not refresh_token:
            raise MsalConfigurationError("refresh_token must be a non-empty string")
        wanted = user_scopes(scopes, **self._scope_rules(self.authority))
        return await self._redeem(
            None, wanted, None, self._refresh_grant(refresh_token, wanted), write_through=True
        )

    # -- shared machinery ----------------------------------------------------------------

    async def _redeem(
        self,
        tenant: str | None,
        wanted: UserScopes,
        claims: str | None,
        build: BuildRequest,
        *,
        nonce: str | None = None,
        resolved: ResolvedAuthority | None = None,
        merge: bool = True,
        assertion_hash: str = "",
        write_through: bool = False,
    ) -> AuthenticationResult:
        """Send one user-grant request and store what it returns.

        ``write_through``: save to the cache storage now (a sign-in; silent and
        on-behalf-of acquisitions save through their coalescing path instead),
        all of it within ``timeout=`` (inside a flight, the flight's deadline).
        """
        async def redeem() -> AuthenticationResult:
            found = resolved or await self._resolver.resolve(self._target_authority(tenant))
            endpoint = found.metadata.token_endpoint
            requested_at = self._clock.time()
            merged = merge_claims(claims, self.client_capabilities) if merge else claims
            request: HttpRequest = build(
                endpoint, await self._client_auth(endpoint, requested_at), merged
            )
            response = await self._send_token_request(request)
            token = self._store_user_tokens(
                response,
                resolved=found,
                wanted=wanted,
                requested_at=requested_at,
                nonce=nonce,
                assertion_hash=assertion_hash,
            )
            if write_through:
                await self._write_through(token.key)
            return self._result(
                token,
                source="identity_provider",
                correlation_id=response.correlation_id,
                response=response,
            )

        return await self._bounded(redeem)

    def _store_user_tokens(
        self,
        response: TokenResponse,
        *,
        resolved: ResolvedAuthority,
        wanted: UserScopes,
        requested_at: float,
        nonce: str | None,
        assertion_hash: str,
    ) -> CachedToken:
        """Cache a user-grant answer: access token, refresh token, account and ID token.

        On-behalf-of answers are cached under the assertion's hash and keep no
        ID token (a web API serving many users holds only what it needs).
        """
        kind = resolved.authority.kind
        client_info = parse_client_info(response.client_info) if response.client_info else None
        claims = decode_id_token(response.id_token) if response.id_token else None
        if claims is not None:
            check_id_token(claims, client_id=self.client_id, nonce=nonce, now=requested_at)
        elif nonce is not None:
            raise MsalServiceError("invalid_response", "the answer carries no ID token to check")
        home = home_account_id_for(client_info, claims, authority_kind=kind)
        account = account_from(
            home, resolved.environment, claims=claims, client_info=client_info, authority_kind=kind
        )
        tid = (claims or {}).get("tid") or account.realm
        # Interned: the users of one tenant share one string instead of one each.
        tenant_id = sys.intern(tid) if isinstance(tid, str) and tid else None
        keep_id_token = not assertion_hash
        identity = Identity(
            home_account_id=home,
            account=account,
            tenant_id=tenant_id,
            id_token=response.id_token if keep_id_token else None,
            id_token_claims=claims if keep_id_token else None,
        )
        key = self._user_key(resolved, wanted, "" if assertion_hash else home, assertion_hash)
        token = self._new_token(
            key,
            response,
            requested_at=requested_at,
            scopes=granted_scopes(response.scope, wanted.requested),
            identity=identity,
        )
        partition = self._users.partition_of(key)
        self._users.put(token, partition)
        if response.refresh_token:
            self._users.put_refresh_token(
                RefreshTokenEntry(
                    partition=partition,
                    secret=response.refresh_token,
                    target=key.target,
                    last_modification_time=token.cached_at,
                    home_account_id=home,
                    family_id=response.foci,
                )
            )
        if not assertion_hash:
            self._users.put_account(identity, resolved.environment)
        return token

    def _user_key(
        self,
        resolved: ResolvedAuthority,
        wanted: UserScopes,
        home_account_id: str,
        assertion_hash: str = "",
    ) -> AccessTokenKey:
        return AccessTokenKey(
            environment=resolved.environment,
            client_id=self.client_id,
            realm=self._realm(resolved),
            home_account_id=home_account_id,
            user_assertion_hash=assertion_hash,
            target=wanted.target,
        )
