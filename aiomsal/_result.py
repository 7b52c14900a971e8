"""What an acquisition returns: the result and the signed-in account."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Account", "AuthenticationResult", "TokenSource"]

TokenSource = Literal["cache", "identity_provider"]


@dataclass(frozen=True, slots=True)
class Account:
    """A signed-in user as the cache knows them."""

    home_account_id: str
    environment: str
    realm: str
    username: str | None = None
    local_account_id: str | None = None
    authority_type: str = "MSSTS"


@dataclass(frozen=True, slots=True)
class AuthenticationResult:
    """A token and what is known about it. Its repr never shows a token."""

    access_token: str = field(repr=False)
    token_type: str
    #: Expiry, in epoch seconds.
    expires_on: int
    #: When aiomsal will refresh the token ahead of expiry, in epoch seconds.
    refresh_on: int | None
    #: The scopes the token was issued for (reserved OpenID scopes left out).
    scopes: tuple[str, ...]
    tenant_id: str | None
    token_source: TokenSource
    id_token: str | None = field(default=None, repr=False)
    id_token_claims: Mapping[str, Any] | None = field(default=None, repr=False)
    account: Account | None = None
    #: The ``client-request-id`` of the request that fetched it (None from the cache).
    correlation_id: str | None = None
