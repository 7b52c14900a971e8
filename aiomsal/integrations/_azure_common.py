"""What every Azure SDK credential of :mod:`aiomsal.integrations.azure` shares.

The credential protocol (``get_token``/``get_token_info``/``close``/``async
with``), azure-core's exception types, azure-identity's tenant rule, and the
process-wide registry through which credentials of the same configuration
share one aiomsal application (one cache, one single-flight).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import weakref
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from types import TracebackType
from typing import Any, Protocol, TypeVar

from azure.core.credentials import AccessToken, AccessTokenInfo
from azure.core.exceptions import ClientAuthenticationError

from .._errors import MsalError, MsalTransportError
from .._result import AuthenticationResult

__all__ = [
    "AzureCredential",
    "CredentialUnavailableError",
    "SharedApplications",
    "authority_host",
    "fingerprint",
    "resolve_tenant",
]

DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"

_C = TypeVar("_C", bound="AzureCredential")


class CredentialUnavailableError(ClientAuthenticationError):
    """The credential did not try to authenticate: its configuration or its source is missing.

    azure-identity's semantics: a chain moves on to its next credential.
    """


def is_unavailable(exc: BaseException) -> bool:
    """Ours or azure-identity's ``CredentialUnavailableError`` (without importing it)."""
    return any(cls.__name__ == "CredentialUnavailableError" for cls in type(exc).__mro__)


def fingerprint(*parts: object) -> str:
    """A SHA-256 of secret material, to tell configurations apart without keeping the secret."""
    digest = hashlib.sha256()
    for part in parts:
        data = part if isinstance(part, bytes) else repr(part).encode()
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


def authority_host(value: str | None, environ: Mapping[str, str] | None = None) -> str:
    """``authority=`` or ``AZURE_AUTHORITY_HOST`` as ``https://host`` (a bare host gets https)."""
    env = os.environ if environ is None else environ
    host = value or env.get("AZURE_AUTHORITY_HOST") or DEFAULT_AUTHORITY_HOST
    host = host.strip().rstrip("/")
    return host if "://" in host else f"https://{host}"


def resolve_tenant(
    default: str, requested: str | None, allowed: Iterable[str], *, credential: str
) -> str | None:
    """The tenant for a request: None for the configured one (azure-identity's rule)."""
    if not requested or requested == default:
        return None
    if default == "adfs" or os.environ.get("AZURE_IDENTITY_DISABLE_MULTITENANTAUTH"):
        return None
    allowed = set(allowed)
    if not default or "*" in allowed or requested in allowed:
        return requested
    if default == "organizations" and not allowed:
        return requested
    raise ClientAuthenticationError(
        message=f"{credential} is not configured to acquire tokens for tenant {requested!r}. "
        "To enable acquiring tokens for this tenant add it to the additionally_allowed_tenants "
        'when creating the credential, or add "*" to allow any tenant.'
    )


class _Closable(Protocol):
    async def aclose(self) -> None: ...


_A = TypeVar("_A", bound=_Closable)


class _Entry:
    __slots__ = ("app", "users")

    def __init__(self, app: Any) -> None:
        self.app = app
        self.users = 0


class SharedApplications:
    """The applications of this process by configuration key, per event loop, refcounted.

    Keys hold fingerprints of secrets, never secrets. An application is closed
    when its last credential closes.
    """

    def __init__(self) -> None:
        self._loops: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[Hashable, _Entry]
        ] = weakref.WeakKeyDictionary()

    def acquire(self, key: Hashable, build: Callable[[], _A]) -> _A:
        apps = self._loops.setdefault(asyncio.get_running_loop(), {})
        entry = apps.get(key)
        if entry is None:
            entry = apps[key] = _Entry(build())
        entry.users += 1
        app: _A = entry.app
        return app

    async def release(self, key: Hashable, app: _Closable) -> None:
        try:
            apps = self._loops.get(asyncio.get_running_loop(), {})
        except RuntimeError:
            return
        entry = apps.get(key)
        if entry is None or entry.app is not app:
            return
        entry.users -= 1
        if entry.users <= 0:
            del apps[key]
            await app.aclose()

    def count(self) -> int:
        """Applications alive on the running loop (for tests)."""
        return len(self._loops.get(asyncio.get_running_loop(), {}))


SHARED = SharedApplications()


def authentication_error(exc: MsalError, credential: str) -> ClientAuthenticationError:
    """azure-core's error for an aiomsal failure (the caller chains it ``from exc``)."""
    if isinstance(exc, MsalTransportError):
        return ClientAuthenticationError(message=f"{credential}: {exc}")
    return ClientAuthenticationError(message=f"{credential}: authentication failed: {exc}")


class AzureCredential:
    """An ``AsyncTokenCredential`` and ``AsyncSupportsTokenInfo`` over an aiomsal application.

    Subclasses implement :meth:`_acquire`; a warm call returns the same
    ``AccessToken`` object as long as the cached token is the same.
    """

    def __init__(self) -> None:
        self._wrapped: dict[Hashable, tuple[AuthenticationResult, AccessToken]] = {}
        self._infos: dict[Hashable, tuple[AuthenticationResult, AccessTokenInfo]] = {}

    def _acquire(
        self, scopes: tuple[str, ...], claims: str | None, tenant_id: str | None, cae: bool
    ) -> Awaitable[AuthenticationResult]:
        raise NotImplementedError

    def _map_error(self, exc: MsalError) -> ClientAuthenticationError:
        """azure-core's error for an aiomsal failure."""
        return authentication_error(exc, type(self).__name__)

    async def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        """An access token for ``scopes`` (azure-core's ``AsyncTokenCredential``)."""
        # The hot path of every SDK request: one awaited call into the application
        # (a cache hit never suspends) and one dictionary lookup.
        try:
            result = await self._acquire(scopes, claims, tenant_id, enable_cae)
        except MsalError as exc:
            raise self._map_error(exc) from exc
        memo = (scopes, tenant_id, enable_cae)
        known = self._wrapped.get(memo)
        if known is not None and known[0] is result:
            return known[1]
        return _remember(self._wrapped, memo, result, claims is None, _access_token)

    async def get_token_info(
        self, *scopes: str, options: Mapping[str, Any] | None = None
    ) -> AccessTokenInfo:
        """An access token with its refresh time (azure-core's ``AsyncSupportsTokenInfo``)."""
        if options:
            claims, tenant_id = options.get("claims"), options.get("tenant_id")
            cae = bool(options.get("enable_cae", False))
        else:
            claims = tenant_id = None
            cae = False
        try:
            result = await self._acquire(scopes, claims, tenant_id, cae)
        except MsalError as exc:
            raise self._map_error(exc) from exc
        memo = (scopes, tenant_id, cae)
        known = self._infos.get(memo)
        if known is not None and known[0] is result:
            return known[1]
        return _remember(self._infos, memo, result, claims is None, _token_info)

    async def close(self) -> None:
        """Release this credential's share of its applications (closed with the last one)."""
        self._wrapped.clear()
        self._infos.clear()

    async def __aenter__(self: _C) -> _C:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self.close()


_V = TypeVar("_V")


def _access_token(result: AuthenticationResult) -> AccessToken:
    return AccessToken(result.access_token, int(result.expires_on))


def _token_info(result: AuthenticationResult) -> AccessTokenInfo:
    return AccessTokenInfo(
        result.access_token,
        int(result.expires_on),
        token_type=result.token_type or "Bearer",
        refresh_on=int(result.refresh_on) if result.refresh_on is not None else None,
    )


def _remember(
    store: dict[Hashable, tuple[AuthenticationResult, _V]],
    memo: Hashable,
    result: AuthenticationResult,
    keep: bool,
    make: Callable[[AuthenticationResult], _V],
) -> _V:
    """The azure-core value of ``result``, kept for the next hits of the same cached token."""
    value = make(result)
    if keep:
        if len(store) > 1024:
            store.clear()
        store[memo] = (result, value)
    return value
