"""A token cache storage (L2) in Redis, shared by processes on many machines.

Each partition is one Redis string at ``prefix + partition``. Writers merge
with optimistic concurrency (``WATCH`` / ``GET`` / ``MULTI`` / ``SET`` /
``EXEC``, retried when another writer got there first), and entries expire in
Redis together with their tokens. Writers of one partition in one process
queue behind each other, so ``WATCH`` only arbitrates between processes.

Every call is bounded by ``operation_timeout``: when Redis is down or slow,
the call fails fast with :class:`~aiomsal.MsalTransportError` and the cache
keeps serving from memory. Messages name the operation and the server, never
the password, a key or a value.
"""

from __future__ import annotations

import math
import random
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import anyio

try:
    import redis.asyncio
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import RedisError, WatchError
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError("RedisCacheStorage needs redis-py: pip install 'aiomsal[redis]'") from exc

from .._cache._storage import Merge
from .._errors import MsalConfigurationError, MsalTransportError

__all__ = ["RedisCacheStorage"]

#: Deletes a lock only while it still holds the caller's token.
_UNLOCK_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""

#: Transactions tried per update before giving up to other writers.
_MAX_ATTEMPTS = 10
#: Upper bound of the first random pause after a lost transaction (seconds);
#: it doubles after each further loss.
_BACKOFF_BASE = 0.002
_BACKOFF_CAP = 0.05

#: The most partition names one partitions() call returns.
_MAX_LISTED = 10_000

#: What a Redis call raises when the server is unreachable, slow or refuses.
_FAILURES = (RedisError, OSError, TimeoutError)


class RedisCacheStorage:
    """A :class:`~aiomsal.CacheStorage` and distributed lock backed by Redis.

    ``url_or_client``: a ``redis://``, ``rediss://`` or ``unix://`` URL, from
    which this storage makes (and, in :meth:`aclose`, closes) its own client;
    or a ``redis.asyncio.Redis`` client, which stays the caller's to close
    (it must not decode responses). ``prefix`` starts every key this storage
    writes. ``operation_timeout`` (seconds) bounds every call.
    """

    def __init__(
        self,
        url_or_client: str | redis.asyncio.Redis,
        *,
        prefix: str = "aiomsal:",
        operation_timeout: float = 0.5,
    ) -> None:
        if not (operation_timeout > 0 and math.isfinite(operation_timeout)):
            raise MsalConfigurationError("operation_timeout must be a positive number of seconds")
        if isinstance(url_or_client, str):
            try:
                client = redis.asyncio.Redis.from_url(
                    url_or_client,
                    socket_timeout=operation_timeout,
                    socket_connect_timeout=operation_timeout,
                    retry=Retry(NoBackoff(), 1),
                )
            except ValueError:
                # redis-py's messages may quote the URL; this one must not.
                raise MsalConfigurationError(
                    "invalid Redis URL: expected redis://, rediss:// or unix://"
                ) from None
            self._owns_client = True
        elif isinstance(url_or_client, redis.asyncio.Redis):
            client = url_or_client
            self._owns_client = False
        else:
            raise MsalConfigurationError(
                "url_or_client must be a Redis URL or a redis.asyncio.Redis client"
            )
        kwargs: dict[str, Any] = client.connection_pool.connection_kwargs
        if kwargs.get("decode_responses"):
            raise MsalConfigurationError(
                "the Redis client must not decode responses (decode_responses=False)"
            )
        self._client = client
        self._prefix = prefix
        self._timeout = operation_timeout
        self._password: str | None = kwargs.get("password") or None
        path = kwargs.get("path")
        self._server = (
            f"unix:{path}"
            if path
            else f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"
        )
        self._unlock_script = client.register_script(_UNLOCK_SCRIPT)
        self._writers: dict[str, tuple[anyio.Lock, list[int]]] = {}
        self._closed = False

    async def __aenter__(self) -> RedisCacheStorage:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"RedisCacheStorage(server={self._server!r}, prefix={self._prefix!r})"

    # -- CacheStorage ---------------------------------------------------------

    async def load(self, partition: str) -> bytes | None:
        """The stored value of ``partition``, or None."""
        async with self._operation("load"):
            value = await self._client.get(self._prefix + partition)
        return _as_bytes(value)

    async def update(self, partition: str, merge: Merge, *, ttl: float | None = None) -> None:
        """Replace ``partition`` with ``merge(current)``, atomically among all writers.

        ``merge`` may run more than once, when another writer changed the
        partition in between. ``ttl`` (seconds) makes Redis forget the value
        then; None keeps it, and zero or less deletes it.
        """
        key = self._prefix + partition
        # The queue behind this process's other writers of the partition is no Redis
        # operation: only the transactions count against the operation timeout.
        async with self._partition_writer(key), self._operation("update"):
            for attempt in range(_MAX_ATTEMPTS):
                if attempt:
                    ceiling = min(_BACKOFF_CAP, _BACKOFF_BASE * 2 ** (attempt - 1))
                    await anyio.sleep(random.uniform(0, ceiling))  # noqa: S311
                try:
                    await self._transaction(key, merge, ttl)
                except WatchError:
                    continue
                return
        raise MsalTransportError(
            f"Redis update on {self._server} gave up after {_MAX_ATTEMPTS} attempts: "
            "other writers kept changing the partition"
        )

    async def _transaction(self, key: str, merge: Merge, ttl: float | None) -> None:
        async with self._client.pipeline(transaction=True) as pipe:
            await pipe.watch(key)
            current = _as_bytes(await pipe.get(key))
            value = merge(current)
            if value is None and current is None:
                return  # nothing to delete; the pipeline's reset unwatches
            pipe.multi()  # type: ignore[no-untyped-call]
            if value is None or (ttl is not None and ttl <= 0):
                pipe.delete(key)
            elif ttl is None or math.isinf(ttl):
                pipe.set(key, value)
            else:
                pipe.set(key, value, px=max(1, math.ceil(ttl * 1000)))
            await pipe.execute()

    async def partitions(self, prefix: str) -> list[str]:
        """The names of the stored partitions that start with ``prefix`` (``SCAN``, bounded)."""
        pattern = _glob_escape((self._prefix + prefix).encode())
        names: list[str] = []
        async with self._operation("partitions"):
            async for key in self._client.scan_iter(match=pattern + b"*", count=1000):
                if isinstance(key, bytes) and key.startswith(self._prefix.encode()):
                    name = key[len(self._prefix.encode()) :].decode("utf-8", "replace")
                    if not name.startswith("lock:"):
                        names.append(name)
                if len(names) >= _MAX_LISTED:
                    break
        return names

    async def aclose(self) -> None:
        """Close the client this storage made from a URL (a given client stays open)."""
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            with anyio.move_on_after(self._timeout):
                with suppress(*_FAILURES):
                    await self._client.aclose()

    # -- DistributedLock ------------------------------------------------------

    async def try_lock(self, name: str, ttl: float) -> str | None:
        """Take the lock ``name`` for at most ``ttl`` seconds; its token, or None if held."""
        if not ttl > 0:
            raise ValueError("a lock's ttl must be positive")
        token = secrets.token_hex(16)
        px = max(1, math.ceil(ttl * 1000)) if math.isfinite(ttl) else None
        async with self._operation("try_lock"):
            taken = await self._client.set(self._lock_key(name), token, nx=True, px=px)
        return token if taken else None

    async def unlock(self, name: str, token: str) -> None:
        """Release the lock ``name`` if ``token`` still holds it; otherwise do nothing."""
        async with self._operation("unlock"):
            await self._unlock_script(keys=[self._lock_key(name)], args=[token])

    # -- internals ------------------------------------------------------------

    def _lock_key(self, name: str) -> str:
        return f"{self._prefix}lock:{name}"

    @asynccontextmanager
    async def _operation(self, operation: str) -> AsyncIterator[None]:
        """Bound a block by the operation timeout; turn Redis failures into MsalTransportError."""
        if self._closed:
            raise MsalTransportError(f"Redis {operation} on {self._server}: the storage is closed")
        try:
            with anyio.fail_after(self._timeout):
                yield
        except TimeoutError as exc:
            raise MsalTransportError(
                f"Redis {operation} on {self._server} timed out after {self._timeout:g}s"
            ) from exc
        except _FAILURES as exc:
            raise MsalTransportError(
                f"Redis {operation} on {self._server} failed: {self._describe(exc)}"
            ) from exc

    @asynccontextmanager
    async def _partition_writer(self, key: str) -> AsyncIterator[None]:
        """Queue this process's writers of one partition behind each other."""
        entry = self._writers.get(key)
        if entry is None:
            entry = self._writers[key] = (anyio.Lock(), [0])
        lock, users = entry
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._writers[key]

    def _describe(self, exc: BaseException) -> str:
        text = f"{type(exc).__name__}: {exc}"
        if self._password:
            text = text.replace(self._password, "***")
        return text


def _as_bytes(value: object) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    raise MsalTransportError(f"Redis returned a {type(value).__name__} where bytes were expected")


def _glob_escape(pattern: bytes) -> bytes:
    """``pattern`` with Redis glob characters escaped, to match itself only."""
    for char in (b"\\", b"*", b"?", b"[", b"]"):
        pattern = pattern.replace(char, b"\\" + char)
    return pattern
