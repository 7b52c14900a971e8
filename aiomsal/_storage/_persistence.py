"""L2 persistence: read-through, write-through and cross-process coalescing over a storage.

The in-memory cache (L1) answers every hit. On a miss, inside the
application's in-process coalescing flight, this layer first reads the key's
partition from the storage (another process may have fetched the token);
then, with a storage that can lock, takes a lock for the key so that one
process among many asks the authority while the others wait for its result;
then fetches, writes the partition back (merged with what other writers
stored meanwhile) and releases the lock.

Transient storage trouble never reaches a caller: every storage call is
bounded in time, its failure is logged and counted, and the storage is left
alone for a few seconds after a failure, while tokens keep flowing from L1
and the authority. A configuration error of the storage (a wrong encryption
key, an unreadable path) is no transient fault: it is raised, as
:class:`~aiomsal.MsalConfigurationError`, to the caller. An entry of a
partition that cannot be used is skipped and counted (``skipped_entries``).

A lock taken is always released (also after a failed save, and when the call
is cancelled), whatever state the storage is believed to be in. A process
waiting for another's lock waits at most as long as the holder's token
request may take (``request_timeout`` plus a save), in real time (not on the
injected clock: it waits on another process), then asks the authority itself.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

from .._cache._entries import AccessTokenKey
from .._cache._partitions import partition_of
from .._cache._storage import CacheStorage, DistributedLock, PartitionLister
from .._cache._token_cache import SerializableTokenCache
from .._concurrency._clock import Clock
from .._concurrency._deadline import remaining
from .._errors import MsalConfigurationError
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
        request_timeout: float = 10.0,
        poll_interval: float = 0.01,
        max_poll_interval: float = 0.1,
        backoff: float = 5.0,
    ) -> None:
        self._storage = storage
        self._lock = storage if isinstance(storage, DistributedLock) else None
        self._cache = cache
        self._clock = clock
        self._counters = counters
        self._timeout = operation_timeout
        #: How long a holder may take: its token request, then its save. Also the
        #: lock's lifetime, so that a crashed holder's lock never outlives a live one's.
        self._hold = request_timeout + 2 * operation_timeout
        self._poll = poll_interval
        self._max_poll = max_poll_interval
        self._backoff = backoff
        self._down_until = 0.0
        self._warned_skipped = False
        #: In a failure episode: its first failure was a warning, the next ones are debug.
        self._failing = False

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
                # Even when cancelled (the application closing) and after a failed save
                # (whatever the storage is believed to be): release it now rather than
                # make other processes wait for it. Bounded by the operation timeout.
                with anyio.CancelScope(shield=True):
                    await self._call(
                        "unlock", self._lock.unlock(_lock_name(partition, key), token),
                        always=True,
                    )

    async def load(self, partition: str) -> bool:
        """Read a partition into the cache; whether it held anything."""
        blob = await self._call("load", self._storage.load(partition))
        if not blob:
            return False
        if not isinstance(blob, (bytes, bytearray)):
            self._skipped(1)
            return False
        count = self._cache._load_partition(bytes(blob), now=self._clock.time())
        if count.skipped:
            self._skipped(count.skipped)
        return count.taken > 0

    async def check(self) -> None:
        """Read the storage once, so that a configuration error surfaces now (``async with``)."""
        await self._call("check", self._storage.load(_PROBE))

    async def load_listed(self, prefix: str) -> int:
        """Load every partition whose name starts with ``prefix``; how many held something.

        Only storages that can list their partitions (``partitions(prefix)``)
        take part; with others, nothing is loaded.
        """
        if not isinstance(self._storage, PartitionLister):
            return 0
        names = await self._call("list", self._storage.partitions(prefix))
        wanted = sorted(n for n in names or () if isinstance(n, str) and n.startswith(prefix))
        loaded = 0
        refused: list[MsalConfigurationError] = []

        async def load(name: str) -> None:
            nonlocal loaded
            try:
                loaded += await self.load(name)
            except MsalConfigurationError as exc:  # raised below, not as an exception group
                refused.append(exc)

        async with anyio.create_task_group() as group:  # one batch for a storage that batches
            for name in wanted[:MAX_LISTED]:
                group.start_soon(load, name)
        if refused:
            raise refused[0]
        return loaded

    def _skipped(self, count: int) -> None:
        self._counters.skipped_entries += count
        if not self._warned_skipped:
            self._warned_skipped = True
            _log.warning(
                "token cache storage holds entries that cannot be used; they are skipped "
                "(counted as skipped_entries)"
            )

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
            "lock", self._lock.try_lock(_lock_name(partition, key), self._hold)
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
        neither when the wait exceeds what the holder's request may take.
        The wait is in real time: it waits on another process, not on token time.
        """
        # Within the call's own deadline (timeout= bounds the whole call): wait at most
        # half of what is left, so that asking the authority ourselves still fits.
        deadline = anyio.current_time() + min(self._hold, remaining() / 2)
        poll = self._poll
        while anyio.current_time() < deadline and self._available():
            await anyio.sleep(poll)
            poll = min(self._max_poll, poll * 1.5)
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

    async def _call(
        self, operation: str, awaitable: Awaitable[T], *, always: bool = False
    ) -> T | None:
        """Run a storage operation, bounded in time; on failure log, count and return None.

        While the storage is left alone after a failure, the operation is
        skipped, unless ``always`` (releasing a lock). A configuration error
        of the storage is raised (as :class:`MsalConfigurationError`).
        """
        if not always and not self._available():
            _close(awaitable)
            return None
        try:
            with anyio.fail_after(self._timeout):
                result = await awaitable
        except MsalConfigurationError:
            self._counters.storage_errors += 1
            raise
        except Exception as exc:  # transient storage trouble must never reach a caller
            self._counters.storage_errors += 1
            self._down_until = self._clock.time() + self._backoff
            _log.log(
                logging.DEBUG if self._failing else logging.WARNING,
                "token cache storage %s failed (%s: %s); serving from memory for %gs",
                operation, type(exc).__name__, exc, self._backoff,
            )
            self._failing = True
            return None
        if self._failing:
            self._failing = False
            _log.info("token cache storage %s succeeded again", operation)
        return result


#: A partition name no token is ever stored under: what check() reads.
_PROBE = "aiomsal/check"
#: The most partitions get_accounts() loads from a storage listing.
MAX_LISTED = 1000


def _lock_name(partition: str, key: AccessTokenKey) -> str:
    return f"{partition}#{key.target}"


def _close(awaitable: Awaitable[object]) -> None:
    close = getattr(awaitable, "close", None)
    if close is not None:
        close()
