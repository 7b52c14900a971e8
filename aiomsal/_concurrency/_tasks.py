"""The application's background tasks: coalesced requests and refreshes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from anyio.abc import TaskGroup

from .._errors import MsalError

__all__ = ["TaskRunner"]

_log = logging.getLogger("aiomsal")

_Job = tuple[Callable[..., Awaitable[None]], tuple[Any, ...]]


class TaskRunner:
    """Owns every task aiomsal starts, so that :meth:`aclose` leaves none behind.

    The tasks run in an anyio task group hosted by one supervisor task, which
    starts with the first job. Hosting the group in its own task (rather than
    in the task that entered ``async with app:``) lets any task start jobs and
    lets an application used without ``async with`` work the same way.
    """

    def __init__(self) -> None:
        self._group: TaskGroup | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._pending: list[_Job] = []
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def spawn(self, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Start ``fn(*args)`` in the background; errors it raises are logged."""
        if self._closed:
            raise MsalError("the application is closed")
        if self._group is not None:
            self._group.start_soon(self._guard, fn, *args)
            return
        self._pending.append((fn, args))
        if self._supervisor is None:
            self._supervisor = asyncio.get_running_loop().create_task(self._supervise())

    async def aclose(self) -> None:
        """Cancel every task and wait until they have ended. Idempotent."""
        self._closed = True
        self._pending.clear()
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor

    async def _supervise(self) -> None:
        try:
            async with anyio.create_task_group() as group:
                self._group = group
                for fn, args in self._pending:
                    group.start_soon(self._guard, fn, *args)
                self._pending.clear()
                await anyio.sleep_forever()
        finally:
            self._group = None

    @staticmethod
    async def _guard(fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        try:
            await fn(*args)
        except Exception:  # a background task must never tear down the group
            _log.exception("aiomsal background task failed")
