"""Background refresh: hot tokens are renewed before they expire, off every caller's path."""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from .._cache._store import CachedToken
from .._errors import MsalError
from .._statistics import Counters
from ._clock import Clock
from ._tasks import TaskRunner

__all__ = ["BackgroundRefresher", "Refresh"]

_log = logging.getLogger("aiomsal")

#: Renews a token: ``refresh(token, context)`` returns whether it renewed it (False when
#: the token was replaced or removed meanwhile); one bound method per application, so
#: that scheduling a token allocates no closure.
Refresh = Callable[[CachedToken, Any], Awaitable[bool]]

#: The schedule is rebuilt without its dead entries once they outnumber the live ones.
_COMPACT_MIN = 64


class _Scheduled(weakref.ref):  # type: ignore[type-arg]
    """One entry of the schedule: a weak reference to the token, and when and how to renew it.

    The schedule holds its tokens weakly, so a token the cache evicts, replaces
    or drops leaves it at once: the entry's callback forgets the refresh and
    its context (for on-behalf-of, the incoming assertion).
    """

    __slots__ = ("context", "due", "order", "refresh")

    def __init__(
        self,
        token: CachedToken,
        gone: Callable[[_Scheduled], None],
        due: float,
        order: int,
        refresh: Refresh,
        context: Any,
    ) -> None:
        # weakref.ref.__new__ took the token and the callback; the rest is this entry's.
        self.due = due
        self.order = order
        self.refresh: Refresh | None = refresh
        self.context = context

    def __new__(cls, token: CachedToken, gone: Callable[[_Scheduled], None], *_: Any) -> Any:
        return super().__new__(cls, token, gone)

    def __lt__(self, other: _Scheduled) -> bool:
        return (self.due, self.order) < (other.due, other.order)


class BackgroundRefresher:
    """Refreshes each token that was used since it was stored, at its refresh time.

    A token is scheduled on its first hit, so a token nobody uses costs no
    work and simply expires. One task sleeps (on the injected clock) until the
    earliest refresh time and starts the refresh through the application's
    coalescing path; a caller arriving meanwhile is served the still-valid
    token. A failed refresh is logged, counted and retried with exponential
    backoff and jitter for as long as the old token may still be served.

    The schedule never keeps a token alive: one that leaves the cache (evicted,
    replaced, removed) leaves the schedule with its context, so memory stays
    bounded by the cache's limit; :meth:`clear` (the application closing)
    empties it. A refresh skipped because its token is gone is not counted.
    """

    def __init__(
        self,
        clock: Clock,
        runner: TaskRunner,
        counters: Counters,
        *,
        first_retry: float = 1.0,
        max_retry: float = 60.0,
    ) -> None:
        self._clock = clock
        self._runner = runner
        self._counters = counters
        self._first_retry = first_retry
        self._max_retry = max_retry
        self._heap: list[_Scheduled] = []
        self._dead = 0
        self._order = itertools.count()
        self._running = False
        self._wake: anyio.Event | None = None
        self._sleep: anyio.CancelScope | None = None
        self._sleep_until = float("inf")
        self._gone = self._forget  # bound once: the weak references' shared callback
        runner.binding.on_move(self._move)

    def __len__(self) -> int:
        """How many tokens are scheduled (tokens that left the cache not included)."""
        return len(self._heap) - self._dead

    def schedule(self, token: CachedToken, refresh: Refresh, context: Any = None) -> bool:
        """Refresh ``token`` at its refresh time by calling ``refresh(token, context)``.

        Returns False, scheduling nothing, when called from an event loop that is
        not the application's (another thread; its own calls will schedule it).
        """
        if self._runner.closed or not self._runner.binding.is_bound_here():
            return False
        entry = _Scheduled(token, self._gone, token.refresh_at, next(self._order), refresh, context)
        heapq.heappush(self._heap, entry)
        if not self._running:
            self._running = True
            self._runner.spawn(self._run)
        elif token.refresh_at < self._sleep_until:
            self._wake_up()
        return True

    def clear(self) -> None:
        """Forget every scheduled token (the application is closing)."""
        self._heap.clear()
        self._dead = 0

    def _forget(self, entry: _Scheduled) -> None:
        """A scheduled token left the cache: drop what its entry holds, compact when worth it."""
        if entry.refresh is None:
            return
        entry.refresh = entry.context = None
        self._dead += 1
        if self._dead > _COMPACT_MIN and 2 * self._dead > len(self._heap):
            self._heap[:] = [e for e in self._heap if e.refresh is not None]
            heapq.heapify(self._heap)
            self._dead = 0

    def _move(self) -> None:
        """The application moved to a new event loop: the old loop's task and events are gone."""
        self._running = False
        self._wake = None
        self._sleep, self._sleep_until = None, float("inf")
        if len(self) and not self._runner.closed:
            self._running = True
            self._runner.spawn(self._run)

    def _wake_up(self) -> None:
        if self._wake is not None:
            self._wake.set()
        if self._sleep is not None:
            self._sleep.cancel()

    async def _run(self) -> None:
        heap = self._heap  # the same list for good: compaction and clear() work in place
        while True:
            while heap and heap[0].refresh is None:
                heapq.heappop(heap)
                self._dead -= 1
            if not heap:
                self._wake = anyio.Event()
                await self._wake.wait()
                continue
            due = heap[0].due
            delay = due - self._clock.time()
            if delay > 0:
                await self._sleep_for(due, delay)
                continue
            entry = heapq.heappop(heap)
            token, refresh, context = entry(), entry.refresh, entry.context
            entry.refresh = entry.context = None
            if self._runner.closed:
                return
            if token is not None and refresh is not None:
                self._runner.spawn(self._refresh, token, refresh, context)

    async def _sleep_for(self, due: float, delay: float) -> None:
        with anyio.CancelScope() as scope:
            self._sleep, self._sleep_until = scope, due
            try:
                await self._clock.sleep(delay)
            finally:
                self._sleep, self._sleep_until = None, float("inf")

    async def _refresh(self, token: CachedToken, refresh: Refresh, context: Any) -> None:
        attempt = 0
        while True:
            try:
                renewed = await refresh(token, context)
            except MsalError as exc:
                if self._runner.closed:
                    return  # the application is closing: nothing failed
                self._counters.refresh_failures += 1
                _log.warning(
                    "background refresh failed (attempt %d), serving the cached token "
                    "until it expires: %s", attempt + 1, exc
                )
            else:
                if renewed:
                    self._counters.background_refreshes += 1
                return
            delay = min(self._max_retry, self._first_retry * 2**attempt)
            delay *= random.uniform(0.5, 1.0)  # noqa: S311
            attempt += 1
            if self._clock.time() + delay >= token.serve_until:
                return
            await self._clock.sleep(delay)
