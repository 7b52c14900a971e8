"""Automatic batching of Redis work: what callers ask for in one moment shares one round trip.

A cold burst makes hundreds of flights of one process read a partition, try
a lock and save a token at the same moment. Sent one by one, each needs a
connection of its own (hundreds of connects at once; redis-py refuses more
than its pool's maximum) and its own round trips, and the last of them waits
past the operation timeout on a perfectly healthy server. Here the work asked
for in one turn of the event loop goes out together: commands in one
non-transactional pipeline, writes in one ``WATCH``/``MULTI``/``EXEC``
transaction, each on one connection. A burst costs a few round trips,
whatever its size.

The first caller of a turn leads: it yields once (so that the others of the
turn join), waits for a connection (not counted against the timeout: every
holder is bounded), then sends the batch, bounded by the operation timeout
and shielded from its own cancellation so that the others always get an
answer. Every caller gets its own result; a failure of the batch is raised
in each caller as an exception of its own, chained to the shared cause.
"""

from __future__ import annotations

import math
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import anyio
import anyio.lowlevel
import redis.asyncio
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError, WatchError

from .._cache._storage import Merge

__all__ = ["BatchFailed", "Queue", "TurnBatcher", "Write", "commit_writes", "send_commands"]

_I = TypeVar("_I")

#: Queues a command on a pipeline (``await``-ed, as redis-py's scripts need).
Queue = Callable[[Pipeline], Awaitable[object]]

#: Transactions tried per batch of writes before giving up to other writers.
_MAX_ATTEMPTS = 10
#: Upper bound of the first random pause after a lost transaction (seconds);
#: it doubles after each further loss.
_BACKOFF_BASE = 0.002
_BACKOFF_CAP = 0.05


class BatchFailed(RedisError):
    """The batch of a call failed (each caller gets its own, chained to the cause)."""


class WritersKeptChanging(RedisError):
    """Every transaction of a batch lost to other writers."""


class _Batch(Generic[_I]):
    __slots__ = ("done", "error", "items", "results")

    def __init__(self) -> None:
        self.items: list[_I] = []
        self.results: Sequence[Any] | None = None
        self.error: Exception | None = None
        self.done = anyio.Event()


class TurnBatcher(Generic[_I]):
    """Hands the items submitted in one event-loop turn to ``flush`` together."""

    def __init__(
        self,
        flush: Callable[[list[_I]], Awaitable[Sequence[Any]]],
        timeout: float,
        connections: anyio.CapacityLimiter,
    ) -> None:
        self._flush = flush
        self._timeout = timeout
        self._connections = connections
        self._batch: _Batch[_I] | None = None

    def rebind(self, connections: anyio.CapacityLimiter) -> None:
        """Forget a batch of an event loop that has ended; take that loop's successor's limiter."""
        self._batch = None
        self._connections = connections

    async def submit(self, item: _I) -> Any:
        """Submit an item; its result (an exception ``flush`` gave for it is raised)."""
        batch = self._batch
        if batch is None:
            batch = self._batch = _Batch()
            batch.items.append(item)
            await self._lead(batch)
            index = 0
        else:
            index = len(batch.items)
            batch.items.append(item)
            await batch.done.wait()
        if batch.error is not None:
            if isinstance(batch.error, TimeoutError):
                raise TimeoutError from batch.error
            raise BatchFailed(f"{type(batch.error).__name__}: {batch.error}") from batch.error
        assert batch.results is not None
        result = batch.results[index]
        if isinstance(result, Exception):
            raise result
        return result

    async def _lead(self, batch: _Batch[_I]) -> None:
        with anyio.CancelScope(shield=True):
            try:
                await anyio.lowlevel.checkpoint()  # the callers of this turn join the batch
                self._batch = None
                async with self._connections:
                    with anyio.fail_after(self._timeout):
                        batch.results = await self._flush(batch.items)
            except Exception as exc:  # every caller of the batch gets it, as its own error
                batch.error = exc
            finally:
                if self._batch is batch:
                    self._batch = None
                batch.done.set()


async def send_commands(client: redis.asyncio.Redis, queued: list[Queue]) -> list[Any]:
    """Send commands in one non-transactional pipeline; their results (or errors)."""
    async with client.pipeline(transaction=False) as pipe:
        for queue in queued:
            await queue(pipe)
        results: list[Any] = await pipe.execute(raise_on_error=False)
    return results


@dataclass(frozen=True, slots=True)
class Write:
    """Replace ``key`` with ``merge(current)`` (None deletes), expiring after ``ttl`` seconds."""

    key: str
    merge: Merge
    ttl: float | None


async def commit_writes(client: redis.asyncio.Redis, writes: list[Write]) -> list[None]:
    """Apply writes atomically: ``WATCH`` their keys, merge, then ``MULTI``/``EXEC``.

    Writes of one key apply in order, each merging what the one before wrote.
    When another writer changed a key in between, the whole batch is merged
    again (after a short random pause), up to a bound.
    """
    keys = list(dict.fromkeys(write.key for write in writes))
    for attempt in range(_MAX_ATTEMPTS):
        if attempt:
            ceiling = min(_BACKOFF_CAP, _BACKOFF_BASE * 2 ** (attempt - 1))
            await anyio.sleep(random.uniform(0, ceiling))  # noqa: S311
        try:
            await _transaction(client, keys, writes)
        except WatchError:
            continue
        return [None] * len(writes)
    raise WritersKeptChanging(
        f"gave up after {_MAX_ATTEMPTS} attempts: other writers kept changing the partitions"
    )


async def _transaction(client: redis.asyncio.Redis, keys: list[str], writes: list[Write]) -> None:
    async with client.pipeline(transaction=True) as pipe:
        await pipe.watch(*keys)
        stored = dict(zip(keys, await pipe.mget(keys), strict=True))
        values: dict[str, bytes | None] = {}
        ttls: dict[str, float | None] = {}
        for write in writes:
            current = values[write.key] if write.key in values else _as_bytes(stored[write.key])
            values[write.key] = write.merge(current)
            ttls[write.key] = write.ttl
        changes = [
            key for key in keys if not (values[key] is None and stored[key] is None)
        ]
        if not changes:
            return  # nothing to write; the pipeline's reset unwatches
        pipe.multi()  # type: ignore[no-untyped-call]
        for key in changes:
            value, ttl = values[key], ttls[key]
            if value is None or (ttl is not None and ttl <= 0):
                pipe.delete(key)
            elif ttl is None or math.isinf(ttl):
                pipe.set(key, value)
            else:
                pipe.set(key, value, px=max(1, math.ceil(ttl * 1000)))
        await pipe.execute()


def _as_bytes(value: object) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    raise RedisError(f"Redis returned a {type(value).__name__} where bytes were expected")
