"""The one source of time in aiomsal.

Every reading of the time and every sleep in aiomsal goes through a
:class:`Clock`, so that tests can pass :class:`aiomsal.testing.VirtualClock`
and simulate hours of token lifetimes in milliseconds.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

import anyio

__all__ = ["Clock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """Tells the time (epoch seconds) and sleeps."""

    def time(self) -> float:
        """Return the current time in seconds since the epoch."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Suspend the calling task for ``seconds`` of this clock's time."""
        ...


class SystemClock:
    """The wall clock: :func:`time.time` and :func:`anyio.sleep`."""

    __slots__ = ()

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"
