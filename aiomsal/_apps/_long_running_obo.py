"""Long-running on-behalf-of: background work acting for a user after their token expired.

Microsoft.Identity.Web's ``InitiateLongRunningProcessInWebApi`` and
``AcquireTokenInLongRunningProcess``: a web API starts the work with the
user's (valid) incoming token and gets a session key; the on-behalf-of answer,
refresh token included, is cached under that key (MSAL's
``user_assertion_hash``) and written to the cache storage like any
on-behalf-of partition. Later, with only the key, downstream tokens come from
the cache, else from that refresh token: coalesced, refreshed in the
background while in use, and removable when the work ends.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable

from .._cache._entries import AccessTokenKey, PartitionKey
from .._cache._partitions import user_partition
from .._cache._store import CachedToken
from .._errors import MsalConfigurationError, MsalUiRequiredError
from .._protocol._grants._user_grants import build_obo_request
from .._result import AuthenticationResult
from ._shapes import RequestShape
from ._user_flows import UserFlowApplication

__all__ = ["LongRunningOnBehalfOf"]

_SESSION_KEY = re.compile(r"[A-Za-z0-9._~-]{1,128}")


class LongRunningOnBehalfOf(UserFlowApplication):
    """The long-running on-behalf-of methods of :class:`ConfidentialClientApplication`."""

    async def initiate_long_running_on_behalf_of(
        self,
        user_assertion: str,
        scopes: Iterable[str],
        *,
        session_key: str | None = None,
        tenant: str | None = None,
    ) -> tuple[AuthenticationResult, str]:
        """Start acting for the user of ``user_assertion``; return a token and the session key.

        ``session_key`` defaults to the assertion's hash (as in MSAL.NET). A
        token already cached for the session is returned as it is; otherwise
        the on-behalf-of grant is sent, and its refresh token kept for
        :meth:`acquire_token_in_long_running_process`.
        """
        if not isinstance(user_assertion, str) or not user_assertion:
            raise MsalConfigurationError("user_assertion must be the incoming access token")
        key_text = _assertion_hash(user_assertion) if session_key is None else session_key
        _check_session_key(key_text)
        shape = await self._shape(scopes, tenant)
        key = self._session_token_key(shape, key_text)
        token = self._users.find(key, shape.wanted.canonical, self._clock.time())
        if token is not None and self._users.refresh_token(key.partition) is not None:
            return self._serve(token, self._refresh_session, (shape, tenant)), key_text
        self._check_open()
        result = await self._acquire_missing(
            key,
            None,
            lambda: None,
            lambda: self._session_grant(key, user_assertion, shape, tenant),
            fresh=True,
        )
        return result, key_text

    async def acquire_token_in_long_running_process(
        self,
        session_key: str,
        scopes: Iterable[str],
        *,
        tenant: str | None = None,
        claims_challenge: str | None = None,
        force_refresh: bool = False,
    ) -> AuthenticationResult:
        """A downstream token for the session: from the cache, else its refresh token.

        Raises :class:`MsalUiRequiredError` when the session is unknown (never
        initiated, or removed) or its refresh token no longer works.
        """
        _check_session_key(session_key)
        shape = await self._shape(scopes, tenant)
        key = self._session_token_key(shape, session_key)
        wanted = shape.wanted
        if claims_challenge is None and not force_refresh:
            token = self._users.find(key, wanted.canonical, self._clock.time())
            if token is not None:
                return self._serve(token, self._refresh_session, (shape, tenant))
        if self._users.refresh_token(key.partition) is None:
            # Another process may have initiated it: read the session from the storage.
            if self._persistence is not None:
                await self._persistence.load(user_partition(key.partition))
            if self._users.refresh_token(key.partition) is None:
                raise _unknown_session()
        self._check_open()
        return await self._acquire_missing(
            key,
            claims_challenge,
            lambda: self._cached(self._users.find(key, wanted.canonical, self._clock.time())),
            lambda: self._session_refresh(key, shape, tenant, claims_challenge),
            fresh=claims_challenge is not None or force_refresh,
        )

    async def remove_long_running_process(self, session_key: str) -> bool:
        """Forget the session's tokens, here and in the storage; whether any were cached."""
        _check_session_key(session_key)
        resolved = await self._resolver.resolve(self.authority)
        partition = PartitionKey(resolved.environment, self.client_id, "", session_key)
        tokens = self._users.partition_tokens(partition)
        found = bool(tokens) or self._users.refresh_token(partition) is not None
        for token in tokens:
            self._users.remove(token.key)
        self._users.remove_refresh_token(partition)
        if self._persistence is not None:
            await self._persistence.forget(user_partition(partition))
        return found

    # -- internals -------------------------------------------------------------------------

    def _session_token_key(self, shape: RequestShape, session_key: str) -> AccessTokenKey:
        return AccessTokenKey(
            shape.environment, self.client_id, shape.realm, "", session_key, shape.wanted.target
        )

    async def _session_grant(
        self, key: AccessTokenKey, assertion: str, shape: RequestShape, tenant: str | None
    ) -> AuthenticationResult:
        wanted = shape.wanted
        return await self._redeem(
            tenant,
            wanted,
            None,
            lambda endpoint, auth, merged: build_obo_request(
                endpoint,
                client_id=self.client_id,
                user_assertion=assertion,
                scopes=wanted.with_reserved,
                client_auth=auth,
                claims=merged,
            ),
            assertion_hash=key.user_assertion_hash,
        )

    async def _session_refresh(
        self, key: AccessTokenKey, shape: RequestShape, tenant: str | None, claims: str | None
    ) -> AuthenticationResult:
        refresh_token = self._users.refresh_token(key.partition)
        if refresh_token is None:
            raise _unknown_session()
        try:
            return await self._redeem(
                tenant,
                shape.wanted,
                claims,
                self._refresh_grant(refresh_token.secret, shape.wanted),
                assertion_hash=key.user_assertion_hash,
            )
        except MsalUiRequiredError:
            self._users.remove_refresh_token(key.partition, refresh_token.secret)
            raise

    async def _refresh_session(
        self, token: CachedToken, context: tuple[RequestShape, str | None]
    ) -> bool:
        """Renew a session's token in the background with its refresh token."""
        shape, tenant = context
        key = token.key
        return await self._refresh_in_background(
            token, self._users.get, lambda: self._session_refresh(key, shape, tenant, None)
        )


def _assertion_hash(assertion: str) -> str:
    """MSAL's ``user_assertion_hash`` (base64url SHA-256), the default session key."""
    return (
        base64.urlsafe_b64encode(hashlib.sha256(assertion.encode()).digest()).rstrip(b"=").decode()
    )


def _check_session_key(session_key: object) -> None:
    if not isinstance(session_key, str) or not _SESSION_KEY.fullmatch(session_key):
        raise MsalConfigurationError(
            "session_key must be 1 to 128 letters, digits or '._~-' characters"
        )


def _unknown_session() -> MsalUiRequiredError:
    return MsalUiRequiredError(
        "no_tokens_found",
        "no long-running process has this session key (never initiated, or removed):"
        " initiate it again with a valid user assertion",
    )
