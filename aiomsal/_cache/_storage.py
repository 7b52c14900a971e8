"""Where a token cache persists: the storage protocol behind ``cache_storage=``.

The in-memory cache (L1) is the source of every hit. A storage (L2: a file,
Redis, ...) holds the same entries grouped in small partitions, so that a
request reads and writes one partition and never the whole cache:

- application tokens: one partition per token (client, environment, tenant, scopes),
  so that writers of different tokens never contend;
- user tokens: one per (client, environment, account);
- on-behalf-of tokens: one per (client, environment, incoming assertion hash).

A partition's value is opaque bytes (aiomsal writes MSAL's cache format).
Writers merge rather than overwrite: :meth:`CacheStorage.update` reads the
current value, lets the cache merge its entries in, and writes the result
atomically with respect to other writers of the same storage, whether they
are tasks, processes or machines.

Two further abilities are optional, each its own protocol, so that a
storage written for an earlier version keeps working: :class:`DistributedLock`
(coalescing token requests across processes) and :class:`PartitionLister`
(``get_accounts()`` lists the accounts a storage holds, after a restart).
A storage raises :class:`~aiomsal.MsalConfigurationError` for what no retry
can fix (a wrong key, an unreadable path); any other exception is taken for
a transient fault, counted, and the call goes on without the storage.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

__all__ = ["CacheStorage", "DistributedLock", "Merge", "PartitionLister"]

#: Given the stored value (or None), return the value to store (None deletes it).
Merge = Callable[[bytes | None], bytes | None]


@runtime_checkable
class CacheStorage(Protocol):
    """Persistent partitions of a token cache."""

    async def load(self, partition: str) -> bytes | None:
        """The stored value of ``partition``, or None."""
        ...

    async def update(self, partition: str, merge: Merge, *, ttl: float | None = None) -> None:
        """Replace ``partition`` with ``merge(current)``, atomically among writers.

        ``ttl``: seconds after which the storage may forget the partition
        (its tokens will have expired by then); None keeps it.
        """
        ...

    async def aclose(self) -> None:
        """Release connections, files and locks held by this storage."""
        ...


@runtime_checkable
class DistributedLock(Protocol):
    """A storage that can also coalesce token requests across processes."""

    async def try_lock(self, name: str, ttl: float) -> str | None:
        """Take the lock ``name`` for at most ``ttl`` seconds; return its token, or None if held."""
        ...

    async def unlock(self, name: str, token: str) -> None:
        """Release the lock if ``token`` still holds it."""
        ...


@runtime_checkable
class PartitionLister(Protocol):
    """A storage that can also name the partitions it holds (optional)."""

    async def partitions(self, prefix: str) -> list[str]:
        """The names of the stored partitions that start with ``prefix``."""
        ...
