"""Where the HTTP client integrations get tokens: the ``TokenSource`` protocol and its makers.

A token source is any ``async (scopes, claims_challenge) -> access token``:
an application's client credentials, on-behalf-of the user whose request is
being handled, a managed identity (:func:`managed_identity`) or any azure-core
credential. The web
framework integrations record the caller's validated token in
:func:`current_token`, which :func:`on_behalf_of` reads.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import contextvars
import ipaddress
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

from yarl import URL

from .._apps._confidential import ConfidentialClientApplication
from .._apps._managed_identity import ManagedIdentityClient
from .._errors import MsalConfigurationError, MsalError
from .._protocol._token_validation import ValidatedToken

__all__ = [
    "Origin",
    "TokenSource",
    "azure_credential",
    "claims_from_challenge",
    "client_credentials",
    "current_token",
    "managed_identity",
    "on_behalf_of",
    "origin_scopes",
    "using_token",
]

Origin = tuple[str, str, int]

_CURRENT: contextvars.ContextVar[ValidatedToken | None] = contextvars.ContextVar(
    "aiomsal_current_token", default=None
)
_INSUFFICIENT_CLAIMS = re.compile(r'error\s*=\s*"?insufficient_claims"?', re.IGNORECASE)
_CLAIMS = re.compile(r'claims\s*=\s*"([^"]+)"', re.IGNORECASE)


class TokenSource(Protocol):
    """Gets an access token for ``scopes``; with ``claims_challenge``, a new one (no cache)."""

    async def __call__(self, scopes: tuple[str, ...], claims_challenge: str | None) -> str: ...


def current_token() -> ValidatedToken | None:
    """The validated token of the request this task is handling (set by the web integrations)."""
    return _CURRENT.get()


@contextlib.contextmanager
def using_token(token: ValidatedToken) -> Iterator[None]:
    """Make ``token`` the :func:`current_token` inside the block."""
    reset = _CURRENT.set(token)
    try:
        yield
    finally:
        _CURRENT.reset(reset)


def client_credentials(
    app: ConfidentialClientApplication, *, tenant: str | None = None
) -> TokenSource:
    """Tokens of the application itself (a daemon; ``tenant`` for another tenant)."""

    async def source(scopes: tuple[str, ...], claims_challenge: str | None) -> str:
        result = await app.acquire_token_for_client(
            scopes, tenant=tenant, claims_challenge=claims_challenge
        )
        return result.access_token

    return source


def on_behalf_of(
    app: ConfidentialClientApplication, token: ValidatedToken | None = None
) -> TokenSource:
    """Tokens on behalf of ``token``'s user, or else of the caller being handled now.

    Without ``token``, each call reads :func:`current_token`; outside a
    protected request it raises :class:`MsalError`. The caller's own tenant is
    asked (a multi-tenant API acting for a guest of another tenant).
    """

    async def source(scopes: tuple[str, ...], claims_challenge: str | None) -> str:
        user = token if token is not None else _CURRENT.get()
        if user is None:
            raise MsalError("no validated caller token: on-behalf-of needs a protected request")
        tenant = user.tenant_id if app.authority.is_multi_tenant else None
        result = await app.acquire_token_on_behalf_of(
            user.access_token, scopes, claims_challenge=claims_challenge, tenant=tenant
        )
        return result.access_token

    return source


def managed_identity(client: ManagedIdentityClient) -> TokenSource:
    """Tokens of a managed identity: one resource per origin (``{resource}/.default``)."""

    async def source(scopes: tuple[str, ...], claims_challenge: str | None) -> str:
        if len(scopes) != 1:
            raise MsalConfigurationError(
                "a managed identity token is for one resource: give the origin one scope"
            )
        result = await client.acquire_token_for_client(
            resource=scopes[0], claims_challenge=claims_challenge
        )
        return result.access_token

    return source


def azure_credential(credential: Any) -> TokenSource:
    """Tokens of an azure-core (async) credential: managed identity, azure-identity, ...

    ``credential.get_token(*scopes, claims=...)`` is awaited; its ``.token`` is used.
    """
    if not callable(getattr(credential, "get_token", None)):
        raise MsalConfigurationError("the credential must have an async get_token(*scopes)")

    async def source(scopes: tuple[str, ...], claims_challenge: str | None) -> str:
        if claims_challenge is None:
            access = await credential.get_token(*scopes)
        else:
            access = await credential.get_token(*scopes, claims=claims_challenge)
        token = getattr(access, "token", None)
        if not isinstance(token, str) or not token:
            raise MsalError("the credential returned no token")
        return token

    return source


def claims_from_challenge(www_authenticate: str | None) -> str | None:
    """The claims request of a CAE challenge (``error="insufficient_claims", claims="..."``).

    Returns the decoded JSON text, or None when the header is no such
    challenge or its claims are not base64 JSON.
    """
    if not www_authenticate or not _INSUFFICIENT_CLAIMS.search(www_authenticate):
        return None
    found = _CLAIMS.search(www_authenticate)
    if found is None:
        return None
    # Entra sends standard base64; accept the URL-safe alphabet and missing padding too.
    encoded = found.group(1).strip().rstrip("=").replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        text = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    return text if text.lstrip().startswith("{") else None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def origin_of(url: URL) -> Origin | None:
    """``(scheme, host, port)`` of an absolute URL (host lower-case, IDNA-encoded), or None."""
    host, port = url.raw_host, url.port
    if host is None or port is None:
        return None
    return (url.scheme, host, port)


def origin_scopes(scopes_by_origin: Mapping[str, Sequence[str]]) -> dict[Origin, tuple[str, ...]]:
    """Check a map of origin (``https://host[:port]``) to scopes; key it by :func:`origin_of`.

    Plain ``http`` is refused except for loopback hosts; an origin with a
    path, query, fragment or user information is refused.
    """
    if not isinstance(scopes_by_origin, Mapping) or not scopes_by_origin:
        raise MsalConfigurationError("scopes_by_origin maps https origins to their scopes")
    checked: dict[Origin, tuple[str, ...]] = {}
    for text, scopes in scopes_by_origin.items():
        try:
            url = URL(text)
        except (TypeError, ValueError):
            raise MsalConfigurationError(f"origin {text!r} is not a URL") from None
        origin = origin_of(url)
        if (
            origin is None
            or url.user is not None
            or url.path not in ("", "/")
            or url.query_string
            or url.fragment
        ):
            raise MsalConfigurationError(
                f"origin {text!r} must be scheme://host[:port], without path or credentials"
            )
        if origin[0] != "https" and not (origin[0] == "http" and _is_loopback(origin[1])):
            raise MsalConfigurationError(
                f"origin {text!r}: tokens are only sent over https (http on loopback only)"
            )
        if (
            isinstance(scopes, str)
            or not scopes
            or not all(isinstance(s, str) and s for s in scopes)
        ):
            raise MsalConfigurationError(f"the scopes of {text!r} must be a non-empty list")
        checked[origin] = tuple(scopes)
    return checked
