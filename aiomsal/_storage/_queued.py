"""Work queued behind a lock, done all at once by whoever holds the lock next.

A file storage serializes its writers (one rewrite of the file at a time) and
its lock records (one pass over the records at a time). Under a burst, a
queue of hundreds of callers, each doing its own round of file operations,
keeps the last ones waiting past any bound. Here the callers waiting for the
lock leave their work in a queue; the next holder takes the whole queue and
does it in one round, and each caller gets its own result, or its own
exception chained to the shared cause. A holder that is cancelled (its
caller gave up) fails alone: the rest of its round goes to the next holder.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

import anyio

from .._errors import MsalConfigurationError, MsalError, MsalTransportError

__all__ = ["LockQueue"]

_I = TypeVar("_I")


class _Queued(Generic[_I]):
    __slots__ = ("done", "error", "item", "result")

    def __init__(self, item: _I) -> None:
        self.item = item
        self.done = False
        self.error: BaseException | None = None
        self.result: Any = None


class LockQueue(Generic[_I]):
    """Items queued for ``run``, which the holder of ``lock`` runs for the whole queue."""

    def __init__(
        self,
        lock: anyio.Lock,
        run: Callable[[list[_I]], Awaitable[Sequence[Any]]],
        interrupted: str,
    ) -> None:
        self._lock = lock
        self._run = run
        self._interrupted = interrupted
        self._queue: list[_Queued[_I]] = []

    async def submit(self, item: _I, check: Callable[[], None]) -> Any:
        """Queue ``item``; its result once run. ``check()`` runs first in each round."""
        mine = _Queued(item)
        self._queue.append(mine)
        try:
            await self._lock.acquire()
        except anyio.get_cancelled_exc_class():
            if not mine.done:  # gave up waiting: nobody is to do it any more
                self._queue.remove(mine)
            raise
        try:
            if not mine.done:
                batch, self._queue = self._queue, []
                try:
                    check()
                    results = await self._run([queued.item for queued in batch])
                except anyio.get_cancelled_exc_class():
                    # Only this caller gave up: the others' work goes to the next holder.
                    mine.done = True
                    self._queue[:0] = [queued for queued in batch if queued is not mine]
                    raise
                except BaseException as exc:
                    shared = exc if isinstance(exc, MsalError) else MsalTransportError(
                        self._interrupted
                    )
                    for queued in batch:
                        queued.error = shared
                        queued.done = True
                    raise
                for queued, result in zip(batch, results, strict=True):
                    queued.result = result
                    queued.done = True
                return mine.result
        finally:
            self._lock.release()
        if mine.error is not None:  # run (and failed) in an earlier holder's round
            raise _own_copy(mine.error) from mine.error
        return mine.result


def _own_copy(error: BaseException) -> MsalError:
    """A caller's own exception for the failure of a round it was part of."""
    for kind in (MsalConfigurationError, MsalTransportError):
        if isinstance(error, kind):
            return kind(str(error))
    return MsalError(str(error))
