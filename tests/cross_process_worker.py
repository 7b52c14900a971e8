"""A worker process for the cross-process coalescing test.

Usage: python -m tests.cross_process_worker AUTHORITY REDIS_URL GO_FILE TASKS KEYS [TIMEOUT [MODE]]
Connects, prints "ready", waits until GO_FILE exists (so all workers start
together, cold), then runs
TASKS concurrent acquire_token_for_client calls spread over KEYS scopes, and
prints a JSON line with its statistics. TIMEOUT: the storage's operation
timeout (default 0.5 s, RedisCacheStorage's own). MODE ``failing-saves``: every
save of this process fails (see tests.failing_storage).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

import anyio

from aiomsal import ConfidentialClientApplication, RedisCacheStorage
from tests.failing_storage import FailingSaves

CLIENT = "cross-process-app"
SECRET = "cross-process-secret"


async def main(
    authority: str, redis_url: str, go_file: str, tasks: int, keys: int, op_timeout: float,
    mode: str,
) -> None:
    storage = RedisCacheStorage(redis_url, operation_timeout=op_timeout)
    used: Any = FailingSaves(storage) if mode == "failing-saves" else storage
    async with ConfidentialClientApplication(
        CLIENT, client_credential=SECRET, authority=authority, cache_storage=used
    ) as app:
        await storage.load("connect")  # connected, with an empty token cache
        print("ready", flush=True)
        while not os.path.exists(go_file):  # noqa: ASYNC110, ASYNC240 - a start line
            await anyio.sleep(0.005)
        tokens: dict[int, set[str]] = {k: set() for k in range(keys)}

        async def call(i: int) -> None:
            result = await app.acquire_token_for_client([f"api://resource-{i % keys}/.default"])
            tokens[i % keys].add(result.access_token)

        async with anyio.create_task_group() as group:
            for i in range(tasks):
                group.start_soon(call, i)
        stats = app.statistics()
    print(
        json.dumps(
            {
                "requests_sent": stats.requests_sent,
                "storage_hits": stats.storage_hits,
                "storage_errors": stats.storage_errors,
                "tokens": {str(k): sorted(v) for k, v in tokens.items()},
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    authority, redis_url, go_file, tasks, keys = sys.argv[1:6]
    timeout = float(sys.argv[6]) if len(sys.argv) > 6 else 0.5
    mode = sys.argv[7] if len(sys.argv) > 7 else "normal"
    asyncio.run(main(authority, redis_url, go_file, int(tasks), int(keys), timeout, mode))
