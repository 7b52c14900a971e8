"""A call's deadline: ``timeout=`` bounds all a call waits for, in real time, retries included.

:func:`within` runs a call under a deadline and turns its expiry into
:class:`MsalTransportError`; :func:`remaining` tells the code below (the
transport) how much of it is left, so that each attempt, each pool wait and
each retry fits in what the whole call may still take. Deadlines are real
(monotonic) time, not the injected clock: they bound waits on the network,
which a :class:`~aiomsal.testing.VirtualClock` does not govern.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import TypeVar

import anyio

from .._errors import MsalTransportError

__all__ = ["deadline_in", "no_deadline", "remaining", "until", "within"]

T = TypeVar("T")

_deadline: ContextVar[float] = ContextVar("aiomsal_deadline", default=math.inf)

#: Seconds past its deadline after which a call is cancelled, if what it waits for (which
#: honours the deadline itself, with a more telling error) has not ended it by then.
BACKSTOP = 0.25


def remaining() -> float:
    """Seconds left before the current call's deadline (infinite outside a call)."""
    deadline = _deadline.get()
    if deadline == math.inf:
        return math.inf
    return deadline - anyio.current_time()


def no_deadline() -> None:
    """Start a background task free of the deadline of the call that spawned it."""
    _deadline.set(math.inf)


def deadline_in(seconds: float) -> float:
    """The deadline ``seconds`` from now, or the current call's, if that comes sooner."""
    return min(_deadline.get(), anyio.current_time() + seconds)


async def within(seconds: float, call: Callable[[], Awaitable[T]]) -> T:
    """Await ``call()`` for at most ``seconds`` (or less, inside a call with an earlier deadline).

    Raises :class:`MsalTransportError` when the deadline passes first.
    """
    return await until(deadline_in(seconds), call, seconds)


async def until(deadline: float, call: Callable[[], Awaitable[T]], seconds: float) -> T:
    """Await ``call()`` until ``deadline`` (``anyio.current_time()``), the call's ``timeout=``.

    Whatever the call waits for reads the deadline (:func:`remaining`) and
    ends at it with its own error (no answer, a full pool, ...); a call still
    running :data:`BACKSTOP` seconds later is cancelled.
    """
    reset = _deadline.set(deadline)
    try:
        with anyio.CancelScope(deadline=deadline + BACKSTOP):
            return await call()
        raise MsalTransportError(
            f"no answer within {seconds:g}s (timeout= bounds the whole call, retries included)"
        )
    finally:
        _deadline.reset(reset)
