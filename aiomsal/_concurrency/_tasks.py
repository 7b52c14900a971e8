"""The application's background tasks: coalesced requests and refreshes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from anyio.abc import TaskGroup

from .._errors import MsalError
from ._deadline import no_deadline
from ._loop_binding import LoopBinding

__all__ = ["TaskRunner"]

_log = logging.getLogger("aiomsal")

_Job = tuple[Callable[..., Awaitable[None]], tuple[Any, ...]]

#: Seconds the end-of-loop cleanup (closing connections) may take.
_CLEANUP_SECONDS = 2.0
#: Python 3.12 starts a task eagerly on request (its first step runs at once, in the caller).
EAGER_TASKS = sys.version_info >= (3, 12)


class TaskRunner:
    """Owns every task aiomsal starts, so that :meth:`aclose` leaves none behind.

    The tasks run in an anyio task group hosted by one supervisor task, which
    starts with the first job. Hosting the group in its own task (rather than
    in the task that entered ``async with app:``) lets any task start jobs and
    lets an application used without ``async with`` work the same way.
    Jobs that callers wait for (:meth:`spawn_now`) may instead start at once,
    as tasks of their own that the runner tracks and cancels alike.

    The runner is bound to one event loop at a time (:attr:`binding`). When
    that loop ends (``asyncio.run()`` returns, cancelling the supervisor), the
    callbacks given to :meth:`on_loop_end` release what is bound to it
    (connections); the next use from a new loop starts a new supervisor there.
    """

    def __init__(self) -> None:
        self.binding = LoopBinding()
        self._group: TaskGroup | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._pending: list[_Job] = []
        self._closed = False
        self._loop_end: list[Callable[[], Awaitable[None]]] = []
        #: Jobs started eagerly (:meth:`spawn_now`) and not yet finished.
        self._eager: set[asyncio.Task[None]] = set()
        self.binding.on_move(self._forget_old_loop)

    @property
    def closed(self) -> bool:
        return self._closed

    def bind(self) -> None:
        """Make sure the running loop is this runner's (see :class:`LoopBinding`)."""
        self.binding.bind()

    def on_loop_end(self, cleanup: Callable[[], Awaitable[None]]) -> None:
        """Await ``cleanup()`` when the loop the runner works on ends without :meth:`aclose`."""
        self._loop_end.append(cleanup)

    def spawn(self, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Start ``fn(*args)`` in the background; errors it raises are logged."""
        loop = self._open_loop()
        if self._group is not None:
            self._group.start_soon(self._guard, fn, *args)
            return
        self._pending.append((fn, args))
        if self._supervisor is None or self._supervisor.done():
            self._supervisor = loop.create_task(self._supervise())

    def spawn_now(self, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        """:meth:`spawn`, but on Python 3.12+ the job's first step runs at once.

        For a job that callers are waiting for (a flight): it gets as far as it
        can (resolving, building its request, writing it to a pooled connection)
        before the loop turns to the other tasks already queued, instead of
        after them. A cold burst of 10,000 callers would otherwise queue the
        token request behind 10,000 first steps. Cancelled by :meth:`aclose`.
        """
        if not EAGER_TASKS:
            self.spawn(fn, *args)
            return
        loop = self._open_loop()
        task: asyncio.Task[None] = asyncio.Task(  # type: ignore[call-arg,unused-ignore]
            self._guard(fn, *args), loop=loop, eager_start=True
        )
        if not task.done():
            self._eager.add(task)
            task.add_done_callback(self._eager.discard)

    def _open_loop(self) -> asyncio.AbstractEventLoop:
        """The loop new jobs start on; MsalError once the runner is closed."""
        if self._closed:
            raise MsalError("the application is closed")
        return self.binding.bind()

    async def aclose(self) -> None:
        """Cancel every task and wait until they have ended. Idempotent."""
        self._closed = True
        self._pending.clear()
        eager, self._eager = self._eager, set()
        if eager:
            self.binding.bind()
            for task in eager:
                task.cancel()
            await asyncio.gather(*eager, return_exceptions=True)
        if self._supervisor is None:
            return
        self.binding.bind()  # a supervisor of an ended loop is dropped here
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor

    def _forget_old_loop(self) -> None:
        """The loop ended: its supervisor and task group are gone with it."""
        self._group = None
        self._supervisor = None
        self._pending.clear()
        self._eager.clear()  # they ended with their loop

    async def _supervise(self) -> None:
        group: TaskGroup | None = None
        try:
            async with anyio.create_task_group() as group:
                self._group = group
                for fn, args in self._pending:
                    group.start_soon(self._guard, fn, *args)
                self._pending.clear()
                await anyio.sleep_forever()
        finally:
            if self._group is group:
                self._group = None
            if not self._closed:
                # Cancelled without aclose(): the event loop is ending (asyncio.run returns).
                with anyio.CancelScope(shield=True), anyio.move_on_after(_CLEANUP_SECONDS):
                    for cleanup in self._loop_end:
                        await self._guard(cleanup)

    @staticmethod
    async def _guard(fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        # A background task outlives the call that started it: not that call's deadline.
        no_deadline()
        try:
            await fn(*args)
        except Exception:  # a background task must never tear down the group
            _log.exception("aiomsal background task failed")
