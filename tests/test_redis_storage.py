"""RedisCacheStorage against a private redis-server (see tests/redis_server.py)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import anyio
import pytest
import redis
import redis.asyncio

from aiomsal._cache._storage import CacheStorage, DistributedLock
from aiomsal._errors import MsalConfigurationError, MsalTransportError
from aiomsal._storage._redis_storage import RedisCacheStorage
from tests.conftest import require_redis_server
from tests.redis_server import RedisServer, redis_server

PASSWORD = "pa55-never-shown"
#: A failing call must return well within this many seconds (operation_timeout is 0.5).
FAST = 2.0


@pytest.fixture
async def storage(redis_url: str) -> AsyncIterator[RedisCacheStorage]:
    async with RedisCacheStorage(redis_url) as storage:
        yield storage


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    """A plain client, to look at what the storage wrote."""
    async with redis.asyncio.Redis.from_url(redis_url) as client:
        yield client


@pytest.fixture
def secured_server() -> Iterator[RedisServer]:
    require_redis_server()
    with redis_server(password=PASSWORD) as server:
        yield server


def put(value: bytes | None) -> Callable[[bytes | None], bytes | None]:
    return lambda _current: value


def append(item: int) -> Callable[[bytes | None], bytes]:
    def merge(current: bytes | None) -> bytes:
        items: list[int] = json.loads(current) if current else []
        return json.dumps([*items, item]).encode()

    return merge


async def fails_fast(call: Callable[[], Awaitable[object]]) -> MsalTransportError:
    """Await ``call()``, which must raise MsalTransportError well within FAST seconds."""
    started = time.monotonic()
    with anyio.fail_after(FAST + 1), pytest.raises(MsalTransportError) as caught:
        await call()
    assert time.monotonic() - started < FAST
    return caught.value


# -- CacheStorage -------------------------------------------------------------


@pytest.mark.anyio
async def test_load_update_round_trip(storage: RedisCacheStorage, raw: redis.asyncio.Redis) -> None:
    assert isinstance(storage, CacheStorage)
    assert isinstance(storage, DistributedLock)
    assert await storage.load("app:tenant") is None
    await storage.update("app:tenant", put(b"\x00binary\xff"))
    assert await storage.load("app:tenant") == b"\x00binary\xff"
    assert await raw.get("aiomsal:app:tenant") == b"\x00binary\xff"
    assert await raw.pttl("aiomsal:app:tenant") == -1  # ttl=None: no expiry


@pytest.mark.anyio
async def test_merge_sees_the_current_value(storage: RedisCacheStorage) -> None:
    seen: list[bytes | None] = []

    def merge(current: bytes | None) -> bytes:
        seen.append(current)
        return (current or b"") + b"+"

    await storage.update("p", merge)
    await storage.update("p", merge)
    assert seen == [None, b"+"]
    assert await storage.load("p") == b"++"


@pytest.mark.anyio
async def test_none_deletes(storage: RedisCacheStorage, raw: redis.asyncio.Redis) -> None:
    await storage.update("p", put(b"v"))
    await storage.update("p", put(None))
    assert await storage.load("p") is None
    assert await raw.exists("aiomsal:p") == 0
    await storage.update("absent", put(None))  # deleting nothing is fine
    assert await raw.keys("*") == []


@pytest.mark.anyio
async def test_ttl_sets_pttl(storage: RedisCacheStorage, raw: redis.asyncio.Redis) -> None:
    await storage.update("p", put(b"v"), ttl=60)
    assert 59_000 < await raw.pttl("aiomsal:p") <= 60_000
    await storage.update("p", put(b"v"), ttl=0.25)
    assert 0 < await raw.pttl("aiomsal:p") <= 250
    await storage.update("p", put(b"w"))  # ttl=None: the value no longer expires
    assert await raw.pttl("aiomsal:p") == -1
    await storage.update("p", put(b"x"), ttl=0)  # already expired: nothing to keep
    assert await raw.exists("aiomsal:p") == 0


@pytest.mark.anyio
async def test_keys_are_prefix_plus_partition(redis_url: str, raw: redis.asyncio.Redis) -> None:
    partition = "client|login.microsoftonline.com|ténant 🔑:*?[x]\n"
    async with RedisCacheStorage(redis_url, prefix="svc/") as storage:
        await storage.update(partition, put(b"v"))
        assert await storage.load(partition) == b"v"
        assert await storage.load("client") is None
    assert await raw.keys("*") == [("svc/" + partition).encode()]


@pytest.mark.anyio
async def test_concurrent_updates_in_one_process_lose_nothing(
    storage: RedisCacheStorage,
) -> None:
    async with anyio.create_task_group() as tg:
        for i in range(50):
            tg.start_soon(storage.update, "shared", append(i))
    stored = await storage.load("shared")
    assert stored is not None and sorted(json.loads(stored)) == list(range(50))


@pytest.mark.anyio
async def test_concurrent_updates_across_clients_lose_nothing(redis_url: str) -> None:
    """Ten storages (ten "processes") race on one partition: WATCH retries sort it out."""
    storages = [RedisCacheStorage(redis_url, operation_timeout=5) for _ in range(10)]
    merges = 0

    def counting(item: int) -> Callable[[bytes | None], bytes]:
        def merge(current: bytes | None) -> bytes:
            nonlocal merges
            merges += 1
            return append(item)(current)

        return merge

    try:
        async with anyio.create_task_group() as tg:
            for i in range(50):
                tg.start_soon(storages[i % 10].update, "shared", counting(i))
        stored = await storages[0].load("shared")
    finally:
        for storage in storages:
            await storage.aclose()
    assert stored is not None and sorted(json.loads(stored)) == list(range(50))
    assert merges >= 50  # usually about twice that: WATCH made the losers merge again


@pytest.mark.anyio
async def test_a_write_between_read_and_exec_makes_the_merge_rerun(
    redis_server: RedisServer, storage: RedisCacheStorage
) -> None:
    """Another writer changes the partition while merge runs: WATCH aborts, merge reruns."""
    seen: list[bytes | None] = []
    with redis.Redis.from_url(redis_server.url) as other:

        def merge(current: bytes | None) -> bytes:
            seen.append(current)
            if len(seen) == 1:
                other.set("aiomsal:p", b"theirs")
            return (current or b"") + b"+mine"

        await storage.update("p", merge)
    assert seen == [None, b"theirs"]
    assert await storage.load("p") == b"theirs+mine"


@pytest.mark.anyio
async def test_update_gives_up_under_endless_contention(
    redis_server: RedisServer, storage: RedisCacheStorage
) -> None:
    calls = 0
    with redis.Redis.from_url(redis_server.url) as other:

        def merge(current: bytes | None) -> bytes:
            nonlocal calls
            calls += 1
            other.incr("aiomsal:p")
            return b"0"

        with pytest.raises(MsalTransportError, match="gave up after 10 attempts"):
            await storage.update("p", merge)
    assert calls == 10
    assert await storage.load("p") == b"10"


# -- DistributedLock ----------------------------------------------------------


@pytest.mark.anyio
async def test_lock_is_exclusive_and_needs_its_token(
    storage: RedisCacheStorage, raw: redis.asyncio.Redis
) -> None:
    token = await storage.try_lock("refresh", ttl=30)
    assert token is not None
    assert await storage.try_lock("refresh", ttl=30) is None
    assert await storage.try_lock("other", ttl=30) is not None
    assert 29_000 < await raw.pttl("aiomsal:lock:refresh") <= 30_000

    await storage.unlock("refresh", "not-the-token")
    assert await storage.try_lock("refresh", ttl=30) is None
    await storage.unlock("refresh", token)
    second = await storage.try_lock("refresh", ttl=30)
    assert second is not None and second != token
    await storage.unlock("refresh", token)  # a stale token releases nothing
    assert await storage.try_lock("refresh", ttl=30) is None


@pytest.mark.anyio
async def test_lock_expires_by_itself(redis_url: str) -> None:
    async with RedisCacheStorage(redis_url) as crashed, RedisCacheStorage(redis_url) as other:
        stale = await crashed.try_lock("refresh", ttl=0.2)
        assert stale is not None
        assert await other.try_lock("refresh", ttl=0.2) is None
        await anyio.sleep(0.25)
        fresh = await other.try_lock("refresh", ttl=10)
        assert fresh is not None
        await crashed.unlock("refresh", stale)  # too late: the lock is someone else's
        assert await crashed.try_lock("refresh", ttl=10) is None


@pytest.mark.anyio
async def test_lock_ttl_must_be_positive(storage: RedisCacheStorage) -> None:
    with pytest.raises(ValueError, match="ttl"):
        await storage.try_lock("x", ttl=0)


# -- outages ------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("own_client", [True, False], ids=["url", "client"])
async def test_outage_fails_fast_then_recovers(redis_server: RedisServer, own_client: bool) -> None:
    # A client of our own keeps redis-py's default retries, with backoff up to seconds.
    client = None if own_client else redis.asyncio.Redis.from_url(redis_server.url)
    storage = RedisCacheStorage(redis_server.url if client is None else client)
    try:
        await storage.update("p", put(b"v"))
        token = await storage.try_lock("l", ttl=30)
        assert token is not None

        redis_server.kill()
        for call in (
            lambda: storage.load("p"),
            lambda: storage.update("p", put(b"w"), ttl=60),
            lambda: storage.try_lock("l2", ttl=30),
            lambda: storage.unlock("l", token),
        ):
            error = await fails_fast(call)
            assert f"127.0.0.1:{redis_server.port}" in str(error)

        redis_server.restart()  # empty: it kept nothing on disk
        assert await storage.load("p") is None
        await storage.update("p", put(b"again"))
        assert await storage.load("p") == b"again"
        assert await storage.try_lock("l", ttl=30) is not None
    finally:
        await storage.aclose()
        if client is not None:
            await client.aclose()


@pytest.mark.anyio
async def test_unreachable_server_fails_fast(redis_server: RedisServer) -> None:
    redis_server.kill()
    storage = RedisCacheStorage(redis_server.url)  # no I/O at construction
    error = await fails_fast(lambda: storage.load("p"))
    assert str(error).startswith(f"Redis load on 127.0.0.1:{redis_server.port} failed: ")
    assert isinstance(error.__cause__, Exception)
    await storage.aclose()


@pytest.mark.anyio
@pytest.mark.parametrize("own_client", [True, False], ids=["url", "client"])
async def test_slow_server_times_out(
    redis_url: str, raw: redis.asyncio.Redis, own_client: bool
) -> None:
    # A client of our own has no socket timeouts: only operation_timeout bounds the calls.
    target = redis_url if own_client else raw
    async with RedisCacheStorage(target, operation_timeout=0.3) as storage:
        await storage.update("p", put(b"v"))
        errors: list[MsalTransportError] = []

        async def check(call: Callable[[], Awaitable[object]]) -> None:
            errors.append(await fails_fast(call))

        # The server stops answering every client (this one too) for 0.8 s.
        await raw.client_pause(800, all=True)
        async with anyio.create_task_group() as tg:
            tg.start_soon(check, lambda: storage.load("p"))
            tg.start_soon(check, lambda: storage.update("p", put(b"w")))
            tg.start_soon(check, lambda: storage.try_lock("l", ttl=30))
        assert len(errors) == 3
        assert all("timed out after 0.3s" in str(error) for error in errors)
        assert await raw.get("p") is None  # waits out the pause
        # The interrupted connections were dropped, not handed back half-read.
        assert await storage.load("p") == b"v"
        await storage.update("p", put(b"w"))
        assert await storage.load("p") == b"w"
        assert await storage.try_lock("l", ttl=30) is not None


# -- secrets, ownership, configuration -------------------------------------------


@pytest.mark.anyio
async def test_password_is_never_shown(secured_server: RedisServer) -> None:
    assert PASSWORD in secured_server.url
    async with RedisCacheStorage(secured_server.url) as storage:
        await storage.update("p", put(b"v"))
        assert await storage.load("p") == b"v"
        text = repr(storage)
        assert PASSWORD not in text
        assert f"127.0.0.1:{secured_server.port}" in text and "aiomsal:" in text

        secured_server.kill()
        error = await fails_fast(lambda: storage.load("p"))
        assert PASSWORD not in str(error) and PASSWORD not in repr(error)

    secured_server.start()
    wrong = secured_server.url.replace(PASSWORD, "wrong-" + PASSWORD)
    async with RedisCacheStorage(wrong) as storage:
        with anyio.fail_after(FAST), pytest.raises(MsalConfigurationError) as refused:
            await storage.load("p")  # wrong credentials: no retry helps
        assert PASSWORD not in str(refused.value)
        assert refused.value.__cause__ is None and refused.value.__suppress_context__


@pytest.mark.anyio
async def test_owned_client_is_closed_once(redis_url: str) -> None:
    storage = RedisCacheStorage(redis_url)
    await storage.load("p")
    await storage.aclose()
    await storage.aclose()  # idempotent
    with pytest.raises(MsalTransportError, match="closed"):
        await storage.load("p")


@pytest.mark.anyio
async def test_given_client_stays_open(redis_url: str) -> None:
    async with redis.asyncio.Redis.from_url(redis_url) as client:
        async with RedisCacheStorage(client, prefix="x:") as storage:
            await storage.update("p", put(b"v"))
        assert await client.get("x:p") == b"v"  # still usable after the storage closed


@pytest.mark.anyio
async def test_configuration_errors() -> None:
    with pytest.raises(MsalConfigurationError) as caught:
        RedisCacheStorage(f"http://user:{PASSWORD}@example.com")
    assert PASSWORD not in str(caught.value)
    with pytest.raises(MsalConfigurationError, match="operation_timeout"):
        RedisCacheStorage("redis://127.0.0.1:1", operation_timeout=0)
    decoding = redis.asyncio.Redis(decode_responses=True)
    with pytest.raises(MsalConfigurationError, match="decode"):
        RedisCacheStorage(decoding)
    await decoding.aclose()
