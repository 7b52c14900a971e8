"""The in-memory token index: O(1) lookups, no scans on any path a call takes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

from .._result import AuthenticationResult
from ._entries import AccessTokenEntry, AccessTokenKey, Identity
from ._eviction import EvictionRing

__all__ = ["CachedToken", "TokenStore", "release"]


class CachedToken:
    """One cached access token: the result that hits return and what the cache needs besides.

    A packed record: the :class:`AuthenticationResult` every hit returns is
    built once, when the token is stored, and holds the token's own fields
    (secret, type, expiry, refresh time, scopes), so that they are kept once
    and a hit allocates nothing. Besides it the record keeps only what MSAL's
    format and the cache need (``key``, ``cached_at``, the extended expiry,
    the key id, a user token's identity when its account does not tell it)
    and the timing: ``serve_until`` and ``refresh_at`` (whole epoch seconds,
    the same int object as the result's ``refresh_on``). ``used`` tells the
    background refresher that somebody asked for the token since it was
    stored; ``touched`` tells the eviction hand that somebody asked for it
    since the hand last passed.
    ``renew`` and ``context`` are what the refresher calls (``renew(token,
    context)``) and are set when the token is scheduled: the schedule then
    holds the record itself and nothing else per token.
    """

    __slots__ = (
        "cached_at",
        "context",
        "extras",
        "key",
        "refresh_at",
        "renew",
        "result",
        "serve_until",
        "touched",
        "used",
    )

    def __init__(
        self,
        entry: AccessTokenEntry,
        *,
        serve_until: float,
        refresh_at: float,
        identity: Identity | None = None,
    ) -> None:
        self.key = entry.key
        self.cached_at = entry.cached_at
        # Rare: an extended expiry of its own, a key id, an identity that the result's
        # account does not tell (else it is derived). One slot, None for almost every token.
        extended, key_id = entry.extended_expires_on, entry.key_id
        held = (
            None
            if identity is None
            or (
                identity.account is not None
                and identity.account.home_account_id == identity.home_account_id
            )
            else identity
        )
        self.extras: _Extras | None = (
            None
            if extended == entry.expires_on and key_id is None and held is None
            else _Extras(extended, key_id, held)
        )
        # Whole seconds: the refresh time is the result's refresh_on (one int for both).
        at, refresh_on = int(refresh_at), entry.refresh_on
        self.refresh_at: int = refresh_on if refresh_on is not None and refresh_on == at else at
        self.result = AuthenticationResult(
            access_token=entry.secret,
            token_type=entry.token_type,
            expires_on=entry.expires_on,
            refresh_on=entry.refresh_on,
            scopes=entry.scopes,
            tenant_id=identity.tenant_id if identity else entry.key.realm or None,
            token_source="cache",
            id_token=identity.id_token if identity else None,
            id_token_claims=identity.id_token_claims if identity else None,
            account=identity.account if identity else None,
        )
        self.serve_until = serve_until
        self.used = False
        self.touched = False
        self.renew: Any = None
        self.context: Any = None

    def __lt__(self, other: CachedToken) -> bool:
        """Records order by refresh time, so the refresh schedule can hold them as they are."""
        return self.refresh_at < other.refresh_at

    @property
    def entry(self) -> AccessTokenEntry:
        """The token as MSAL's schema describes it, built anew on each access.

        For cold paths only (serialization, tests): a hit path reads ``key``,
        ``result`` and the timing slots, which allocate nothing.
        """
        result, extras = self.result, self.extras
        return AccessTokenEntry(
            key=self.key,
            secret=result.access_token,
            scopes=result.scopes,
            token_type=result.token_type,
            cached_at=self.cached_at,
            expires_on=result.expires_on,
            extended_expires_on=result.expires_on if extras is None else extras.extended,
            refresh_on=result.refresh_on,
            key_id=None if extras is None else extras.key_id,
        )

    @property
    def identity(self) -> Identity | None:
        """The user a token was issued to (None for application tokens)."""
        if self.extras is not None and self.extras.identity is not None:
            return self.extras.identity
        result = self.result
        account = result.account
        if account is None:
            return None
        return Identity(
            account.home_account_id, account, result.tenant_id, result.id_token,
            result.id_token_claims,
        )

    @property
    def secret(self) -> str:
        return self.result.access_token

    @property
    def expires_on(self) -> int:
        return self.result.expires_on

    @property
    def scopes(self) -> tuple[str, ...]:
        return self.result.scopes


class _Extras(NamedTuple):
    """What few tokens have: an extended expiry of its own, a key id, a separate identity."""

    extended: int
    key_id: str | None
    identity: Identity | None


def release(token: CachedToken | None) -> None:
    """A token left the cache (evicted, replaced, removed): the refresh schedule lets go of
    what it would renew it with (for on-behalf-of, the incoming assertion) at once, and
    skips the token when its time comes."""
    if token is not None:
        token.renew = token.context = None


class TokenStore:
    """Access tokens indexed by their full key.

    Lookup, insertion and removal are dictionary operations, so their cost
    does not grow with the number of cached tokens.
    """

    __slots__ = ("_access", "_ring", "version")

    def __init__(self, max_entries: int | None = None) -> None:
        self._access: dict[AccessTokenKey, CachedToken] = {}
        self._ring: EvictionRing[CachedToken] = EvictionRing(max_entries)
        #: Bumped by every change, so a cache can tell whether it changed since it was saved.
        self.version = 0

    def __len__(self) -> int:
        return len(self._access)

    def get(self, key: AccessTokenKey) -> CachedToken | None:
        return self._access.get(key)

    def put(self, token: CachedToken) -> None:
        replaced = self._access.get(token.key)
        self._access[token.key] = token
        if replaced is not token:
            release(replaced)
        self.version += 1
        self._ring.admit(
            token,
            size=self.__len__,
            is_current=lambda t: self._access.get(t.key) is t,
            drop=lambda t, _: self.remove(t.key),
            now=token.cached_at,
        )

    def set_limit(self, max_entries: int | None) -> None:
        """Bound the number of tokens held (None: unbounded; expired ones are swept anyway)."""
        self._ring.limit = EvictionRing(max_entries).limit

    def remove(self, key: AccessTokenKey) -> None:
        if (token := self._access.pop(key, None)) is not None:
            release(token)
            self.version += 1

    def remove_expired(self, now: float) -> int:
        """Drop tokens that can no longer be served; return how many."""
        expired = [key for key, token in self._access.items() if token.serve_until <= now]
        for key in expired:
            release(self._access.pop(key))
        self.version += bool(expired)
        return len(expired)

    def __iter__(self) -> Iterator[CachedToken]:
        return iter(list(self._access.values()))

    def clear(self) -> None:
        for token in self._access.values():
            release(token)
        self._access.clear()
        self._ring.clear()
        self.version += 1
