"""Which event loop an application works on: bound on first use, moved once that loop has ended.

An application's background tasks, connections and waiting callers belong to
one asyncio event loop. A script that calls ``asyncio.run()`` twice with a
module-level application, or a test suite with one loop per test and a
shared application, uses it from a new loop after the first one has ended:
then everything bound to the old loop is dropped and rebuilt on the new one
(the callbacks given to :meth:`LoopBinding.on_move`). While the first loop is
still running (another thread), a second loop is refused with a clear
:class:`MsalError` at once instead of a hang or a raw ``RuntimeError``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from .._errors import MsalError

__all__ = ["LoopBinding", "loop_has_ended"]


def loop_has_ended(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether nothing can run on ``loop`` any more (closed, or no longer running)."""
    return loop.is_closed() or not loop.is_running()


class LoopBinding:
    """The event loop an application is bound to, and what to rebuild when it moves."""

    __slots__ = ("_lock", "_loop", "_on_move")

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._on_move: list[Callable[[], None]] = []

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop bound now (None before first use)."""
        return self._loop

    def on_move(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` (on the new loop) whenever the binding moves to another loop.

        Callbacks run in registration order, so the task runner, registered
        first, is ready before the parts that start tasks on it.
        """
        self._on_move.append(callback)

    def bind(self) -> asyncio.AbstractEventLoop:
        """The running loop, once it is this application's; raise while another loop runs."""
        loop = asyncio.get_running_loop()
        if loop is self._loop:
            return loop
        with self._lock:
            old = self._loop
            if old is loop:
                return loop
            if old is not None and not loop_has_ended(old):
                raise MsalError(
                    "this application is in use by another running event loop (another "
                    "thread); an application works on one event loop at a time: create "
                    "one application per event loop"
                )
            self._loop = loop
            if old is not None:
                for callback in self._on_move:
                    callback()
        return loop

    def is_bound_here(self) -> bool:
        """Whether the running loop is (or may become) this application's, without raising."""
        try:
            self.bind()
        except MsalError:
            return False
        return True
