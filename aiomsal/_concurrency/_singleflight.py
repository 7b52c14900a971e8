"""Coalescing: concurrent callers for one key share one execution."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from contextvars import ContextVar
from typing import Any, Generic, TypeVar

from .._errors import MsalError
from ._tasks import TaskRunner

__all__ = ["SingleFlight", "current_waiters", "inside_flight"]

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class _Flight(Generic[T]):
    __slots__ = ("done", "error", "joined", "result", "waiters")

    def __init__(self) -> None:
        # asyncio's Event, not anyio's: one coroutine less per waiter (the tasks are asyncio's).
        self.done = asyncio.Event()
        self.result: T | None = None
        self.error: BaseException | None = None
        self.waiters = 0
        #: The futures of the callers that joined through :meth:`SingleFlight.join`.
        self.joined: list[asyncio.Future[T]] = []

    def settle(self) -> None:
        """Wake every waiter with the outcome (the flight ended, or was aborted)."""
        self.done.set()
        joined, self.joined = self.joined, []
        for future in joined:
            if not future.done():  # a cancelled caller's future is done already
                if self.error is not None:
                    future.set_exception(self.error)
                else:
                    future.set_result(self.result)  # type: ignore[arg-type]


#: The flights the current task runs inside, outermost first. A flight's task inherits the
#: context of the task that started it, so a flight started inside another sees both.
_running: ContextVar[tuple[_Flight[Any], ...]] = ContextVar("aiomsal_flights", default=())


def _live() -> list[_Flight[Any]]:
    # A task started by a flight's task (a background job) inherits flights that ended.
    return [f for f in _running.get() if not f.done.is_set()]


def inside_flight() -> bool:
    """Whether the current task runs a flight (whose waiters the flight accounts for)."""
    return bool(_live())


def current_waiters() -> int:
    """The callers waiting on the flights the current task runs inside (0 outside any).

    An inner flight's waiters include the outer flight's task, which is not a caller.
    Callers that gave up are still counted until the flight ends.
    """
    live = _live()
    return sum(f.waiters + len(f.joined) for f in live) - max(len(live) - 1, 0)


class SingleFlight(Generic[K, T]):
    """Runs at most one call per key at a time; later callers wait for its outcome.

    The call runs in a task of its own (started by the application's
    :class:`TaskRunner`), not in a caller's, so a caller that is cancelled
    stops waiting without cancelling the call for the others. A failure
    reaches every waiter of that flight and is forgotten: the next call for
    the key starts a new flight. Keys never wait on each other.
    """

    def __init__(self, runner: TaskRunner) -> None:
        self._runner = runner
        self._flights: dict[K, _Flight[T]] = {}
        #: Callers that joined a flight another caller started.
        self.coalesced = 0

    def __len__(self) -> int:
        return len(self._flights)

    async def run(self, key: K, call: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Await ``call(*args)`` for ``key``, or the flight already running for it.

        Passing ``args`` rather than a closure spares each waiter that joins a
        flight the closure it would never call.
        """
        flight = self._flights.get(key)
        if flight is None:
            flight = self.start(key, call, *args)
        else:
            self.coalesced += 1
        flight.waiters += 1
        try:
            await flight.done.wait()
        finally:
            flight.waiters -= 1
        if flight.error is not None:
            raise flight.error
        return flight.result  # type: ignore[return-value]

    def join(self, key: K) -> asyncio.Future[T] | None:
        """A future of the flight running for ``key`` (``None`` when none runs).

        The cheapest way to wait for a flight: one future per caller, no
        coroutine, woken once with the outcome; a caller that is cancelled
        cancels only its own future. A cold burst's thousands of waiters
        take this path.
        """
        flight = self._flights.get(key)
        if flight is None:
            return None
        self.coalesced += 1
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        flight.joined.append(future)
        return future

    def start(self, key: K, call: Callable[..., Awaitable[T]], *args: Any) -> _Flight[T]:
        """Start a flight for ``key`` unless one runs; return the running one."""
        flight = self._flights.get(key)
        if flight is None:
            flight = self._flights[key] = _Flight()
            self._runner.spawn(self._execute, key, flight, call, args)
        return flight

    def abort(self, error: MsalError) -> None:
        """End every flight with ``error`` (the application is closing)."""
        flights, self._flights = self._flights, {}
        for flight in flights.values():
            if not flight.done.is_set():
                flight.error = error
                flight.settle()

    async def _execute(
        self, key: K, flight: _Flight[T], call: Callable[..., Awaitable[T]], args: tuple[Any, ...]
    ) -> None:
        _running.set((*_running.get(), flight))  # this task's own context
        try:
            flight.result = await call(*args)
        except Exception as exc:
            flight.error = exc
        except BaseException:
            flight.error = MsalError("the application was closed while acquiring a token")
            raise
        finally:
            if self._flights.get(key) is flight:
                del self._flights[key]
            flight.settle()
