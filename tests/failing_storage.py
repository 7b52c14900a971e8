"""A cache storage whose saves fail: its process lost the link to Redis after taking a lock."""

from __future__ import annotations

from aiomsal import MsalTransportError, RedisCacheStorage
from aiomsal._cache._storage import Merge


class FailingSaves:
    """A Redis storage whose saves fail (its process's link broke after it took the lock)."""

    def __init__(self, inner: RedisCacheStorage) -> None:
        self.inner = inner
        self.unlocks = 0

    async def load(self, partition: str) -> bytes | None:
        return await self.inner.load(partition)

    async def update(self, partition: str, merge: Merge, *, ttl: float | None = None) -> None:
        raise MsalTransportError("the save failed")

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def try_lock(self, name: str, ttl: float) -> str | None:
        return await self.inner.try_lock(name, ttl)

    async def unlock(self, name: str, token: str) -> None:
        self.unlocks += 1
        await self.inner.unlock(name, token)
