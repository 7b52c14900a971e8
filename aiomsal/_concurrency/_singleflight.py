"""Coalescing: concurrent callers for one key share one execution."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from contextvars import ContextVar
from typing import Any, Generic, TypeVar

from .._errors import MsalError
from ._deadline import deadline_in, until
from ._tasks import TaskRunner

__all__ = ["SingleFlight", "current_waiters", "inside_flight", "own_copy"]

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
                    future.set_exception(own_error(self.error))
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

    Each waiter of a failed flight gets an exception of its own, chained to
    the flight's (so no traceback grows with the number of waiters, and no
    caller sees another's as ``__context__``). Flights of an event loop that
    ended are dropped when the runner moves to a new loop. With ``timeout``,
    each flight fails with :class:`MsalTransportError` after that many
    seconds (real time), or at the deadline of the call that started it if
    that comes sooner (so that its callers get the flight's own, more telling
    error rather than their deadline's).
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

    async def run(self, key: K, call: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Await ``call(*args)`` for ``key``, or the flight already running for it.

        Passing ``args`` rather than a closure spares each waiter that joins a
        flight the closure it would never call.
        """
        self._runner.bind()
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
            raise own_copy(flight.error) from flight.error
        return flight.result  # type: ignore[return-value]

    def join(self, key: K) -> asyncio.Future[T] | None:
        """A future of the flight running for ``key`` (``None`` when none runs).

        The cheapest way to wait for a flight: one future per caller, no
        coroutine, woken once with the outcome; a caller that is cancelled
        cancels only its own future. A cold burst's thousands of waiters
        take this path.
        """
        self._runner.bind()
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
            flight = _Flight()
            deadline = None if self._timeout is None else deadline_in(self._timeout)
            # Known before it starts: an eager start may run it to its end right here.
            self._flights[key] = flight
            try:
                self._runner.spawn_now(self._execute, key, flight, call, args, deadline)
            except BaseException:  # closed: no flight was started
                del self._flights[key]
                raise
        return flight

    def abort(self, error: MsalError) -> None:
        """End every flight with ``error`` (the application is closing)."""
        flights, self._flights = self._flights, {}
        for flight in flights.values():
            if not flight.done.is_set():
                flight.error = error
                flight.settle()

    async def _execute(
        self,
        key: K,
        flight: _Flight[T],
        call: Callable[..., Awaitable[T]],
        args: tuple[Any, ...],
        deadline: float | None,
    ) -> None:
        _running.set((*_running.get(), flight))  # this task's own context
        try:
            if deadline is None or self._timeout is None:
                flight.result = await call(*args)
            else:
                flight.result = await until(deadline, lambda: call(*args), self._timeout)
        except Exception as exc:
            flight.error = exc
        except BaseException:
            flight.error = MsalError("the application was closed while acquiring a token")
            raise
        finally:
            if self._flights.get(key) is flight:
                del self._flights[key]
            flight.settle()


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


def own_error(error: BaseException) -> BaseException:
    """:func:`own_copy` chained to ``error``, as ``raise copy from error`` would chain it."""
    clone = own_copy(error)
    clone.__cause__ = error
    clone.__suppress_context__ = True
    return clone
