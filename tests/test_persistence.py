"""Persistence: file and Redis storages under the in-memory cache, across applications and
processes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.streams.text import TextReceiveStream

from aiomsal import (
    ConfidentialClientApplication,
    FileCacheStorage,
    PublicClientApplication,
    RedisCacheStorage,
)
from aiomsal.testing import FakeAuthority
from tests.helpers import GRAPH, SECRET
from tests.redis_server import RedisServer

pytestmark = pytest.mark.anyio

CLIENT = "persistent-app"
ALICE = "alice@contoso.com"


@pytest.fixture
async def fake() -> AsyncIterator[FakeAuthority]:
    async with FakeAuthority() as authority:
        authority.add_client(CLIENT, secret=SECRET)
        authority.add_client("cross-process-app", secret="cross-process-secret")
        authority.add_client("desktop", redirect_uris=["http://localhost"])
        authority.add_user(ALICE, password="pw", tenant="contoso")
        yield authority


def confidential(fake: FakeAuthority, storage: object) -> ConfidentialClientApplication:
    return ConfidentialClientApplication(
        CLIENT,
        client_credential=SECRET,
        authority=fake.authority("contoso"),
        cache_storage=storage,  # type: ignore[arg-type]
    )


async def test_a_second_process_finds_the_token_in_the_file(
    fake: FakeAuthority, tmp_path: Path
) -> None:
    path = tmp_path / "cache.bin"
    async with confidential(fake, FileCacheStorage(path)) as first:
        fetched = await first.acquire_token_for_client(GRAPH)
    async with confidential(fake, FileCacheStorage(path)) as second:  # a restart
        loaded = await second.acquire_token_for_client(GRAPH)
        assert second.statistics().storage_hits == 1
        assert (await second.acquire_token_for_client(GRAPH)).token_source == "cache"
    assert loaded.access_token == fetched.access_token
    assert loaded.token_source == "cache"
    assert len(fake.token_requests) == 1
    assert path.stat().st_mode & 0o777 == 0o600


async def test_a_signed_in_user_survives_a_restart_of_a_desktop_tool(
    fake: FakeAuthority, tmp_path: Path
) -> None:
    path = tmp_path / "cache.bin"
    key = b"k" * 32
    async with PublicClientApplication(
        "desktop",
        authority=fake.authority("organizations"),
        cache_storage=FileCacheStorage(path, encryption_key=key),
    ) as app:
        result = await app.acquire_token_by_username_password(ALICE, "pw", ["User.Read"])
    assert result.access_token.encode() not in path.read_bytes()
    assert result.account is not None
    async with PublicClientApplication(
        "desktop",
        authority=fake.authority("organizations"),
        cache_storage=FileCacheStorage(path, encryption_key=key),
    ) as restarted:
        silent = await restarted.acquire_token_silent(["User.Read"], result.account)
    assert silent is not None
    assert silent.access_token == result.access_token
    assert len(fake.token_requests) == 1


async def test_redis_shares_tokens_between_instances(fake: FakeAuthority, redis_url: str) -> None:
    async with confidential(fake, RedisCacheStorage(redis_url)) as a, confidential(
        fake, RedisCacheStorage(redis_url)
    ) as b:
        first = await a.acquire_token_for_client(GRAPH)
        second = await b.acquire_token_for_client(GRAPH)
        assert second.access_token == first.access_token
        assert b.statistics().storage_hits == 1
    assert len(fake.token_requests) == 1


async def test_killing_redis_mid_load_never_reaches_a_caller(
    fake: FakeAuthority, redis_server: RedisServer
) -> None:
    fake.latency = 0.01
    errors: list[BaseException] = []
    served = 0

    async def caller(app: ConfidentialClientApplication, worker: int) -> None:
        nonlocal served
        for round_ in range(40):
            try:
                scopes = [f"api://resource-{(worker + round_) % 30}/.default"]
                await app.acquire_token_for_client(scopes, force_refresh=round_ % 7 == 0)
                served += 1
            except Exception as exc:
                errors.append(exc)
            await anyio.sleep(0.005)

    async with confidential(fake, RedisCacheStorage(redis_server.url)) as app:
        async with anyio.create_task_group() as group:
            for worker in range(20):
                group.start_soon(caller, app, worker)
            await anyio.sleep(0.05)
            redis_server.kill()
        stats = app.statistics()
    assert errors == []
    assert served == 20 * 40
    assert stats.storage_errors >= 1


KEYS = 50


async def test_a_cold_burst_of_50_keys_is_saved_to_the_file_without_a_storage_error(
    fake: FakeAuthority, tmp_path: Path
) -> None:
    """The saves that wait for the file's writer go into one rewrite of the file.

    One rewrite (read, merge, fsync, rename) per save made the last of 50 saves
    wait past the storage timeout: many failed, and were never stored.
    """
    path = tmp_path / "cache.bin"
    scopes = [[f"api://resource-{i}/.default"] for i in range(KEYS)]
    async with confidential(fake, FileCacheStorage(path)) as app:
        async with anyio.create_task_group() as group:
            for scope in scopes:
                group.start_soon(app.acquire_token_for_client, scope)
        assert app.statistics().storage_errors == 0
    async with confidential(fake, FileCacheStorage(path)) as restarted:
        for scope in scopes:
            assert (await restarted.acquire_token_for_client(scope)).token_source == "cache"
        assert restarted.statistics().storage_hits == KEYS
    assert len(fake.token_requests) == KEYS


def run_workers(
    redis_server: RedisServer, tmp_path: Path, *, processes: int, tasks: int, keys: int,
    latency: float, operation_timeout: float = 0.5, mode: str = "normal", limit: float = 60,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Start ``processes`` workers, cold, at once; their statistics and the scopes requested."""

    async def scenario() -> tuple[list[dict[str, Any]], list[str]]:
        async with FakeAuthority(latency=latency) as fake:
            fake.add_client("cross-process-app", secret="cross-process-secret")
            go = tmp_path / "go"
            workers = [
                await anyio.open_process(
                    [
                        sys.executable, "-m", "tests.cross_process_worker",
                        fake.authority("contoso"), redis_server.url, str(go), str(tasks),
                        str(keys), str(operation_timeout), mode,
                    ],
                    stdout=subprocess.PIPE,
                    stderr=None,  # a failing worker's traceback shows in the test report
                )
                for _ in range(processes)
            ]
            lines = []
            with anyio.fail_after(60):
                for worker in workers:  # every worker imported, connected and waits at the line
                    assert worker.stdout is not None
                    lines.append(TextReceiveStream(worker.stdout))
                    assert (await anext(aiter(lines[-1]))).strip() == "ready"
                go.write_text("go")
            try:
                with anyio.fail_after(limit):
                    outputs = []
                    for worker, stream in zip(workers, lines, strict=True):
                        data = "".join([chunk async for chunk in stream])
                        assert await worker.wait() == 0
                        outputs.append(json.loads(data))
            finally:
                for worker in workers:
                    if worker.returncode is None:
                        worker.kill()
                        await worker.wait()
            return outputs, [r.scope for r in fake.token_requests]

    return anyio.run(scenario)


def test_four_processes_of_250_cold_tasks_send_one_request_per_key(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """Cross-process coalescing through Redis: 4 x 250 callers, 5 keys, 5 token requests."""
    outputs, scopes = run_workers(
        redis_server, tmp_path, processes=4, tasks=250, keys=5, latency=0.2
    )
    assert sorted(scopes) == sorted(f"api://resource-{k}/.default" for k in range(5))
    assert sum(int(o["requests_sent"]) for o in outputs) == 5
    assert all(o["storage_errors"] == 0 for o in outputs)
    for key in map(str, range(5)):  # every process got the one token of each key
        assert len({t for o in outputs for t in o["tokens"][key]}) == 1


def test_three_processes_of_200_cold_keys_send_exactly_200_requests(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """A cold burst of many keys: writers of different keys never contend (issue 9, item 8).

    With one partition per tenant, every write rewrote one shared document under
    WATCH: the processes conflicted, saves timed out, the storage was switched off
    and each process asked for every token (600 requests instead of 200). The
    operation timeout is 5 s rather than 0.5 s so that a machine busy with other
    work cannot starve the workers' event loops past it: with the old partitions,
    the processes fail this with any timeout (redis-py refused the 101st connection).
    """
    outputs, scopes = run_workers(
        redis_server, tmp_path, processes=3, tasks=200, keys=200, latency=0.05,
        operation_timeout=5.0,
    )
    assert sorted(scopes) == sorted(f"api://resource-{k}/.default" for k in range(200))
    assert sum(int(o["requests_sent"]) for o in outputs) == 200
    assert all(o["storage_errors"] == 0 for o in outputs)
    assert sum(int(o["storage_hits"]) for o in outputs) == 400
    for key in map(str, range(200)):  # every process got the one token of each key
        assert len({t for o in outputs for t in o["tokens"][key]}) == 1


def test_processes_whose_saves_fail_still_release_the_lock_to_each_other(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """Issue 9, item 7: a failed save put the release behind the "storage is down" guard.

    Each of 3 processes takes the lock in turn, asks, fails to save and must release
    the lock at once: the next one goes on after a request time, not after the lock's
    lifetime (30 s then, 12 s now). So the three finish within a few request times.
    """
    outputs, scopes = run_workers(
        redis_server, tmp_path, processes=3, tasks=20, keys=1, latency=0.2,
        mode="failing-saves", limit=8,
    )
    assert scopes == ["api://resource-0/.default"] * 3  # nobody could store the token
    assert [o["storage_errors"] for o in outputs] == [1, 1, 1]  # each one's failed save
