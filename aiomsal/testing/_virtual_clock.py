"""A clock whose time moves only when a test says so."""

from __future__ import annotations

import heapq
import itertools

import anyio

__all__ = ["VirtualClock"]


class VirtualClock:
    """A :class:`aiomsal.Clock` for tests: time stands still until :meth:`advance`.

    Pass the same instance as ``clock=`` to the applications and to
    :class:`FakeAuthority`, so that issued tokens and the cache agree on the
    time; then ``await clock.advance(3600)`` simulates an hour in milliseconds.
    """

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = float(start)
        self._sleepers: list[tuple[float, int, anyio.Event]] = []
        self._order = itertools.count()

    def time(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await anyio.lowlevel.checkpoint()
            return
        wake = anyio.Event()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._order), wake))
        await wake.wait()

    @property
    def sleepers(self) -> int:
        """How many tasks are sleeping on this clock (cancelled ones included until due)."""
        return len(self._sleepers)

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking every sleeper whose time has come, in order.

        Each woken sleeper gets to run (and to go back to sleep) before time
        moves on to the next one, so a task that sleeps in a loop sees every
        one of its deadlines within the advanced span.
        """
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        target = self._now + seconds
        while self._sleepers and self._sleepers[0][0] <= target:
            due, _, wake = heapq.heappop(self._sleepers)
            self._now = max(self._now, due)
            wake.set()
            await _settle()
        self._now = target
        await _settle()

    def __repr__(self) -> str:
        return f"VirtualClock(time={self._now:.3f}, sleepers={len(self._sleepers)})"


async def _settle(rounds: int = 20) -> None:
    """Let woken tasks run until they block again (on I/O or on this clock)."""
    for _ in range(rounds):
        await anyio.lowlevel.checkpoint()
