"""The user token cache: tokens of signed-in users and of on-behalf-of assertions.

Kept apart from the application token cache, as MSAL does, so that a web
API's per-user entries never mix with its own. Every lookup a call makes is a
dictionary lookup, or a scan of one user's few tokens when asking for a
subset of the scopes a cached token holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from .._protocol._scopes import canonical_scope
from .._result import Account
from ._entries import AccessTokenKey, Identity, PartitionKey, RefreshTokenEntry
from ._environment import is_issuer_environment
from ._eviction import EvictionRing
from ._store import CachedToken, release

__all__ = ["UserTokenStore"]


class UserTokenStore:
    __slots__ = ("_access", "_accounts", "_partitions", "_refresh", "_ring", "version")

    def __init__(self, max_entries: int | None = None) -> None:
        self._ring: EvictionRing[CachedToken] = EvictionRing(max_entries)
        #: Bumped by every change, so a cache can tell whether it changed since it was saved.
        self.version = 0
        self._access: dict[AccessTokenKey, CachedToken] = {}
        #: The keys of each partition: the key itself when it is the only one (the usual
        #: case, one object less per user), else a tuple of them.
        self._partitions: dict[PartitionKey, AccessTokenKey | tuple[AccessTokenKey, ...]] = {}
        self._refresh: dict[PartitionKey, RefreshTokenEntry] = {}
        self._accounts: dict[tuple[str, str], Identity] = {}

    def __len__(self) -> int:
        return len(self._access)

    # -- access tokens -------------------------------------------------------------------

    def get(self, key: AccessTokenKey) -> CachedToken | None:
        return self._access.get(key)

    def find(self, key: AccessTokenKey, scopes: frozenset[str], now: float) -> CachedToken | None:
        """A servable token for ``key``, or one of the same user whose scopes include ``scopes``."""
        token = self._access.get(key)
        if token is not None and token.serve_until > now:
            return token
        for other in _keys(self._partitions.get(key.partition)):
            if other.realm != key.realm or other == key:
                continue
            candidate = self._access[other]
            if candidate.serve_until > now and scopes <= _scope_set(candidate):
                return candidate
        return None

    def partition_of(self, key: AccessTokenKey) -> PartitionKey:
        """The partition of ``key``: the object the cache holds for it already, if any.

        Pass it to :meth:`put` and to the partition's refresh token entry, so that
        they share one key object instead of one each.
        """
        partition = key.partition
        held = self._refresh.get(partition)
        return partition if held is None else held.partition

    def put(self, token: CachedToken, partition: PartitionKey | None = None) -> None:
        key = token.key
        if key not in self._access:
            partition = partition or key.partition
            held = self._partitions.get(partition)
            self._partitions[partition] = key if held is None else (*_keys(held), key)
        replaced = self._access.get(key)
        self._access[key] = token
        if replaced is not token:
            release(replaced)
        self.version += 1
        self._ring.admit(
            token,
            size=self.__len__,
            is_current=lambda t: self._access.get(t.key) is t,
            drop=self._evict,
            now=token.cached_at,
        )

    def set_limit(self, max_entries: int | None) -> None:
        """Bound the number of access tokens held (None: unbounded)."""
        self._ring.limit = EvictionRing(max_entries).limit

    def _evict(self, token: CachedToken, expired: bool) -> None:
        """Drop an expired or evicted token.

        In a bounded cache, the last token of a partition takes its refresh
        token and account with it, so that memory stays bounded however many
        users pass through; what leaves memory stays in a cache storage, if
        there is one. An unbounded cache keeps refresh tokens, as MSAL does.
        """
        key = token.key
        self.remove(key)
        if (expired and self._ring.limit is None) or key.partition in self._partitions:
            return
        self.remove_refresh_token(key.partition)
        account = (key.home_account_id, key.environment)
        if not key.user_assertion_hash and account in self._accounts:
            del self._accounts[account]
            self.version += 1

    def remove(self, key: AccessTokenKey) -> None:
        if (token := self._access.pop(key, None)) is None:
            return
        release(token)
        self.version += 1
        partition = key.partition
        keys = tuple(k for k in _keys(self._partitions[partition]) if k != key)
        if keys:
            self._partitions[partition] = keys[0] if len(keys) == 1 else keys
        else:
            del self._partitions[partition]

    def tokens(self) -> Iterator[CachedToken]:
        return iter(list(self._access.values()))

    def partition_tokens(self, partition: PartitionKey) -> list[CachedToken]:
        """The access tokens of one user (or assertion) of one app, without a scan."""
        return [self._access[key] for key in _keys(self._partitions.get(partition))]

    def refresh_tokens(self) -> list[RefreshTokenEntry]:
        return list(self._refresh.values())

    def identities(self) -> list[tuple[str, Identity]]:
        """Every account as (environment, identity)."""
        return [(environment, identity) for (_, environment), identity in self._accounts.items()]

    def clear(self) -> None:
        for token in self._access.values():
            release(token)
        self._access.clear()
        self._partitions.clear()
        self._refresh.clear()
        self._accounts.clear()
        self.version += 1

    # -- refresh tokens ------------------------------------------------------------------

    def refresh_token(self, partition: PartitionKey) -> RefreshTokenEntry | None:
        return self._refresh.get(partition)

    def put_refresh_token(self, entry: RefreshTokenEntry) -> None:
        self._refresh[entry.partition] = entry
        self.version += 1

    def remove_refresh_token(self, partition: PartitionKey, secret: str | None = None) -> None:
        """Forget a refresh token (only if it is still ``secret``, when given)."""
        entry = self._refresh.get(partition)
        if entry is not None and (secret is None or entry.secret == secret):
            del self._refresh[partition]
            self.version += 1

    # -- accounts ------------------------------------------------------------------------

    def put_account(self, identity: Identity, environment: str) -> None:
        self._accounts[(identity.home_account_id, environment)] = identity
        self.version += 1

    def account(self, home_account_id: str, environments: Iterable[str]) -> Identity | None:
        for environment in environments:
            identity = self._accounts.get((home_account_id, environment))
            if identity is not None:
                return identity
        return None

    def accounts(self, client_id: str | None = None) -> list[Account]:
        """The accounts held; with ``client_id``, only those signed in to that application.

        An account is that application's when the cache holds a token of it
        for ``client_id``, or a refresh token of a family (FOCI) that one of
        the application's own refresh tokens belongs to.
        """
        if client_id is None:
            return [i.account for i in self._accounts.values() if i.account is not None]
        families = {
            entry.family_id for partition, entry in self._refresh.items()
            if partition.client_id == client_id and entry.family_id
        }
        owners = {
            (p.home_account_id, p.environment)
            for p in (*self._partitions, *self._refresh)
            if not p.user_assertion_hash and p.client_id == client_id
        }
        if families:
            owners.update(
                (p.home_account_id, p.environment) for p, entry in self._refresh.items()
                if not p.user_assertion_hash and entry.family_id in families
            )
        return [
            identity.account for slot, identity in self._accounts.items()
            if identity.account is not None and slot in owners
        ]

    def remove_account(self, home_account_id: str, environments: Iterable[str]) -> int:
        """Remove an account with its access, refresh and ID tokens; return tokens removed."""
        removed = 0
        envs = set(environments)
        for env in envs:
            if self._accounts.pop((home_account_id, env), None) is not None:
                self.version += 1
        for partition in [p for p in self._partitions if _owned(p, home_account_id, envs)]:
            for key in _keys(self._partitions.get(partition)):
                self.remove(key)
                removed += 1
        for partition in [p for p in self._refresh if _owned(p, home_account_id, envs)]:
            self.remove_refresh_token(partition)
        return removed


def _keys(
    held: AccessTokenKey | tuple[AccessTokenKey, ...] | None,
) -> tuple[AccessTokenKey, ...]:
    """The keys of a partition as :attr:`UserTokenStore._partitions` holds them."""
    if held is None:
        return ()
    return (held,) if type(held) is AccessTokenKey else held  # type: ignore[return-value]


def _owned(partition: PartitionKey, home_account_id: str, environments: set[str]) -> bool:
    return (
        partition.home_account_id == home_account_id
        and partition.environment in environments
        and not partition.user_assertion_hash
    )


def _scope_set(token: CachedToken) -> frozenset[str]:
    exact = is_issuer_environment(token.key.environment)
    return frozenset(canonical_scope(scope, case_sensitive=exact) for scope in token.scopes)
