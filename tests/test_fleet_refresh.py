"""One refresh per key across a fleet: N processes over one Redis keep hot tokens alive.

Each of 4 processes keeps the same hot keys in use (tests/fleet_worker.py). The
first process whose background refresh of a key comes due takes the key's
cross-process lock, asks the authority and stores the new token; the others,
at their own refresh time, find it in the storage and adopt it without a
request. So the fleet sends one request per key per token generation, as one
process would. The tokens live a few real seconds (the processes are separate;
no test clock reaches them); the assertions count, they never time.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

from aiomsal import ConfidentialClientApplication, FileCacheStorage
from aiomsal._cache._entries import AccessTokenEntry, AccessTokenKey
from aiomsal._cache._msal_format import cached_token
from aiomsal._protocol._refresh_policy import RefreshPolicy
from aiomsal.testing import FakeAuthority, VirtualClock
from tests.helpers import wait_until
from tests.redis_server import RedisServer

pytestmark = pytest.mark.anyio

PROCESSES = 4
KEYS = 3
#: Seconds: a token is served for 4 s and refreshed 1-2 s after it was fetched.
LIFETIME = 5


async def run_fleet(
    redis_url: str, tmp_path: Path, *, generations: int, after_warm: Any = None,
    lifetime: int = LIFETIME,
) -> tuple[list[dict[str, Any]], Counter[str]]:
    """Run the workers to ``generations`` tokens per key; their reports and requests per scope.

    ``after_warm()`` runs once every worker was served every key (the cold start done).
    """
    async with FakeAuthority(token_lifetime=lifetime, latency=0.05) as fake:
        fake.add_client("fleet-app", secret="fleet-secret")
        go = tmp_path / "go"
        workers = [
            await anyio.open_process(
                [
                    sys.executable, "-m", "tests.fleet_worker", fake.authority("contoso"),
                    redis_url, str(go), str(KEYS), str(generations),
                ],
                stdout=subprocess.PIPE,
                stderr=None,  # a failing worker's traceback shows in the test report
            )
            for _ in range(PROCESSES)
        ]
        try:
            with anyio.fail_after(120):
                streams = []
                for worker in workers:
                    assert worker.stdout is not None
                    streams.append(BufferedByteReceiveStream(worker.stdout))
                    assert await streams[-1].receive_until(b"\n", 1 << 20) == b"ready"
                go.write_text("go")
                for stream in streams:
                    assert await stream.receive_until(b"\n", 1 << 20) == b"warm"
                if after_warm is not None:
                    after_warm()
                outputs = []
                for worker, stream in zip(workers, streams, strict=True):
                    outputs.append(json.loads(await stream.receive_until(b"\n", 1 << 24)))
                    assert await worker.wait() == 0
        finally:
            for worker in workers:
                if worker.returncode is None:
                    worker.kill()
                    await worker.wait()
        return outputs, Counter(r.scope for r in fake.token_requests)


async def test_four_processes_send_one_refresh_per_key_per_lifetime(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    generations = 3
    outputs, requests = await run_fleet(redis_server.url, tmp_path, generations=generations)
    # One request per key per token generation, for the whole fleet.
    assert requests == Counter({f"api://fleet-{k}/.default": generations for k in range(KEYS)})
    assert sum(o["requests_sent"] for o in outputs) == KEYS * generations
    for key in map(str, range(KEYS)):  # every process was served the same tokens, in order
        assert len({tuple(o["tokens"][key]) for o in outputs}) == 1
    for output in outputs:
        assert output["errors"] == []
        assert output["storage_errors"] == 0
        assert output["misses"] == KEYS  # the cold start only: no caller waited after it
        assert output["background_refreshes"] == KEYS * (generations - 1)
    # The renewals the other processes adopted from the storage instead of asking.
    assert sum(o["storage_hits"] for o in outputs) >= (PROCESSES - 1) * KEYS * generations


async def test_through_a_redis_outage_each_process_refreshes_for_itself(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    generations = 2
    # Longer-lived tokens (first refresh ~4.5 s after the cold start, not ~1.5 s): Redis must
    # be gone before any process renews, however long a loaded machine takes to warm all four.
    outputs, requests = await run_fleet(
        redis_server.url, tmp_path, generations=generations, after_warm=redis_server.kill,
        lifetime=3 * LIFETIME,
    )
    # The cold start is shared through Redis; after it went away, every process
    # renewed every key itself, and no caller waited or failed.
    renewals = PROCESSES * KEYS * (generations - 1)
    assert sum(requests.values()) == KEYS + renewals
    for output in outputs:
        assert output["errors"] == []
        assert output["misses"] == KEYS
        assert output["storage_errors"] >= 1
        assert output["background_refreshes"] == KEYS * (generations - 1)
        assert all(len(tokens) == generations for tokens in output["tokens"].values())


def test_a_token_from_the_storage_is_refreshed_after_its_writer_never_before() -> None:
    """Adopters refresh at the writer's planned time or later (within the jitter).

    Were they jittered both ways, as a token a process fetched itself is, the
    earliest of N processes would renew every token early and the fleet would
    send more requests than one process does.
    """
    policy = RefreshPolicy()
    cached_at, expires_on, refresh_on = 1_800_000_000, 1_800_003_600, 1_800_002_700
    latest = policy.serve_until(cached_at, expires_on) - policy.margin(3600) / 2
    times = [policy.adopted_refresh_at(cached_at, expires_on, refresh_on) for _ in range(500)]
    assert all(refresh_on <= t <= latest for t in times)
    assert len(set(times)) > 400  # spread by the jitter, so that adopters do not all collide
    # Through MSAL's format, as a storage partition carries it.
    token = cached_token(
        AccessTokenEntry(
            AccessTokenKey("login.example", "app", "contoso", "", "", "api://x/.default"),
            "at", ("api://x/.default",), "Bearer", cached_at, expires_on, expires_on,
            refresh_on=refresh_on,
        ),
        None,
    )
    assert refresh_on <= token.refresh_at <= latest
    assert token.result.refresh_on == refresh_on


async def test_two_applications_over_one_file_send_one_refresh_per_cycle(
    tmp_path: Path,
) -> None:
    """On a virtual clock: one renews each token, the other adopts it from the file."""
    clock = VirtualClock()
    scope = ["api://hot/.default"]
    async with FakeAuthority(clock=clock) as fake:
        fake.add_client("fleet-app", secret="fleet-secret")

        def app() -> ConfidentialClientApplication:
            return ConfidentialClientApplication(
                "fleet-app", client_credential="fleet-secret", authority=fake.authority("contoso"),
                clock=clock, cache_storage=FileCacheStorage(tmp_path / "cache.bin"),
            )

        async with app() as first, app() as second:
            apps = (first, second)
            token = (await first.acquire_token_for_client(scope)).access_token
            assert (await second.acquire_token_for_client(scope)).access_token == token
            key = next(iter(first._app_keys.values()))

            def renewed_when_due() -> bool:
                """Each app holds a token that is not yet due (a due one was renewed)."""
                now = clock.time()
                return all(
                    (t := a._app_tokens.get(key)) is not None and t.refresh_at > now for a in apps
                )

            served: list[tuple[str, ...]] = []
            for _ in range(4 * 360):  # four lifetimes of 3,600 s, in 10-second steps
                await clock.advance(10)
                await wait_until(renewed_when_due)  # the renewal's file I/O, in real time
                served.append(
                    tuple([(await a.acquire_token_for_client(scope)).access_token for a in apps])
                )
            stats = [a.statistics() for a in apps]
        renewals = stats[0].background_refreshes
        assert renewals >= 4  # a renewal every 0.7-0.8 of a lifetime
        assert stats[1].background_refreshes == renewals
        # One request per renewal for the two of them, and both served the same tokens.
        assert len(fake.token_requests) == 1 + renewals
        assert sum(s.requests_sent for s in stats) == 1 + renewals
        assert len({t for pair in served for t in pair}) == 1 + renewals
        assert [s.misses for s in stats] == [1, 1]  # no caller waited after the cold start
