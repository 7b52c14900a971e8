"""Counters an operator can read off an application, and the observer hook they feed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

__all__ = [
    "CacheStatistics",
    "Counters",
    "TenantCounters",
    "TenantStatistics",
    "TokenRequestEvent",
]

#: Tenants counted apart; the counts of any further tenant go under OTHER_TENANTS.
MAX_TENANTS = 10_000
OTHER_TENANTS = "(other tenants)"

Outcome = Literal["ok", "service_error", "throttled", "transport_error"]


@dataclass(frozen=True, slots=True)
class TenantStatistics:
    """The counters of one tenant (the realm of its cache keys)."""

    hits: int = 0
    misses: int = 0
    coalesced: int = 0
    requests_sent: int = 0
    #: Token requests that failed (an error answer, a throttled one, or no answer).
    request_failures: int = 0
    background_refreshes: int = 0
    refresh_failures: int = 0


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
    #: Token requests that failed (an error answer, a throttled one, or no answer).
    request_failures: int = 0
    #: The same counters per tenant, filled by ``statistics(by_tenant=True)``.
    tenants: Mapping[str, TenantStatistics] = field(
        default_factory=lambda: MappingProxyType({})
    )


@dataclass(frozen=True, slots=True)
class TokenRequestEvent:
    """One token request to the authority, as an observer sees it (no token, no secret)."""

    #: The OAuth ``grant_type`` (``client_credentials``, ``refresh_token``, ...).
    grant: str
    #: The tenant of the token endpoint (its first path segment).
    tenant: str
    outcome: Outcome
    #: The HTTP status of the last answer (``None`` when none came).
    status: int | None
    #: Attempts made: 2 when the transport retried once.
    attempts: int
    #: Answered 429, or replayed from the throttling memory without a request.
    throttled: bool
    #: Callers (or the background refresh) waiting for this request when it ended.
    waiters: int
    correlation_id: str | None
    #: The OAuth error code of an error answer (``invalid_client``, ...), never a description.
    error: str | None
    #: Wall-clock nanoseconds (``time.time_ns()``) at the start and the end of the request.
    started_ns: int
    ended_ns: int


if TYPE_CHECKING:  # a Protocol costs import time, and only the type checker needs it
    from typing import Protocol

    class Observer(Protocol):
        """What an application reports beyond its counters (see integrations.opentelemetry).

        Counters are read when the observer collects them (``statistics(by_tenant=True)``), so
        a cache hit reports nothing; these calls are for the rare events with details.
        """

        def token_request(self, event: TokenRequestEvent) -> None:
            """A token request to the authority ended."""

        def acquired(
            self, tenant: str, seconds: float, *, coalesced: bool, failed: bool
        ) -> None:
            """A call that missed the cache got its answer after ``seconds`` (real time)."""


class TenantCounters:
    """The mutable counters behind :class:`TenantStatistics`."""

    __slots__ = (
        "background_refreshes",
        "coalesced",
        "hits",
        "misses",
        "refresh_failures",
        "request_failures",
        "requests_sent",
    )

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self.coalesced = 0
        self.requests_sent = 0
        self.request_failures = 0
        self.background_refreshes = 0
        self.refresh_failures = 0

    def snapshot(self) -> TenantStatistics:
        return TenantStatistics(
            self.hits,
            self.misses,
            self.coalesced,
            self.requests_sent,
            self.request_failures,
            self.background_refreshes,
            self.refresh_failures,
        )


class Counters:
    """The mutable counters behind :class:`CacheStatistics` (plain ints: no locking on one loop)."""

    __slots__ = (
        "background_refreshes",
        "hits",
        "misses",
        "observer",
        "refresh_failures",
        "request_failures",
        "requests_sent",
        "skipped_entries",
        "storage_errors",
        "storage_hits",
        "tenants",
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
        self.request_failures = 0
        #: Per-tenant counters, by the realm of the cache keys (at most MAX_TENANTS);
        #: ``tenants[realm]`` creates them (one dictionary lookup on the hit path).
        self.tenants: dict[str, TenantCounters] = _Tenants()
        #: Told about token requests and waits when installed; ``None`` costs one check.
        self.observer: Observer | None = None

    def tenant(self, realm: str) -> TenantCounters:
        """The counters of ``realm`` (created on first use)."""
        return self.tenants[realm]

    def snapshot(
        self, *, joined: int, coalesced: int, cached_tokens: int, by_tenant: bool
    ) -> CacheStatistics:
        """The totals as a value; ``joined`` callers shared a call's flight (they missed too)."""
        tenants = MappingProxyType(
            {name: t.snapshot() for name, t in self.tenants.items()} if by_tenant else {}
        )
        return CacheStatistics(
            hits=self.hits,
            misses=self.misses + joined,
            coalesced=coalesced + joined,
            requests_sent=self.requests_sent,
            background_refreshes=self.background_refreshes,
            refresh_failures=self.refresh_failures,
            cached_tokens=cached_tokens,
            storage_hits=self.storage_hits,
            storage_errors=self.storage_errors,
            skipped_entries=self.skipped_entries,
            request_failures=self.request_failures,
            tenants=tenants,
        )


class _Tenants(dict[str, TenantCounters]):
    """Per-tenant counters that appear when first looked up, at most MAX_TENANTS of them."""

    __slots__ = ()

    def __missing__(self, realm: str) -> TenantCounters:
        if len(self) >= MAX_TENANTS:
            realm = OTHER_TENANTS
            if realm in self:
                return dict.__getitem__(self, realm)
        counters = self[realm] = TenantCounters()
        return counters
