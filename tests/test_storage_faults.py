"""A hostile or broken cache storage: no caller sees an untyped error or waits past the bound.

Poisoned entries beside good ones in a partition (Redis and file), garbage
in Redis keys, a redis-server killed, restarted or paused (SIGSTOP), a FIFO
at the cache path, a failed save while another process waits for the lock,
a holder that died with the lock, and storage configuration errors. Every
call either succeeds (the storage's trouble counted) or raises the typed
error that names a configuration problem; no wrong token is served.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from aiomsal import (
    ConfidentialClientApplication,
    FileCacheStorage,
    MsalConfigurationError,
    MsalTransportError,
    RedisCacheStorage,
)
from aiomsal.testing import FakeAuthority, VirtualClock
from tests.failing_storage import FailingSaves
from tests.redis_server import RedisServer

pytestmark = pytest.mark.anyio

CLIENT = "faulty-storage-app"
SECRET = "faulty-storage-secret"
SCOPE = "api://res/.default"
KEY_ONE = b"1" * 32
KEY_TWO = b"2" * 32


@pytest.fixture
async def fake() -> AsyncIterator[FakeAuthority]:
    async with FakeAuthority() as authority:
        authority.add_client(CLIENT, secret=SECRET)
        yield authority


def app_of(fake: FakeAuthority, storage: Any, **options: Any) -> ConfidentialClientApplication:
    return ConfidentialClientApplication(
        CLIENT, client_credential=SECRET, authority=fake.authority("contoso"),
        cache_storage=storage, **options,
    )


def partition_of(scope: str = SCOPE) -> str:
    from aiomsal._cache._entries import AccessTokenKey
    from aiomsal._cache._partitions import app_partition

    return app_partition(AccessTokenKey("127.0.0.1", CLIENT, "contoso", "", "", scope))


_prefixes = iter(range(10**6))


def storage_kind(kind: str, tmp_path: Path, redis: RedisServer, prefix: str) -> Any:
    if kind == "file":
        return FileCacheStorage(tmp_path / "cache.bin")
    return RedisCacheStorage(redis.url, prefix=prefix)


# -- poisoned entries beside a good one --------------------------------------------------

GOOD_AT: dict[str, Any] = {
    "credential_type": "AccessToken", "secret": "poison-secret", "home_account_id": None,
    "environment": "127.0.0.1", "client_id": CLIENT, "target": "api://other/.default",
    "realm": "contoso", "token_type": "Bearer", "cached_at": "1", "expires_on": "4102444800",
    "extended_expires_on": "4102444800",
}

#: (name, section, entry): each put beside the partition's good token. ``malformed``
#: says whether it must be counted as skipped (some odd entries are merely foreign).
POISONS: list[tuple[str, str, Any, bool]] = [
    ("environment_open_bracket", "AccessToken", {**GOOD_AT, "environment": "["}, False),
    ("environment_ipv6_unclosed", "AccessToken", {**GOOD_AT, "environment": "[::1"}, False),
    ("expires_on_infinity_string", "AccessToken", {**GOOD_AT, "expires_on": "Infinity"}, True),
    ("expires_on_nan_string", "AccessToken", {**GOOD_AT, "expires_on": "NaN"}, True),
    ("expires_on_infinity", "AccessToken", {**GOOD_AT, "expires_on": float("inf")}, True),
    ("expires_on_nan", "AccessToken", {**GOOD_AT, "expires_on": float("nan")}, True),
    ("expires_on_1e999", "AccessToken", {**GOOD_AT, "expires_on": "1e999"}, True),
    ("expires_on_400_digits", "AccessToken", {**GOOD_AT, "expires_on": "9" * 400}, True),
    ("expires_on_400_digit_int", "AccessToken", {**GOOD_AT, "expires_on": 10**400}, True),
    ("expires_on_negative", "AccessToken", {**GOOD_AT, "expires_on": -5}, True),
    ("expires_on_bool", "AccessToken", {**GOOD_AT, "expires_on": True}, True),
    ("expires_on_list", "AccessToken", {**GOOD_AT, "expires_on": [1]}, True),
    ("cached_at_infinity", "AccessToken", {**GOOD_AT, "cached_at": float("inf")}, True),
    ("extended_nan", "AccessToken", {**GOOD_AT, "extended_expires_on": "NaN"}, True),
    ("refresh_on_object", "AccessToken", {**GOOD_AT, "refresh_on": {"a": 1}}, True),
    ("kid_null", "AccessToken", {**GOOD_AT, "kid": None}, False),
    ("kid_number", "AccessToken", {**GOOD_AT, "kid": 5}, True),
    ("key_id_list", "AccessToken", {**GOOD_AT, "key_id": []}, True),
    ("secret_null", "AccessToken", {**GOOD_AT, "secret": None}, True),
    ("secret_number", "AccessToken", {**GOOD_AT, "secret": 5}, True),
    ("client_id_object", "AccessToken", {**GOOD_AT, "client_id": {}}, True),
    ("target_number", "AccessToken", {**GOOD_AT, "target": 5}, True),
    ("realm_list", "AccessToken", {**GOOD_AT, "realm": []}, True),
    ("token_type_object", "AccessToken", {**GOOD_AT, "token_type": {}}, True),
    ("home_account_number", "AccessToken", {**GOOD_AT, "home_account_id": 7}, True),
    ("entry_string", "AccessToken", "not an entry", True),
    ("entry_list", "AccessToken", [1, 2], True),
    ("refresh_modified_infinity", "RefreshToken", {
        "credential_type": "RefreshToken", "secret": "rt", "home_account_id": "u.t",
        "environment": "127.0.0.1", "client_id": CLIENT, "last_modification_time": "Infinity",
    }, True),
    ("refresh_environment_bracket", "RefreshToken", {
        "credential_type": "RefreshToken", "secret": "rt", "home_account_id": "u.t",
        "environment": "[", "client_id": CLIENT,
    }, False),
    ("account_environment_number", "Account", {"home_account_id": "u.t", "environment": 5}, True),
    ("id_token_not_a_jwt", "IdToken", {
        "credential_type": "IdToken", "secret": "a.b.c", "home_account_id": "u.t",
        "environment": "127.0.0.1",
    }, True),
    ("app_metadata_list", "AppMetadata", [], True),
]

POISON_CASES = [
    pytest.param(section, entry, malformed, kind, id=f"{name}-{kind}")
    for name, section, entry, malformed in POISONS
    for kind in ("file", "redis")
]


def poisoned(blob: bytes | None, section: str, entry: Any) -> bytes:
    assert blob is not None
    document = json.loads(blob)
    document.setdefault(section, {})["poisoned-entry"] = entry
    return json.dumps(document).encode()


@pytest.mark.parametrize(("section", "entry", "malformed", "kind"), POISON_CASES)
async def test_a_poisoned_entry_is_skipped_and_the_good_token_still_served(
    section: str, entry: Any, malformed: bool, kind: str, fake: FakeAuthority,
    tmp_path: Path, shared_redis: RedisServer,
) -> None:
    prefix = f"poison-{next(_prefixes)}:"
    with anyio.fail_after(15):
        async with app_of(fake, storage_kind(kind, tmp_path, shared_redis, prefix)) as first:
            fetched = await first.acquire_token_for_client([SCOPE])
        async with storage_kind(kind, tmp_path, shared_redis, prefix) as raw:
            await raw.update(partition_of(), lambda blob: poisoned(blob, section, entry))
        async with app_of(fake, storage_kind(kind, tmp_path, shared_redis, prefix)) as second:
            served = await second.acquire_token_for_client([SCOPE])
            assert served.access_token == fetched.access_token  # the good entry still works
            stats = second.statistics()
            assert stats.storage_hits == 1 and stats.storage_errors == 0
            assert stats.skipped_entries == (1 if malformed else 0)
            second.token_cache.serialize()  # what was loaded serializes again
            renewed = await second.acquire_token_for_client([SCOPE], force_refresh=True)
            assert second.statistics().storage_errors == 0  # saved over the poisoned partition
        async with app_of(fake, storage_kind(kind, tmp_path, shared_redis, prefix)) as third:
            assert (await third.acquire_token_for_client([SCOPE])).access_token == (
                renewed.access_token
            )
    assert len(fake.token_requests) == 2


# -- garbage in Redis keys ---------------------------------------------------------------

GARBAGE = [
    b"", b"null", b"[1, 2, 3]", b"\xff\xfe\x00garbage", b"{" * 5000, b"[" * 100_000,
    b"1" * 5000, b'{"AccessToken": 5, "RefreshToken": []}', b'{"AccessToken": {"k": NaN}}',
    b'"just a string"', json.dumps({"AccessToken": {"k": {"a": [[[[[[[[]]]]]]]]}}}).encode(),
]


@pytest.mark.parametrize("garbage", GARBAGE, ids=[f"garbage{i}" for i in range(len(GARBAGE))])
async def test_garbage_in_a_redis_key_is_skipped_then_replaced(
    garbage: bytes, fake: FakeAuthority, shared_redis: RedisServer
) -> None:
    prefix = f"garbage-{next(_prefixes)}:"
    async with RedisCacheStorage(shared_redis.url, prefix=prefix) as raw:
        await raw.update(partition_of(), lambda _: garbage)
    with anyio.fail_after(10):
        async with app_of(fake, RedisCacheStorage(shared_redis.url, prefix=prefix)) as app:
            fetched = await app.acquire_token_for_client([SCOPE])
            stats = app.statistics()
            assert stats.storage_errors == 0 and stats.storage_hits == 0
            assert stats.skipped_entries >= (1 if garbage.strip(b"{}") else 0)
        async with app_of(fake, RedisCacheStorage(shared_redis.url, prefix=prefix)) as other:
            assert (await other.acquire_token_for_client([SCOPE])).access_token == (
                fetched.access_token
            )
            assert other.statistics().storage_hits == 1
    assert len(fake.token_requests) == 1


# -- redis-server killed, restarted, paused ------------------------------------------------


@contextlib.contextmanager
def paused(server: RedisServer) -> Iterator[None]:
    process = server._process
    assert process is not None
    process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        process.send_signal(signal.SIGCONT)


@pytest.mark.parametrize("outage", ["kill", "pause"])
async def test_an_outage_costs_no_call_and_the_storage_is_used_again_after_it(
    outage: str, redis_server: RedisServer
) -> None:
    clock = VirtualClock()
    async with FakeAuthority(clock=clock) as fake:
        fake.add_client(CLIENT, secret=SECRET)
        errors: list[BaseException] = []

        async def callers(app: ConfidentialClientApplication, keys: range) -> None:
            async def call(i: int) -> None:
                try:
                    await app.acquire_token_for_client([f"api://r{i % len(keys)}/.default"])
                except Exception as exc:
                    errors.append(exc)

            with anyio.fail_after(8):  # the bound: a timeout or two, never a lock's TTL
                async with anyio.create_task_group() as group:
                    for i in keys:
                        group.start_soon(call, i)

        async with app_of(fake, RedisCacheStorage(redis_server.url), clock=clock) as app:
            if outage == "kill":
                redis_server.kill()
                await callers(app, range(20))
                redis_server.restart()
            else:
                with paused(redis_server):
                    await callers(app, range(20))
            assert errors == []
            assert app.statistics().storage_errors >= 1
            assert len(fake.token_requests) == 20  # one per key, the outage notwithstanding
            await clock.advance(10)  # past the back-off: the storage is tried again
            saved = await app.acquire_token_for_client(["api://after/.default"])
        async with app_of(fake, RedisCacheStorage(redis_server.url), clock=clock) as other:
            found = await other.acquire_token_for_client(["api://after/.default"])
            assert found.access_token == saved.access_token
            assert other.statistics().storage_hits == 1


# -- a file whose open blocks ----------------------------------------------------------------


def release_fifo(path: Path) -> None:
    """Let the reads blocked in open() go (a writer opens, then closes: they read nothing)."""
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))


async def test_a_blocking_file_fails_the_storage_call_within_its_timeout(tmp_path: Path) -> None:
    fifo = tmp_path / "cache.bin"
    os.mkfifo(fifo)
    try:
        storage = FileCacheStorage(fifo, operation_timeout=0.2)
        with anyio.fail_after(3):
            with pytest.raises(MsalTransportError, match="no answer from the file system"):
                await storage.load("p")
            with pytest.raises(MsalTransportError):
                await storage.update("p", lambda _: b"x")
    finally:
        release_fifo(fifo)


async def test_an_application_over_a_blocking_file_serves_tokens_and_counts_the_error(
    fake: FakeAuthority, tmp_path: Path
) -> None:
    fifo = tmp_path / "cache.bin"
    os.mkfifo(fifo)
    try:
        with anyio.fail_after(6):
            async with app_of(fake, FileCacheStorage(fifo, operation_timeout=0.3)) as app:
                async with anyio.create_task_group() as group:
                    for i in range(10):
                        group.start_soon(app.acquire_token_for_client, [f"api://r{i}/.default"])
                assert app.statistics().storage_errors >= 1
        assert len(fake.token_requests) == 10
    finally:
        release_fifo(fifo)


# -- a failed save with another process waiting; a holder that died --------------------------


async def test_a_failed_save_still_releases_the_lock_for_the_process_waiting(
    fake: FakeAuthority, shared_redis: RedisServer
) -> None:
    prefix = f"failed-save-{next(_prefixes)}:"
    failing = FailingSaves(RedisCacheStorage(shared_redis.url, prefix=prefix))
    fake.latency = 0.3  # the holder is asking while the other process arrives
    with anyio.fail_after(6):  # the lock's lifetime (12 s here) would blow this
        async with app_of(fake, failing) as holder, app_of(
            fake, RedisCacheStorage(shared_redis.url, prefix=prefix)
        ) as waiter:
            async with anyio.create_task_group() as group:
                group.start_soon(holder.acquire_token_for_client, [SCOPE])
                await anyio.sleep(0.1)
                group.start_soon(waiter.acquire_token_for_client, [SCOPE])
            assert holder.statistics().storage_errors == 1
            assert failing.unlocks == 1
    assert len(fake.token_requests) == 2  # the holder's token was never stored


async def test_a_holder_that_died_with_the_lock_delays_a_waiter_only_by_a_request_time(
    fake: FakeAuthority, shared_redis: RedisServer
) -> None:
    prefix = f"dead-holder-{next(_prefixes)}:"
    async with RedisCacheStorage(shared_redis.url, prefix=prefix) as other_process:
        taken = await other_process.try_lock(f"{partition_of()}#{SCOPE}", 3600)  # then died
        assert taken is not None
    with anyio.fail_after(8):
        async with app_of(
            fake, RedisCacheStorage(shared_redis.url, prefix=prefix), timeout=1.0
        ) as app:
            result = await app.acquire_token_for_client([SCOPE])
            assert result.token_source == "identity_provider"
            assert app.statistics().storage_errors == 0
    assert len(fake.token_requests) == 1


# -- configuration errors surface, transient faults do not ------------------------------------


async def test_a_wrong_key_is_a_configuration_error_at_async_with_and_on_first_use(
    fake: FakeAuthority, tmp_path: Path
) -> None:
    path = tmp_path / "cache.bin"
    async with app_of(fake, FileCacheStorage(path, encryption_key=KEY_ONE)) as app:
        await app.acquire_token_for_client([SCOPE])
    with pytest.raises(MsalConfigurationError, match="cannot be decrypted"):
        async with app_of(fake, FileCacheStorage(path, encryption_key=KEY_TWO)):
            pass
    app = app_of(fake, FileCacheStorage(path, encryption_key=KEY_TWO))
    try:
        with pytest.raises(MsalConfigurationError, match="cannot be decrypted"):
            await app.acquire_token_for_client([SCOPE])
    finally:
        await app.aclose()
    async with app_of(fake, FileCacheStorage(path, encryption_key=KEY_TWO, on_corrupt="reset")):
        pass  # resetting is a choice: no error
    assert len(fake.token_requests) == 1


@pytest.mark.parametrize("layout", ["directory_at_path", "file_as_parent"])
async def test_a_path_that_cannot_be_a_cache_file_is_a_configuration_error(
    layout: str, fake: FakeAuthority, tmp_path: Path
) -> None:
    if layout == "directory_at_path":
        path = tmp_path / "cache.bin"
        path.mkdir()
    else:
        (tmp_path / "a-file").write_bytes(b"")
        path = tmp_path / "a-file" / "cache.bin"
    with pytest.raises(MsalConfigurationError):
        async with app_of(fake, FileCacheStorage(path)):
            pass
    assert fake.token_requests == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
async def test_an_unreadable_file_is_a_configuration_error(
    fake: FakeAuthority, tmp_path: Path
) -> None:
    path = tmp_path / "cache.bin"
    path.write_bytes(b"{}")
    path.chmod(0)
    with pytest.raises(MsalConfigurationError, match="permissions"):
        async with app_of(fake, FileCacheStorage(path)):
            pass


# -- issue 9, item 6, through the public API only: a poisoned user partition -------------------


@pytest.mark.parametrize(
    "poison",
    [{"environment": "["}, {"expires_on": "Infinity"}, {"expires_on": "9" * 400},
     {"kid": None}, {"cached_at": [1]}],
    ids=["environment_bracket", "expiry_infinity", "expiry_400_digits", "kid_null", "cached_at"],
)
async def test_a_poisoned_entry_in_a_signed_in_users_partition_is_skipped(
    poison: dict[str, Any], fake: FakeAuthority, shared_redis: RedisServer
) -> None:
    from aiomsal import PublicClientApplication

    prefix = f"user-poison-{next(_prefixes)}:"
    fake.add_client("desktop", redirect_uris=["http://localhost"])
    fake.add_user("alice@contoso.com", password="pw", tenant="contoso")
    with anyio.fail_after(15):
        async with PublicClientApplication(
            "desktop", authority=fake.authority("contoso"),
            cache_storage=RedisCacheStorage(shared_redis.url, prefix=prefix),
        ) as app:
            signed = await app.acquire_token_by_username_password(
                "alice@contoso.com", "pw", ["User.Read"]
            )
        account = signed.account
        assert account is not None
        name = f"user/desktop/{account.environment}/{account.home_account_id}"
        async with RedisCacheStorage(shared_redis.url, prefix=prefix) as raw:
            extra = {**GOOD_AT, "home_account_id": account.home_account_id, **poison}
            await raw.update(name, lambda blob: poisoned(blob, "AccessToken", extra))
        async with PublicClientApplication(
            "desktop", authority=fake.authority("contoso"),
            cache_storage=RedisCacheStorage(shared_redis.url, prefix=prefix),
        ) as restarted:
            silent = await restarted.acquire_token_silent(["User.Read"], account)
            assert silent is not None and silent.access_token == signed.access_token
    assert len(fake.token_requests) == 1


@pytest.mark.parametrize("password", [None, "not-the-password"], ids=["none", "wrong"])
async def test_redis_refusing_the_credentials_is_a_configuration_error(
    password: str | None, fake: FakeAuthority
) -> None:
    from tests.conftest import require_redis_server
    from tests.redis_server import redis_server

    require_redis_server()
    with redis_server(password="the-right-one") as server:
        auth = f":{password}@" if password else ""
        url = f"redis://{auth}127.0.0.1:{server.port}/0"
        with anyio.fail_after(5), pytest.raises(MsalConfigurationError) as caught:
            async with app_of(fake, RedisCacheStorage(url)):
                pass
        assert "refused" in str(caught.value)
        assert "not-the-password" not in str(caught.value)
    assert fake.token_requests == []


async def test_a_permission_error_is_a_configuration_error_even_for_root(
    fake: FakeAuthority, tmp_path: Path
) -> None:
    """Root reads a mode-000 file: the refusal a normal user meets is raised by the OS here."""
    storage = FileCacheStorage(tmp_path / "cache.bin")

    def refused() -> None:
        raise PermissionError(13, "Permission denied")

    storage._read_sync = refused  # type: ignore[assignment, method-assign]
    with pytest.raises(MsalConfigurationError, match="permissions"):
        async with app_of(fake, storage):
            pass
    assert fake.token_requests == []


# -- a rewrite abandoned by its timeout --------------------------------------------------------


async def test_an_abandoned_rewrite_keeps_the_lock_until_done_and_never_lands_after_a_newer_save(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from aiomsal._storage import _file_locks, _file_storage

    path = tmp_path / "cache.bin"
    slow, other = FileCacheStorage(path, operation_timeout=0.3), FileCacheStorage(path)
    stuck, entered = threading.Event(), threading.Event()
    real_write = slow._write_sync

    def hung_write(parts: Any) -> None:  # a file system that answers late
        entered.set()
        stuck.wait(10)
        real_write(parts)

    monkeypatch.setattr(slow, "_write_sync", hung_write)
    real_poll = _file_locks.poll_flock
    lock_was_held, progress = threading.Event(), anyio.Event()

    def poll(fd: int, budget: float) -> bool:  # in a worker thread of the other storage
        taken = real_poll(fd, budget)
        if not taken and not lock_was_held.is_set():
            lock_was_held.set()
            anyio.from_thread.run_sync(progress.set)
        return taken

    monkeypatch.setattr(_file_storage, "poll_flock", poll)
    seen: list[bytes | None] = []

    def newer(current: bytes | None) -> bytes:
        seen.append(current)
        progress.set()
        return b"newer"

    try:
        with anyio.fail_after(10):
            with pytest.raises(MsalTransportError, match="no answer from the file system"):
                await slow.update("p", lambda _: b"older")
            assert entered.is_set()
            async with anyio.create_task_group() as group:
                group.start_soon(other.update, "p", newer)
                await progress.wait()  # it either found the lock held, or wrote at once
                # The other writer found the file still locked by the abandoned rewrite.
                assert lock_was_held.is_set() and not seen
                stuck.set()
            assert seen == [b"older"]  # it waited for the late rewrite, then merged over it
            assert await other.load("p") == b"newer"
    finally:
        stuck.set()
