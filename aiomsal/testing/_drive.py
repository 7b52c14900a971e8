"""Awaiting code that sleeps on a VirtualClock (polling, refresh retries) without hanging."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio

from ._virtual_clock import VirtualClock

__all__ = ["drive"]

T = TypeVar("T")


async def drive(
    clock: VirtualClock,
    call: Callable[[], Awaitable[T]],
    *,
    step: float = 1.0,
    limit: float = 30.0,
) -> T:
    """Await ``call()``, moving ``clock`` on by ``step`` whenever something sleeps on it.

    For calls that wait on the injected clock (device code polling, token
    time); waits on the network (IMDS and transport backoff) are real time
    and need no driving. The test neither sleeps for real nor hangs on a clock nobody
    advances. ``limit`` (real seconds) bounds the whole call; loopback I/O in
    progress is waited for in real time, a millisecond at a time.
    """
    outcome: dict[str, Any] = {}

    async def run() -> None:
        try:
            outcome["value"] = await call()
        except Exception as exc:
            outcome["error"] = exc

    with anyio.fail_after(limit):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            while not outcome:
                if clock.sleepers:
                    await clock.advance(step)
                else:
                    await anyio.sleep(0.001)
    if "error" in outcome:
        raise outcome["error"]
    result: T = outcome["value"]
    return result
