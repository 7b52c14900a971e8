"""What an acquisition returns: the result and the signed-in account."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ._errors import MsalConfigurationError

__all__ = ["Account", "AuthenticationResult", "TokenSource", "as_account"]

TokenSource = Literal["cache", "identity_provider"]

#: The string fields of MSAL's account dict, in MSAL's order.
_ACCOUNT_FIELDS = (
    "home_account_id",
    "environment",
    "realm",
    "local_account_id",
    "username",
    "authority_type",
)


@dataclass(frozen=True, slots=True)
class Account:
    """A signed-in user as the cache knows them."""

    home_account_id: str
    environment: str
    realm: str
    username: str | None = None
    local_account_id: str | None = None
    authority_type: str = "MSSTS"

    def to_dict(self) -> dict[str, str]:
        """MSAL's account dict (what ``msal``'s ``get_accounts`` returns; JSON-safe)."""
        return {
            "home_account_id": self.home_account_id,
            "environment": self.environment,
            "realm": self.realm,
            "local_account_id": self.local_account_id or "",
            # MSAL's schema has no null username.
            "username": self.username or "",
            "authority_type": self.authority_type,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Account:
        """An account from MSAL's account dict (or :meth:`to_dict`'s).

        ``home_account_id`` and ``environment`` are required; other keys of
        MSAL's dict (``account_source``, ...) are ignored. A missing or
        mistyped key raises :class:`MsalConfigurationError`.
        """
        if not isinstance(data, Mapping):
            raise MsalConfigurationError("an account must be an Account or MSAL's account dict")
        values: dict[str, str | None] = {}
        for name in _ACCOUNT_FIELDS:
            value = data.get(name)
            if value is not None and not isinstance(value, str):
                raise MsalConfigurationError(f"the account's {name!r} must be a string")
            values[name] = value or None
        home, environment = values["home_account_id"], values["environment"]
        if home is None or environment is None:
            raise MsalConfigurationError(
                "the account needs a 'home_account_id' and an 'environment' (from get_accounts())"
            )
        return cls(
            home_account_id=home,
            environment=environment,
            realm=values["realm"] or "",
            username=values["username"],
            local_account_id=values["local_account_id"],
            authority_type=values["authority_type"] or "MSSTS",
        )


def as_account(account: Account | Mapping[str, Any]) -> Account:
    """``account`` itself, or the :class:`Account` of MSAL's account dict."""
    return account if isinstance(account, Account) else Account.from_dict(account)


@dataclass(frozen=True, slots=True)
class AuthenticationResult:
    """A token and what is known about it. Its repr never shows a token.

    The fields after ``correlation_id`` hold what the authority's answer said
    (None in results served from the cache); :meth:`to_dict` writes MSAL's
    result dict from them.
    """

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
    #: The lifetime the authority gave the token, in seconds.
    expires_in: int | None = None
    #: The extended lifetime (Entra's resilience window), in seconds.
    ext_expires_in: int | None = None
    #: The refresh token the answer carried (aiomsal has cached it already).
    refresh_token: str | None = field(default=None, repr=False)
    #: The ``scope`` string of the answer, reserved scopes and all.
    scope: str | None = None
    #: Entra's ``client_info`` (base64url JSON of the user's ``uid`` and ``utid``).
    client_info: str | None = field(default=None, repr=False)

    def to_dict(self, *, now: float | None = None) -> dict[str, Any]:
        """MSAL's result dict (JSON-safe), built on each call; it holds the token.

        A token from the authority gives what MSAL returns for it:
        ``access_token``, ``token_type``, ``expires_in``, ``ext_expires_in``,
        ``refresh_token``, ``scope``, ``id_token``, ``client_info``,
        ``id_token_claims``, ``token_source`` (each when the answer had it). A
        token from the cache gives what MSAL's cache hits give:
        ``access_token``, ``token_type``, ``expires_in`` (what is left at
        ``now``, epoch seconds, the system clock by default) and
        ``token_source``. ``refresh_on`` is always there: aiomsal plans a
        refresh for every token, where MSAL does only when the authority
        sends ``refresh_in``.
        """
        fresh = self.token_source == "identity_provider" and self.expires_in is not None
        if fresh:
            expires_in = self.expires_in
        else:
            expires_in = max(0, int(self.expires_on - (time.time() if now is None else now)))
        data: dict[str, Any] = {
            "access_token": self.access_token,
            "token_type": self.token_type,
            "expires_in": expires_in,
        }
        if fresh:
            optional = {
                "ext_expires_in": self.ext_expires_in,
                "refresh_token": self.refresh_token,
                "scope": self.scope,
                "id_token": self.id_token,
                "client_info": self.client_info,
            }
            data.update((k, v) for k, v in optional.items() if v is not None)
            if self.id_token is not None and self.id_token_claims is not None:
                data["id_token_claims"] = dict(self.id_token_claims)
        data["token_source"] = self.token_source
        if self.refresh_on is not None:
            data["refresh_on"] = self.refresh_on
        return data
