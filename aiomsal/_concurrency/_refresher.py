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

__all__ = ["BackgroundRefresher"]

_log = logging.getLogger("aiomsal")

#: Renews a token: ``refresh(token, context)``; one bound method per application, so that
#: scheduling a token allocates no closure.
Refresh = Callable[[CachedToken, Any], Awaitable[object]]


class BackgroundRefresher:
    """Refreshes each token that was used since it was stored, at its refresh time.

    A token is scheduled on its first hit, so a token nobody uses costs no
    work and simply expires. One task sleeps (on the injected clock) until the
    earliest refresh time and starts the refresh through the application's
    coalescing path; a caller arriving meanwhile is served the still-valid
    token. A failed refresh is logged, counted and retried with exponential
    backoff and jitter for as long as the old token may still be served.
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
        self._running = False
        self._wake = anyio.Event()
        self._sleep: anyio.CancelScope | None = None
        self._sleep_until = float("inf")

    def __len__(self) -> int:
        return len(self._heap)

    def schedule(self, token: CachedToken, refresh: Refresh, context: Any = None) -> None:
        """Refresh ``token`` at its refresh time by calling ``refresh(token, context)``."""
        token.renew, token.context = refresh, context
        heapq.heappush(self._heap, token)
        if not self._running:
            self._running = True
            self._runner.spawn(self._run)
        elif token.refresh_at < self._sleep_until:
            self._wake.set()
            if self._sleep is not None:
                self._sleep.cancel()

    async def _run(self) -> None:
        while True:
            if not self._heap:
                self._wake = anyio.Event()
                await self._wake.wait()
                continue
            due = self._heap[0].refresh_at
            delay = due - self._clock.time()
            if delay > 0:
                await self._sleep_for(due, delay)
                continue
            token = heapq.heappop(self._heap)
            if self._runner.closed:
                return
            self._runner.spawn(self._refresh, token)

    async def _sleep_for(self, due: float, delay: float) -> None:
        with anyio.CancelScope() as scope:
            self._sleep, self._sleep_until = scope, due
            try:
                await self._clock.sleep(delay)
            finally:
                self._sleep, self._sleep_until = None, float("inf")

    async def _refresh(self, token: CachedToken) -> None:
        refresh: Refresh = token.renew
        attempt = 0
        while True:
            try:
                await refresh(token, token.context)
            except MsalError as exc:
                if self._runner.closed:
                    return  # the application is closing: nothing failed
                self._counters.refresh_failures += 1
                self._counters.tenant(token.entry.key.realm).refresh_failures += 1
                # The failed token request was a warning already (once per failure episode).
                _log.log(
                    logging.INFO if attempt == 0 else logging.DEBUG,
                    "background refresh failed (attempt %d), serving the cached token "
                    "until it expires: %s", attempt + 1, exc,
                )
            else:
                self._counters.background_refreshes += 1
                self._counters.tenant(token.entry.key.realm).background_refreshes += 1
                return
            delay = min(self._max_retry, self._first_retry * 2**attempt)
            delay *= random.uniform(0.5, 1.0)  # noqa: S311
            attempt += 1
            if self._clock.time() + delay >= token.serve_until:
                return
            await self._clock.sleep(delay)
