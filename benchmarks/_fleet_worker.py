"""One process of the fleet scenario: a library keeping hot tokens alive for a while.

Usage: python -m benchmarks._fleet_worker LIBRARY BASE_URL CA_FILE LIFETIME REDIS_URL|none
GO_FILE KEYS SECONDS

Opens LIBRARY (aiomsal, msal, azure; aiomsal with a RedisCacheStorage when
REDIS_URL is given) against the fake, prints "ready", waits until GO_FILE
exists (all processes start together, cold), then one task per key calls it
every 20 ms for SECONDS, and prints a JSON line: token requests sent, calls,
failed calls.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

from aiomsal import RedisCacheStorage

from ._fake import FakeEndpoint
from ._libs import open_library

#: Seconds between two calls of one hot key's task.
PERIOD = 0.02


async def main(
    library: str, endpoint: FakeEndpoint, redis_url: str, go_file: str, keys: int, seconds: float
) -> None:
    options: dict[str, Any] = {}
    if redis_url != "none":
        options["cache_storage"] = RedisCacheStorage(redis_url)
    lib = await open_library(library, endpoint, msal_threads=16, aiomsal_options=options)
    try:
        print("ready", flush=True)
        while not os.path.exists(go_file):  # noqa: ASYNC110, ASYNC240 - a start line
            await asyncio.sleep(0.005)
        calls = failures = 0

        async def hot(k: int) -> None:
            nonlocal calls, failures
            scope = f"api://fleet-{k}/.default"
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                try:
                    await lib.get(scope)
                except Exception:  # counted: a caller that failed
                    failures += 1
                calls += 1
                await asyncio.sleep(PERIOD)

        await asyncio.gather(*(hot(k) for k in range(keys)))
        print(json.dumps({"requests": lib.requests_sent(), "calls": calls,
                          "failures": failures}), flush=True)
    finally:
        await lib.aclose()


if __name__ == "__main__":
    library, base_url, ca_file, lifetime, redis_url, go_file, keys, seconds = sys.argv[1:9]
    endpoint = FakeEndpoint(base_url=base_url, ca_file=ca_file, latency=0.0,
                            token_lifetime=int(lifetime))
    asyncio.run(main(library, endpoint, redis_url, go_file, int(keys), float(seconds)))
