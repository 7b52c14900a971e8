"""Cache entries, modelled field for field on MSAL's unified token cache schema.

The string timestamps and JSON shape of MSAL's format live only in the
serialization module; here entries are typed values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

__all__ = ["AccessTokenEntry", "AccessTokenKey"]


class AccessTokenKey(NamedTuple):
    """What identifies an access token: whose, from where, for whom, for what.

    ``environment`` is the canonical alias of the authority host; ``target``
    is the normalized scope set (see :func:`aiomsal._scopes.target_key`).
    App-only tokens have an empty ``home_account_id``; on-behalf-of tokens
    carry the hash of the incoming assertion.
    """

    environment: str
    client_id: str
    realm: str
    home_account_id: str
    user_assertion_hash: str
    target: str

    def msal_key(self) -> str:
        """The entry's key in MSAL's format (lower-cased, ``-``-joined)."""
        return "-".join(
            (self.home_account_id, self.environment, "accesstoken", self.client_id,
             self.realm, self.target)
        ).lower()


@dataclass(frozen=True, slots=True)
class AccessTokenEntry:
    """An access token as MSAL's schema describes it (times in epoch seconds)."""

    key: AccessTokenKey
    secret: str = field(repr=False)
    #: The scopes as the authority granted them (original case, sorted).
    scopes: tuple[str, ...]
    token_type: str
    cached_at: int
    expires_on: int
    extended_expires_on: int
    refresh_on: int | None = None
    key_id: str | None = None
