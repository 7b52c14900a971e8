"""Background refresh: hot tokens are renewed before they expire, off every caller's path."""

from __future__ import annotations

import heapq
import logging
import random
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

#: The schedule is swept of tokens that left the cache once it grew by a quarter.
_SWEEP_MIN = 64


class BackgroundRefresher:
    """Refreshes each token that was used since it was stored, at its refresh time.

    A token is scheduled on its first hit, so a token nobody uses costs no
    work and simply expires. One task sleeps (on the injected clock) until the
    earliest refresh time and starts the refresh through the application's
    coalescing path; a caller arriving meanwhile is served the still-valid
    token. A failed refresh is logged, counted and retried with exponential
    backoff and jitter for as long as the old token may still be served.

    The schedule holds the token records themselves (what to call is on the
    record: ``renew`` and ``context``). A token that leaves the cache
    (evicted, replaced, removed) is released by the cache at once
    (:func:`aiomsal._cache._store.release`: its ``renew`` and ``context``, for
    on-behalf-of the incoming assertion, are dropped); the schedule skips it
    when its time comes and sweeps such records out whenever it has grown by a
    quarter, so its size stays within the cache's limit however many users
    pass through. :meth:`clear` (the application closing) empties it; a
    refresh skipped because its token is gone is not counted.
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
        #: The scheduled tokens themselves, ordered by refresh time (the smallest handle:
        #: one list slot per token; what to call is on the token).
        self._heap: list[CachedToken] = []
        self._sweep_at = _SWEEP_MIN
        self._running = False
        self._wake: anyio.Event | None = None
        self._sleep: anyio.CancelScope | None = None
        self._sleep_until = float("inf")
        runner.binding.on_move(self._move)

    def __len__(self) -> int:
        return len(self._heap)

    def schedule(self, token: CachedToken, refresh: Refresh, context: Any = None) -> bool:
        """Refresh ``token`` at its refresh time by calling ``refresh(token, context)``.

        Returns False, scheduling nothing, when the application is closed or
        this is not its event loop (another thread; its own calls schedule it).
        """
        if self._runner.closed or not self._runner.binding.is_bound_here():
            return False
        token.renew, token.context = refresh, context
        heap = self._heap
        heapq.heappush(heap, token)
        if len(heap) >= self._sweep_at:
            heap[:] = [t for t in heap if t.renew is not None]
            heapq.heapify(heap)
            self._sweep_at = max(_SWEEP_MIN, len(heap) + len(heap) // 4)
        if not self._running:
            self._running = True
            self._runner.spawn(self._run)
        elif token.refresh_at < self._sleep_until:
            self._wake_up()
        return True

    def clear(self) -> None:
        """Forget every scheduled token (the application is closing)."""
        for token in self._heap:
            token.renew = token.context = None
        self._heap.clear()
        self._sweep_at = _SWEEP_MIN

    def _move(self) -> None:
        """The application moved to a new event loop: the old loop's task and events are gone."""
        self._running = False
        self._wake = None
        self._sleep, self._sleep_until = None, float("inf")
        if self._heap and not self._runner.closed:
            self._running = True
            self._runner.spawn(self._run)

    def _wake_up(self) -> None:
        if self._wake is not None:
            self._wake.set()
        if self._sleep is not None:
            self._sleep.cancel()

    async def _run(self) -> None:
        heap = self._heap  # the same list for good: sweeps and clear() work in place
        while True:
            while heap and heap[0].renew is None:
                heapq.heappop(heap)  # it left the cache
            if not heap:
                self._wake = anyio.Event()
                await self._wake.wait()
                continue
            due = heap[0].refresh_at
            delay = due - self._clock.time()
            if delay > 0:
                await self._sleep_for(due, delay)
                continue
            token = heapq.heappop(heap)
            if self._runner.closed:
                return
            refresh, context = token.renew, token.context
            if refresh is not None:
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
                self._counters.tenant(token.key.realm).refresh_failures += 1
                # The failed token request was a warning already (once per failure episode).
                _log.log(
                    logging.INFO if attempt == 0 else logging.DEBUG,
                    "background refresh failed (attempt %d), serving the cached token "
                    "until it expires: %s", attempt + 1, exc,
                )
            else:
                if renewed:
                    self._counters.background_refreshes += 1
                    self._counters.tenant(token.key.realm).background_refreshes += 1
                return
            delay = min(self._max_retry, self._first_retry * 2**attempt)
            delay *= random.uniform(0.5, 1.0)  # noqa: S311
            attempt += 1
            if self._clock.time() + delay >= token.serve_until or token.renew is None:
                return  # it expires first, or it left the cache
            await self._clock.sleep(delay)
