"""The methods both MSAL-compatible applications share, over a typed application."""

from __future__ import annotations

import warnings
from collections.abc import Awaitable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from .._apps._application import ClientApplication
from .._apps._user_flows import UserFlowApplication
from .._cache._token_cache import SerializableTokenCache
from .._errors import MsalConfigurationError, MsalServiceError, MsalSignInError
from .._result import AuthenticationResult
from .._statistics import CacheStatistics
from .._transport._aiohttp_transport import is_client_session
from ._dicts import (
    AUTH_SCHEME_UNSUPPORTED,
    AuthResponseError,
    error_dict,
    silent_error_dict,
    unsupported,
)

if TYPE_CHECKING:
    import aiohttp

__all__ = ["FaceLifecycle", "MsalFace", "http_session_of"]

_Face = TypeVar("_Face", bound="FaceLifecycle")


def http_session_of(http_client: object) -> aiohttp.ClientSession | None:
    """MSAL's ``http_client``: here an :class:`aiohttp.ClientSession` (or None)."""
    if http_client is None:
        return None
    if is_client_session(http_client):
        return http_client
    raise MsalConfigurationError(
        "http_client must be an aiohttp.ClientSession (aiomsal sends with aiohttp)"
    )


class FaceLifecycle:
    """``async with``, ``aclose()`` and ``statistics()`` of a face, from ``self.application``."""

    #: The typed aiomsal application underneath (its cache, coalescing and refresh).
    application: ClientApplication

    async def __aenter__(self: _Face) -> _Face:
        await self.application.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """End the application's connections and background refreshes (MSAL has no such call)."""
        await self.application.aclose()

    def statistics(self) -> CacheStatistics:
        """aiomsal's counters of the application underneath."""
        return self.application.statistics()


class MsalFace(FaceLifecycle):
    """MSAL Python's application methods, returning MSAL's dicts, over ``self.application``.

    Every method MSAL has as a blocking call is a coroutine here ("add
    ``await``"); :meth:`is_pop_supported` stays a plain call, as its answer is
    known at once.
    """

    application: UserFlowApplication

    def __init__(self, application: UserFlowApplication) -> None:
        self.application = application
        self.client_id = application.client_id
        self.token_cache: SerializableTokenCache = application.token_cache

    def __repr__(self) -> str:
        return f"{type(self).__name__}(client_id={self.client_id!r})"

    def is_pop_supported(self) -> bool:
        """Proof-of-Possession needs MSAL's broker, which aiomsal has not: always False."""
        return False

    # -- results ---------------------------------------------------------------------------

    def _dict(self, result: AuthenticationResult) -> dict[str, Any]:
        return result.to_dict(now=self.application._clock.time())

    async def _token(self, call: Awaitable[AuthenticationResult]) -> dict[str, Any]:
        """The result dict of ``call``, or MSAL's error dict when the authority refused."""
        try:
            return self._dict(await call)
        except MsalServiceError as error:
            return error_dict(error)

    # -- accounts and silent acquisition ---------------------------------------------------

    async def get_accounts(self, username: str | None = None) -> list[dict[str, str]]:
        """MSAL's account dicts of the accounts signed in (optionally one username's)."""
        return [account.to_dict() for account in await self.application.get_accounts(username)]

    async def remove_account(self, account: Mapping[str, Any]) -> None:
        """Sign an account out of the cache (MSAL's account dict, or an :class:`Account`)."""
        await self.application.remove_account(account)

    async def acquire_token_silent(
        self,
        scopes: Sequence[str],
        account: Mapping[str, Any] | None,
        authority: str | None = None,
        force_refresh: bool = False,
        claims_challenge: str | None = None,
        forwarded_client_claims: str | None = None,
        auth_scheme: object = None,
    ) -> dict[str, Any] | None:
        """A result dict from the cache or the refresh token; None when neither serves."""
        if not account:
            return None
        result = await self.acquire_token_silent_with_error(
            scopes,
            account,
            authority,
            force_refresh,
            claims_challenge,
            forwarded_client_claims,
            auth_scheme,
        )
        return result if result and "error" not in result else None

    async def acquire_token_silent_with_error(
        self,
        scopes: Sequence[str],
        account: Mapping[str, Any] | None,
        authority: str | None = None,
        force_refresh: bool = False,
        claims_challenge: str | None = None,
        forwarded_client_claims: str | None = None,
        auth_scheme: object = None,
    ) -> dict[str, Any] | None:
        """As :meth:`acquire_token_silent`, but a failed refresh gives MSAL's error dict.

        None when nothing is cached for the account.
        """
        if not account:
            return None
        if authority:
            warnings.warn(  # MSAL's words: it ignores the parameter too
                "We haven't decided how/if this method will accept authority parameter",
                stacklevel=2,
            )
        if forwarded_client_claims is not None:
            raise unsupported("forwarded_client_claims")
        if auth_scheme is not None:
            raise MsalConfigurationError(AUTH_SCHEME_UNSUPPORTED)
        try:
            result = await self.application.acquire_token_silent(
                scopes, account, force_refresh=force_refresh, claims_challenge=claims_challenge
            )
        except MsalServiceError as error:
            return silent_error_dict(error)
        return None if result is None else self._dict(result)

    # -- authorization code --------------------------------------------------------------

    async def initiate_auth_code_flow(
        self,
        scopes: Sequence[str],
        redirect_uri: str | None = None,
        state: str | None = None,
        prompt: str | None = None,
        login_hint: str | None = None,
        domain_hint: str | None = None,
        claims_challenge: str | None = None,
        max_age: int | None = None,
        response_mode: str | None = None,
    ) -> dict[str, Any]:
        """MSAL's auth code flow dict; send the browser to its ``auth_uri``."""
        if redirect_uri is None:
            raise MsalConfigurationError("aiomsal needs the redirect_uri of the auth code flow")
        flow = await self.application.initiate_auth_code_flow(
            scopes,
            redirect_uri,
            state=state,
            prompt=prompt,
            login_hint=login_hint,
            domain_hint=domain_hint,
            claims_challenge=claims_challenge,
            max_age=max_age,
            response_mode=response_mode,
        )
        return flow.to_dict()

    async def acquire_token_by_auth_code_flow(
        self,
        auth_code_flow: Mapping[str, Any],
        auth_response: Mapping[str, str],
        scopes: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Finish a sign-in; a response that is not this flow's raises ``ValueError``, as in MSAL.

        ``scopes`` is accepted and unused: the flow's scopes are redeemed.
        """
        try:
            return await self._token(
                self.application.acquire_token_by_auth_code_flow(auth_code_flow, auth_response)
            )
        except MsalSignInError as error:
            raise AuthResponseError(str(error)) from None

    async def get_authorization_request_url(
        self,
        scopes: Sequence[str],
        login_hint: str | None = None,
        state: str | None = None,
        redirect_uri: str | None = None,
        response_type: str = "code",
        prompt: str | None = None,
        nonce: str | None = None,
        domain_hint: str | None = None,
        claims_challenge: str | None = None,
    ) -> str:
        """The sign-in URL, with MSAL's positional order."""
        if response_type != "code":
            raise unsupported(f"response_type={response_type!r}")
        return await self.application.get_authorization_request_url(
            scopes,
            login_hint,
            state,
            redirect_uri,
            prompt=prompt,
            nonce=nonce,
            domain_hint=domain_hint,
            claims_challenge=claims_challenge,
        )

    async def acquire_token_by_authorization_code(
        self,
        code: str,
        scopes: Sequence[str],
        redirect_uri: str | None = None,
        nonce: str | None = None,
        claims_challenge: str | None = None,
        forwarded_client_claims: str | None = None,
    ) -> dict[str, Any]:
        """Redeem an authorization code the application obtained itself."""
        if forwarded_client_claims is not None:
            raise unsupported("forwarded_client_claims")
        if redirect_uri is None:
            raise MsalConfigurationError("aiomsal needs the redirect_uri the code was sent to")
        return await self._token(
            self.application.acquire_token_by_authorization_code(
                code, scopes, redirect_uri, nonce=nonce, claims_challenge=claims_challenge
            )
        )

    # -- username/password, migration ----------------------------------------------------

    async def acquire_token_by_username_password(
        self,
        username: str,
        password: str,
        scopes: Sequence[str],
        claims_challenge: str | None = None,
        auth_scheme: object = None,
    ) -> dict[str, Any]:
        """Resource owner password credentials (ROPC)."""
        if auth_scheme is not None:
            raise MsalConfigurationError(AUTH_SCHEME_UNSUPPORTED)
        return await self._token(
            self.application.acquire_token_by_username_password(
                username, password, scopes, claims_challenge=claims_challenge
            )
        )

    async def acquire_token_by_refresh_token(
        self, refresh_token: str, scopes: Sequence[str]
    ) -> dict[str, Any]:
        """Bring a refresh token obtained elsewhere into this cache."""
        return await self._token(
            self.application.acquire_token_by_refresh_token(refresh_token, scopes)
        )
