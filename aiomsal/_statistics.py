"""Counters an operator can read off an application."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CacheStatistics", "Counters"]


@dataclass(frozen=True, slots=True)
class CacheStatistics:
    """A snapshot of an application's counters since it was created."""

    #: Calls answered from the cache.
    hits: int
    #: Calls that found no servable token and had to wait for the authority.
    misses: int
    #: Of the misses, those that joined a request another caller had started.
    coalesced: int
    #: Token requests sent to the authority (failed ones included; throttled repeats,
    #: answered from memory without a request, and requests that never left, their
    #: connection failed or no pooled connection came free in time, not).
    requests_sent: int
    #: Tokens refreshed in the background before they expired.
    background_refreshes: int
    #: Background refresh attempts that failed (the valid token kept being served).
    refresh_failures: int
    #: Access tokens held in the cache now.
    cached_tokens: int
    #: Misses answered from the cache storage (another process had fetched the token).
    storage_hits: int = 0
    #: Cache storage operations that failed or timed out (the call went on without it).
    storage_errors: int = 0
    #: Entries read from the cache storage that could not be used (malformed, foreign):
    #: skipped, never raised.
    skipped_entries: int = 0


class Counters:
    """The mutable counters behind :class:`CacheStatistics` (plain ints: no locking on one loop)."""

    __slots__ = (
        "background_refreshes",
        "hits",
        "misses",
        "refresh_failures",
        "requests_sent",
        "skipped_entries",
        "storage_errors",
        "storage_hits",
    )

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self.requests_sent = 0
        self.background_refreshes = 0
        self.refresh_failures = 0
        self.storage_hits = 0
        self.storage_errors = 0
        self.skipped_entries = 0
