"""A worker process of the fleet refresh test: one process of N keeping hot tokens alive.

Usage: python -m tests.fleet_worker AUTHORITY REDIS_URL|none GO_FILE KEYS GENERATIONS

Connects, prints "ready", waits until GO_FILE exists (so all workers start
together, cold), then keeps KEYS tokens hot: one task per key calls
acquire_token_for_client every 20 ms. It prints "warm" once every key was
served, and stops once it has been served GENERATIONS distinct tokens of
every key (the first one and each renewal, its own or adopted from the
storage); then prints a JSON line with its statistics and the calls that
failed or missed the cache.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import anyio

from aiomsal import ConfidentialClientApplication, RedisCacheStorage

CLIENT = "fleet-app"
SECRET = "fleet-secret"
#: Seconds between two calls of one hot key's task.
PERIOD = 0.02


async def main(authority: str, redis_url: str, go_file: str, keys: int, generations: int) -> None:
    # A 2 s storage timeout and an early refresh (at 0.3 of the lifetime, 1-2 s into a 5 s
    # token) leave a loaded machine seconds of slack: counts, not timings, decide the test.
    storage = (
        None if redis_url == "none" else RedisCacheStorage(redis_url, operation_timeout=2.0)
    )
    async with ConfidentialClientApplication(
        CLIENT, client_credential=SECRET, authority=authority, cache_storage=storage,
        refresh_fraction=0.3,
    ) as app:
        if storage is not None:
            await storage.load("connect")  # connected, with an empty token cache
        print("ready", flush=True)
        while not os.path.exists(go_file):  # noqa: ASYNC110, ASYNC240 - a start line
            await anyio.sleep(0.005)
        seen: dict[int, list[str]] = {k: [] for k in range(keys)}
        errors: list[str] = []
        warm = anyio.Event()

        async def hot(k: int) -> None:
            scopes = [f"api://fleet-{k}/.default"]
            while len(seen[k]) < generations:
                try:
                    token = (await app.acquire_token_for_client(scopes)).access_token
                except Exception as exc:  # reported, and fails the test
                    errors.append(type(exc).__name__)
                else:
                    if token not in seen[k]:
                        seen[k].append(token)
                    if not warm.is_set() and all(seen.values()):
                        warm.set()
                        print("warm", flush=True)
                await anyio.sleep(PERIOD)

        async with anyio.create_task_group() as group:
            for k in range(keys):
                group.start_soon(hot, k)
        # The last renewal is served as soon as it is in the cache, and counted once its
        # flight has ended: let it end (a bounded wait; a renewal missing fails the test).
        with anyio.move_on_after(10):
            while app.statistics().background_refreshes < keys * (generations - 1):  # noqa: ASYNC110
                await anyio.sleep(0.01)
        stats = app.statistics()
    print(
        json.dumps(
            {
                "requests_sent": stats.requests_sent,
                "misses": stats.misses,
                "hits": stats.hits,
                "background_refreshes": stats.background_refreshes,
                "storage_hits": stats.storage_hits,
                "storage_errors": stats.storage_errors,
                "errors": errors,
                "tokens": {str(k): v for k, v in seen.items()},
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    authority, redis_url, go_file, keys, generations = sys.argv[1:6]
    asyncio.run(main(authority, redis_url, go_file, int(keys), int(generations)))
