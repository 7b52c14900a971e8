"""Cache entries, modelled field for field on MSAL's unified token cache schema.

The string timestamps and JSON shape of MSAL's format live only in the
serialization module; here entries are typed values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .._result import Account

__all__ = [
    "AccessTokenEntry",
    "AccessTokenKey",
    "Identity",
    "PartitionKey",
    "RefreshTokenEntry",
]


class AccessTokenKey(NamedTuple):
    """What identifies an access token: whose, from where, for whom, for what.

    ``environment`` is the canonical alias of the authority host, or the whole
    issuer URL of a generic OpenID Connect authority (see
    :mod:`aiomsal._cache._environment`); ``target`` is the normalized scope set
    (see :func:`aiomsal._protocol._scopes.target_key`).
    App-only tokens have an empty ``home_account_id``; on-behalf-of tokens
    carry the hash of the incoming assertion.
    """

    environment: str
    client_id: str
    realm: str
    home_account_id: str
    user_assertion_hash: str
    target: str

    @property
    def partition(self) -> PartitionKey:
        return PartitionKey(
            self.environment, self.client_id, self.home_account_id, self.user_assertion_hash
        )


class PartitionKey(NamedTuple):
    """Whose tokens: one user (account) or one incoming assertion (on-behalf-of), of one app."""

    environment: str
    client_id: str
    home_account_id: str
    user_assertion_hash: str


@dataclass(frozen=True, slots=True)
class Identity:
    """The user a token was issued to, shared by all of that user's tokens from one response.

    ``home_account_id`` is the MSAL account id (``uid.utid``), also for
    on-behalf-of tokens, whose cache key is the assertion hash instead.
    """

    home_account_id: str
    account: Account | None
    tenant_id: str | None
    id_token: str | None = field(default=None, repr=False)
    id_token_claims: Mapping[str, Any] | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class RefreshTokenEntry:
    """A refresh token of one user (or one on-behalf-of assertion) for one app."""

    partition: PartitionKey
    secret: str = field(repr=False)
    #: The scopes it was last redeemed for (MSAL keeps them as the entry's target).
    target: str
    last_modification_time: int
    #: The user's account id, also for on-behalf-of tokens (partitioned by assertion).
    home_account_id: str = ""
    family_id: str | None = None


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
