"""Bounded memory: second-chance (CLOCK) eviction and an incremental sweep of expired tokens.

A ring holds every stored token in insertion order. Each insertion looks at
a couple of tokens at the head of the ring: a token that expired or was
replaced is dropped; while the store is over its limit, a token used since
the hand last passed (its ``touched`` flag) gets a second chance at the
tail, and one that was not is evicted. That approximates least-recently-used
eviction at O(1) per insertion, and costs a hit only the setting of a flag.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from .._errors import MsalConfigurationError

__all__ = ["Evictable", "EvictionRing"]


class Evictable(Protocol):
    """What the ring needs of a stored token: when it stops being served, and a use flag."""

    @property
    def serve_until(self) -> float: ...

    touched: bool


_T = TypeVar("_T", bound=Evictable)

#: Tokens examined per insertion when the store is within its limit (the expiry sweep).
_SWEEP = 2


class EvictionRing(Generic[_T]):
    __slots__ = ("_ring", "limit")

    def __init__(self, limit: int | None = None) -> None:
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise MsalConfigurationError("max_cache_entries must be a positive integer or None")
        self.limit = limit
        self._ring: deque[_T] = deque()

    def admit(
        self,
        token: _T,
        *,
        size: Callable[[], int],
        is_current: Callable[[_T], bool],
        drop: Callable[[_T, bool], None],
        now: float,
    ) -> int:
        """Track a newly stored token; evict and sweep as needed. Return how many were dropped.

        ``drop(token, expired)`` removes a token that expired or is evicted.
        """
        ring = self._ring
        ring.append(token)
        dropped = 0
        examined = 0
        while ring and (examined < _SWEEP or (self.limit is not None and size() > self.limit)):
            examined += 1
            head = ring.popleft()
            if not is_current(head):
                continue  # replaced or removed already: forget it
            expired = head.serve_until <= now
            if expired or (self.limit is not None and size() > self.limit and not head.touched):
                drop(head, expired)
                dropped += 1
            else:
                head.touched = False
                ring.append(head)
            if examined > 2 * len(ring) + _SWEEP:
                break  # every token was touched: a full turn of second chances is enough
        return dropped

    def clear(self) -> None:
        self._ring.clear()
