"""When a cached access token stops being served, and when it is refreshed (sans-I/O)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from .._errors import MsalConfigurationError

__all__ = ["RefreshPolicy"]

TWO_HOURS = 7200


@dataclass(frozen=True, slots=True)
class RefreshPolicy:
    """The timing rules for cached access tokens.

    ``expiry_margin``: a token with less than this left is never served (MSAL
    uses 5 minutes). For tokens that live less than five margins, the margin
    shrinks to a fifth of the lifetime so that short-lived tokens are still
    served from the cache.

    ``refresh_fraction``: the point of its lifetime at which a token is
    refreshed when the authority sent no ``refresh_in`` and the lifetime is
    under two hours (from two hours on, MSAL's rule of half the lifetime
    applies). ``jitter``: a random spread, as a fraction of the lifetime, so
    that tokens issued together are not all refreshed together.
    """

    expiry_margin: float = 300.0
    refresh_fraction: float = 0.75
    jitter: float = 0.05

    def __post_init__(self) -> None:
        if self.expiry_margin < 0:
            raise MsalConfigurationError("expiry_margin must not be negative")
        if not 0.0 < self.refresh_fraction < 1.0:
            raise MsalConfigurationError("refresh_fraction must lie between 0 and 1")
        if not 0.0 <= self.jitter < 0.5:
            raise MsalConfigurationError("jitter must lie in [0, 0.5)")

    def margin(self, lifetime: float) -> float:
        """Seconds before expiry at which a token stops being served."""
        return min(self.expiry_margin, max(lifetime, 0.0) / 5)

    def serve_until(self, cached_at: float, expires_on: float) -> float:
        """The last moment a token is served from the cache."""
        return expires_on - self.margin(expires_on - cached_at)

    def refresh_at(
        self,
        cached_at: float,
        expires_on: float,
        refresh_in: float | None,
        rng: random.Random | None = None,
    ) -> float:
        """When to refresh a token fetched at ``cached_at`` (always before ``serve_until``)."""
        lifetime = expires_on - cached_at
        if refresh_in is not None and 0 < refresh_in < lifetime:
            planned = refresh_in
        elif lifetime >= TWO_HOURS:
            planned = lifetime / 2
        else:
            planned = lifetime * self.refresh_fraction
        if self.jitter:
            spread = lifetime * self.jitter
            planned += (rng or random).uniform(-spread, spread)
        return self._bounded(cached_at, expires_on, planned)

    def adopted_refresh_at(
        self,
        cached_at: float,
        expires_on: float,
        refresh_on: float,
        rng: random.Random | None = None,
    ) -> float:
        """When to refresh a token another process fetched and planned to refresh at ``refresh_on``.

        At that time or a little later (up to the jitter, never earlier): the
        process that fetched it is due first, renews it and stores the new
        token, which the others then find in the storage at their own refresh
        time instead of asking the authority. If it went away, the next one
        due renews it. Always before ``serve_until``.
        """
        lifetime = expires_on - cached_at
        planned = refresh_on - cached_at
        if self.jitter:
            planned += (rng or random).uniform(0.0, lifetime * self.jitter)
        return self._bounded(cached_at, expires_on, planned)

    def _bounded(self, cached_at: float, expires_on: float, planned: float) -> float:
        """``cached_at + planned``, kept within [cached_at, half a margin before serving ends]."""
        latest = self.serve_until(cached_at, expires_on) - self.margin(expires_on - cached_at) / 2
        return cached_at + max(0.0, min(planned, latest - cached_at))
