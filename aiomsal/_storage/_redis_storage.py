"""A token cache storage (L2) in Redis, shared by processes on many machines.

Each partition is one Redis string at ``prefix + partition``. Writers merge
with optimistic concurrency (``WATCH`` / ``MGET`` / ``MULTI`` / ``SET`` /
``EXEC``, retried when another writer got there first), and entries expire in
Redis together with their tokens. What one process asks for in one moment
goes out in one batch (see :mod:`._redis_pipeline`): reads and locks in one
pipeline, writes in one transaction, so a cold burst of hundreds of keys
costs a few round trips and a few connections.

Every call is bounded by ``operation_timeout``: when Redis is down or slow,
the call fails fast with :class:`~aiomsal.MsalTransportError` and the cache
keeps serving from memory. Messages name the operation and the server, never
the password, a key or a value.
"""

from __future__ import annotations

import asyncio
import math
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from functools import partial
from typing import Any

import anyio

try:
    import redis.asyncio
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import (
        AuthenticationError,
        AuthenticationWrongNumberOfArgsError,
        NoPermissionError,
        RedisError,
    )
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError("RedisCacheStorage needs redis-py: pip install 'aiomsal[redis]'") from exc

from .._cache._storage import Merge
from .._errors import MsalConfigurationError, MsalTransportError
from ._redis_pipeline import (
    BatchFailed,
    Queue,
    TurnBatcher,
    Write,
    commit_writes,
    send_commands,
)

__all__ = ["RedisCacheStorage"]

#: Deletes a lock only while it still holds the caller's token.
_UNLOCK_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""

#: The most connections this storage uses at once (redis-py's pool refuses more than its
#: own maximum, 100 by default, instead of waiting).
_MAX_CONNECTIONS = 64

#: The most partition names one partitions() call returns.
_MAX_LISTED = 10_000

#: What Redis answers to wrong credentials or rights: a configuration error.
_REFUSED = (AuthenticationError, AuthenticationWrongNumberOfArgsError, NoPermissionError)

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
        pool_size = getattr(client.connection_pool, "max_connections", None)
        self._limit = max(1, min(_MAX_CONNECTIONS, pool_size or _MAX_CONNECTIONS) - 2)
        self._connections = anyio.CapacityLimiter(self._limit)
        #: The event loop the client's connections belong to (see :meth:`_follow_loop`).
        self._loop: asyncio.AbstractEventLoop | None = None
        self._commands: TurnBatcher[Queue] = TurnBatcher(
            partial(send_commands, client), operation_timeout, self._connections
        )
        self._writes: TurnBatcher[Write] = TurnBatcher(
            partial(commit_writes, client), operation_timeout, self._connections
        )
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
        key = self._prefix + partition
        async with self._operation("load", timed=False):
            value = await self._commands.submit(lambda pipe: pipe.get(key))
        return _as_bytes(value)

    async def update(self, partition: str, merge: Merge, *, ttl: float | None = None) -> None:
        """Replace ``partition`` with ``merge(current)``, atomically among all writers.

        ``merge`` may run more than once, when another writer changed the
        partition in between. ``ttl`` (seconds) makes Redis forget the value
        then; None keeps it, and zero or less deletes it.
        """
        # Waiting for a connection is no Redis operation; the batch's transaction is.
        async with self._operation("update", timed=False):
            await self._writes.submit(Write(self._prefix + partition, merge, ttl))

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
            with suppress(MsalTransportError):
                self._follow_loop("close")  # connections of an ended loop are only forgotten
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
        key = self._lock_key(name)
        async with self._operation("try_lock", timed=False):
            taken = await self._commands.submit(lambda pipe: pipe.set(key, token, nx=True, px=px))
        return token if taken else None

    async def unlock(self, name: str, token: str) -> None:
        """Release the lock ``name`` if ``token`` still holds it; otherwise do nothing."""
        key = self._lock_key(name)
        async with self._operation("unlock", timed=False):
            await self._commands.submit(
                lambda pipe: self._unlock_script(keys=[key], args=[token], client=pipe)
            )

    # -- internals ------------------------------------------------------------

    def _lock_key(self, name: str) -> str:
        return f"{self._prefix}lock:{name}"

    @asynccontextmanager
    async def _operation(self, operation: str, *, timed: bool = True) -> AsyncIterator[None]:
        """Bound a block by the operation timeout; turn Redis failures into MsalTransportError.

        ``timed=False``: the block is a batched call, whose batch bounds its own round
        trip (the wait for a connection before it does not count).
        """
        if self._closed:
            raise MsalTransportError(f"Redis {operation} on {self._server}: the storage is closed")
        self._follow_loop(operation)
        try:
            with anyio.fail_after(self._timeout if timed else math.inf):
                yield
        except TimeoutError as exc:
            raise MsalTransportError(
                f"Redis {operation} on {self._server} timed out after {self._timeout:g}s"
            ) from exc
        except _FAILURES as exc:
            cause = exc.__cause__ if isinstance(exc, BatchFailed) else exc
            if isinstance(cause, _REFUSED):
                # No retry helps: the credentials or the user's rights are wrong.
                raise MsalConfigurationError(
                    f"Redis {operation} on {self._server} was refused: "
                    f"{self._describe(cause)} (check the password and the user's ACL)"
                ) from None
            raise MsalTransportError(
                f"Redis {operation} on {self._server} failed: {self._describe(exc)}"
            ) from exc

    def _follow_loop(self, operation: str) -> None:
        """Move to a new event loop once the one the connections belong to has stopped.

        A script calling ``asyncio.run()`` twice, or a test suite with a loop per
        test, leaves the pooled connections on a dead loop: they are forgotten
        (not closed: their loop can no longer run that) and new ones open on
        this loop. While the first loop still runs (another thread), this
        storage refuses: one storage per thread that runs a loop.
        """
        loop = asyncio.get_running_loop()
        previous = self._loop
        if previous is loop:
            return
        if previous is not None:
            if previous.is_running():
                raise MsalTransportError(
                    f"Redis {operation} on {self._server}: this storage is in use on another"
                    " running event loop (create one storage per thread that runs a loop)"
                )
            self._client.connection_pool.reset()  # type: ignore[no-untyped-call]
            self._connections = anyio.CapacityLimiter(self._limit)
            self._commands.rebind(self._connections)
            self._writes.rebind(self._connections)
        self._loop = loop

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
