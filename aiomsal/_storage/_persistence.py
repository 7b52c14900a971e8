"""L2 persistence: read-through, write-through and cross-process coalescing over a storage.

The in-memory cache (L1) answers every hit. On a miss, inside the
application's in-process coalescing flight, this layer first reads the key's
partition from the storage (another process may have fetched the token);
then, with a storage that can lock, takes a lock for the key so that one
process among many asks the authority while the others wait for its result;
then fetches, writes the partition back (merged with what other writers
stored meanwhile) and releases the lock.

Storage trouble never reaches a caller: every storage call is bounded in
time, its failure is logged and counted, and the storage is left alone for
a few seconds after a failure, while tokens keep flowing from L1 and the
authority.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

from .._cache._entries import AccessTokenKey
from .._cache._partitions import partition_of
from .._cache._storage import CacheStorage, DistributedLock
from .._cache._token_cache import SerializableTokenCache
from .._concurrency._clock import Clock
from .._statistics import Counters

__all__ = ["CachePersistence"]

_log = logging.getLogger("aiomsal")
T = TypeVar("T")


class CachePersistence:
    def __init__(
        self,
        storage: CacheStorage,
        cache: SerializableTokenCache,
        clock: Clock,
        counters: Counters,
        *,
        operation_timeout: float = 1.0,
        lock_ttl: float = 30.0,
        poll_interval: float = 0.02,
        backoff: float = 5.0,
    ) -> None:
        self._storage = storage
        self._lock = storage if isinstance(storage, DistributedLock) else None
        self._cache = cache
        self._clock = clock
        self._counters = counters
        self._timeout = operation_timeout
        self._lock_ttl = lock_ttl
        self._poll = poll_interval
        self._backoff = backoff
        self._down_until = 0.0

    async def fetch_through(
        self,
        key: AccessTokenKey,
        lookup: Callable[[], T | None],
        fetch: Callable[[], Awaitable[T]],
        *,
        fresh: bool = False,
    ) -> T:
        """``lookup()`` after reading the partition, else ``fetch()`` under a cross-process lock.

        ``fresh`` (a claims challenge or a forced refresh) skips the reads.
        """
        partition = partition_of(key)
        if not fresh:
            found = await self._read(partition, lookup)
            if found is not None:
                return found
        token = await self._take_lock(partition, key)
        try:
            if token is None and self._lock is not None and self._available():
                found, token = await self._wait_for_holder(partition, key, lookup, fresh)
                if found is not None:
                    return found
            elif token is not None and not fresh:
                found = await self._read(partition, lookup)  # the holder before us may have saved
                if found is not None:
                    return found
            result = await fetch()
            await self.save(partition)
            return result
        finally:
            if token is not None and self._lock is not None:
                # Even when cancelled (the application closing): release it now rather
                # than make other processes wait for it to expire. Bounded by the timeout.
                with anyio.CancelScope(shield=True):
                    await self._call(
                        "unlock", self._lock.unlock(_lock_name(partition, key), token)
                    )

    async def load(self, partition: str) -> bool:
        """Read a partition into the cache; whether it held anything."""
        blob = await self._call("load", self._storage.load(partition))
        if not blob:
            return False
        return self._cache.load_partition(blob, now=self._clock.time()) > 0

    async def save(self, partition: str) -> None:
        """Write a partition through to the storage, merged with what others stored."""
        now = self._clock.time()
        ours = self._cache.dump_partition(partition, now=now)
        ttl = self._ttl(partition)

        def merge(current: bytes | None) -> bytes | None:
            return SerializableTokenCache.merge_partition_blobs(current, ours, now=now)

        await self._call("save", self._storage.update(partition, merge, ttl=ttl))

    async def forget(self, partition: str) -> None:
        await self._call("delete", self._storage.update(partition, lambda _: None))

    async def _read(self, partition: str, lookup: Callable[[], T | None]) -> T | None:
        """Load the partition, then look the key up (a concurrent read may have loaded it)."""
        await self.load(partition)
        found = lookup()
        if found is not None:
            self._counters.storage_hits += 1
        return found

    async def _take_lock(self, partition: str, key: AccessTokenKey) -> str | None:
        if self._lock is None:
            return None
        return await self._call(
            "lock", self._lock.try_lock(_lock_name(partition, key), self._lock_ttl)
        )

    async def _wait_for_holder(
        self,
        partition: str,
        key: AccessTokenKey,
        lookup: Callable[[], T | None],
        fresh: bool,
    ) -> tuple[T | None, str | None]:
        """Another process is asking the authority: wait for its result.

        Returns what it stored, or the lock once it is released (the holder
        finished without a usable result, or died and its lock expired), or
        neither when the wait exceeds the lock's lifetime.
        """
        # A wait on another process, in real time: the injected clock governs token time only,
        # and a test's VirtualClock that nobody advances must not hold this wait.
        deadline = anyio.current_time() + self._lock_ttl
        while anyio.current_time() < deadline and self._available():
            await anyio.sleep(self._poll)
            if not fresh:
                found = await self._read(partition, lookup)
                if found is not None:
                    return found, None
            token = await self._take_lock(partition, key)
            if token is not None:
                found = None if fresh else await self._read(partition, lookup)
                return found, token
        return None, None

    def _available(self) -> bool:
        return self._clock.time() >= self._down_until

    def _ttl(self, partition: str) -> float | None:
        expiry = self._cache.partition_expiry(partition)
        return None if expiry is None else max(1.0, expiry - self._clock.time())

    async def _call(self, operation: str, awaitable: Awaitable[T]) -> T | None:
        """Run a storage operation, bounded in time; on failure log, count and return None."""
        if not self._available():
            _close(awaitable)
            return None
        try:
            with anyio.fail_after(self._timeout):
                return await awaitable
        except Exception as exc:  # storage trouble must never reach a caller
            self._counters.storage_errors += 1
            self._down_until = self._clock.time() + self._backoff
            _log.warning(
                "token cache storage %s failed (%s: %s); serving from memory for %gs",
                operation, type(exc).__name__, exc, self._backoff,
            )
            return None


def _lock_name(partition: str, key: AccessTokenKey) -> str:
    return f"{partition}#{key.target}"


def _close(awaitable: Awaitable[object]) -> None:
    close = getattr(awaitable, "close", None)
    if close is not None:
        close()
