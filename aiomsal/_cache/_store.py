"""The in-memory token index: O(1) lookups, no scans on any path a call takes."""

from __future__ import annotations

from collections.abc import Iterator

from .._result import AuthenticationResult
from ._entries import AccessTokenEntry, AccessTokenKey, Identity
from ._eviction import EvictionRing

__all__ = ["CachedToken", "TokenStore"]


class CachedToken:
    """An entry with what serving it needs, prepared once when it is stored.

    ``result`` is the :class:`AuthenticationResult` that cache hits return,
    built on the first hit and reused by every later one, so that a hit
    allocates nothing. ``used`` tells the background refresher that somebody
    asked for the token since it was stored; ``touched`` tells the eviction
    hand that somebody asked for it since the hand last passed.
    """

    __slots__ = (
        "__weakref__",  # the refresh schedule holds tokens weakly: it never keeps one alive
        "entry",
        "identity",
        "refresh_at",
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
        self.entry = entry
        self.identity = identity
        self.result: AuthenticationResult | None = None
        self.serve_until = serve_until
        self.refresh_at = refresh_at
        self.used = False
        self.touched = False


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
        self._access[token.entry.key] = token
        self.version += 1
        self._ring.admit(
            token,
            size=self.__len__,
            is_current=lambda t: self._access.get(t.entry.key) is t,
            drop=lambda t, _: self.remove(t.entry.key),
            now=token.entry.cached_at,
        )

    def set_limit(self, max_entries: int | None) -> None:
        """Bound the number of tokens held (None: unbounded; expired ones are swept anyway)."""
        self._ring.limit = EvictionRing(max_entries).limit

    def remove(self, key: AccessTokenKey) -> None:
        if self._access.pop(key, None) is not None:
            self.version += 1

    def remove_expired(self, now: float) -> int:
        """Drop tokens that can no longer be served; return how many."""
        expired = [key for key, token in self._access.items() if token.serve_until <= now]
        for key in expired:
            del self._access[key]
        self.version += bool(expired)
        return len(expired)

    def __iter__(self) -> Iterator[CachedToken]:
        return iter(list(self._access.values()))

    def clear(self) -> None:
        self._access.clear()
        self._ring.clear()
        self.version += 1
