"""Coalescing: concurrent callers for one key share one execution."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

import anyio

from .._errors import MsalError
from ._deadline import deadline_in, until
from ._tasks import TaskRunner

__all__ = ["SingleFlight", "own_copy"]

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class _Flight(Generic[T]):
    __slots__ = ("done", "error", "result", "waiters")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.result: T | None = None
        self.error: BaseException | None = None
        self.waiters = 0


class SingleFlight(Generic[K, T]):
    """Runs at most one call per key at a time; later callers wait for its outcome.

    The call runs in a task of its own (started by the application's
    :class:`TaskRunner`), not in a caller's, so a caller that is cancelled
    stops waiting without cancelling the call for the others. A failure
    reaches every waiter of that flight, each as an exception of its own
    chained to the flight's (so no traceback grows with the number of
    waiters), and is forgotten: the next call for the key starts a new
    flight. Keys never wait on each other. Flights of an event loop that
    ended are dropped when the runner moves to a new loop. With ``timeout``,
    each flight fails with :class:`MsalTransportError` after that many
    seconds (real time), or at the deadline of the call that started it if
    that comes sooner (so that its callers get the flight's own, more telling
    error rather than their deadline's), however long other callers would wait.
    """

    def __init__(self, runner: TaskRunner, *, timeout: float | None = None) -> None:
        self._runner = runner
        self._timeout = timeout
        self._flights: dict[K, _Flight[T]] = {}
        #: Callers that joined a flight another caller started.
        self.coalesced = 0
        runner.binding.on_move(self._flights.clear)

    def __len__(self) -> int:
        return len(self._flights)

    async def run(self, key: K, call: Callable[[], Awaitable[T]]) -> T:
        """Await ``call()`` for ``key``, or the flight already running for it."""
        self._runner.bind()
        flight = self._flights.get(key)
        if flight is None:
            flight = self.start(key, call)
        else:
            self.coalesced += 1
        flight.waiters += 1
        try:
            await flight.done.wait()
        finally:
            flight.waiters -= 1
        if flight.error is not None:
            raise own_copy(flight.error) from flight.error
        return flight.result  # type: ignore[return-value]

    def start(self, key: K, call: Callable[[], Awaitable[T]]) -> _Flight[T]:
        """Start a flight for ``key`` unless one runs; return the running one."""
        flight = self._flights.get(key)
        if flight is None:
            flight = _Flight()
            deadline = None if self._timeout is None else deadline_in(self._timeout)
            self._runner.spawn(self._execute, key, flight, call, deadline)
            self._flights[key] = flight
        return flight

    def abort(self, error: MsalError) -> None:
        """End every flight with ``error`` (the application is closing)."""
        flights, self._flights = self._flights, {}
        for flight in flights.values():
            if not flight.done.is_set():
                flight.error = error
                flight.done.set()

    async def _execute(
        self,
        key: K,
        flight: _Flight[T],
        call: Callable[[], Awaitable[T]],
        deadline: float | None,
    ) -> None:
        try:
            if deadline is None or self._timeout is None:
                flight.result = await call()
            else:
                flight.result = await until(deadline, call, self._timeout)
        except Exception as exc:
            flight.error = exc
        except BaseException:
            flight.error = MsalError("the application was closed while acquiring a token")
            raise
        finally:
            if self._flights.get(key) is flight:
                del self._flights[key]
            flight.done.set()


def own_copy(error: BaseException) -> BaseException:
    """A new exception like ``error`` (same type, arguments and attributes), without its traces.

    Each waiter of a failed flight raises its own copy ``from`` the shared
    one, so tracebacks and ``__context__`` stay each caller's own.
    """
    cls = type(error)
    try:
        clone = cls.__new__(cls, *error.args)
        clone.args = error.args
        state = getattr(error, "__dict__", None)
        if state:
            clone.__dict__.update(state)
            notes = state.get("__notes__")
            if isinstance(notes, list):
                clone.__dict__["__notes__"] = list(notes)
    except Exception:  # an exotic exception type: wrap what it says instead
        return MsalError(f"{cls.__name__}: {error}")
    return clone
